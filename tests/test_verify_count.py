"""`flair-mlflow verify` says how many files it checked: on an MLflow model every sealed file (the bundle's, its
bundle.json, and code/, requirements, environment files and examples recorded in MLmodel), not the bundle's alone."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from conftest import log_and_stage

from mlflow_flavor.cli.commands import main
from mlflow_flavor.fetch import DOWNLOAD_ONLY_FILES


def _sealed(model_dir: Path) -> tuple[int, int]:
    """The bundle's files (bundle.json aside) and the files outside the bundle (MLmodel aside), counted on disk
    (less what MLflow writes into a download of a registered version, which no model holds: DOWNLOAD_ONLY_FILES)."""
    files = [p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*") if p.is_file()]
    files = [f for f in files if f not in DOWNLOAD_ONLY_FILES]
    bundle = [f for f in files if f.startswith("bundle/") and f != "bundle/bundle.json"]
    others = [f for f in files if not f.startswith("bundle/") and f != "MLmodel"]
    return len(bundle), len(others)


def test_verify_counts_every_sealed_file_of_an_mlflow_model(tiny_tagger, tmp_path):
    """The user's report: an untouched copy said `OK: 8 files verified` though code/, the requirements and the
    environment files were checked too."""
    import mlflow_flavor

    model_dir = tmp_path / "model"
    mlflow_flavor.save_model(tiny_tagger, model_dir)
    bundle, others = _sealed(model_dir)
    assert others > 40  # code/ is most of them
    result = CliRunner().invoke(main, ["verify", str(model_dir)])
    assert result.exit_code == 0, result.output
    line = result.stdout.strip()
    assert line.startswith(f"OK: {bundle} bundle files, bundle.json and {others} others (code/ (")
    assert "requirements.txt" in line and "python_env.yaml" in line
    assert line.endswith(f"{bundle + 1 + others} files verified in {model_dir}")
    # a file outside the bundle that was not recorded fails: the count is of files that were checked
    (model_dir / "code" / "extra.py").write_text("print('added')\n")
    result = CliRunner().invoke(main, ["verify", str(model_dir)])
    assert result.exit_code == 2 and "code/extra.py: not recorded" in result.stderr


def test_verify_of_a_model_uri_counts_the_same_files_as_its_directory(tiny_bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("FLAIR_MLFLOW_CACHE", str(tmp_path / "cache"))
    log_and_stage(str(tiny_bundle))
    fetched = CliRunner().invoke(main, ["fetch", "models:/ner/1"])
    assert fetched.exit_code == 0, fetched.output
    bundle, others = _sealed(Path(fetched.stdout.strip().splitlines()[-1]))
    result = CliRunner().invoke(main, ["verify", "models:/ner@production"])
    assert result.exit_code == 0, result.output
    line = result.stdout.strip()
    assert line.startswith(f"OK: {bundle} bundle files, bundle.json and {others} others (")
    assert line.endswith(f"{bundle + 1 + others} files verified in models:/ner@production")


def test_verify_of_a_bundle_counts_its_files(tiny_bundle):
    bundle = len([p for p in tiny_bundle.rglob("*") if p.is_file() and p.name != "bundle.json"])
    result = CliRunner().invoke(main, ["verify", str(tiny_bundle)])
    assert result.exit_code == 0 and result.stdout.strip() == f"OK: {bundle} files verified in {tiny_bundle}"
