"""`flair-mlflow lean-check` checks a model as it was logged (a models:/ URI or an MLflow model directory, no
re-export), bounds the parity gate of the exports it makes by --sentences, prints its table unless --output names a
file, and leaves nothing in the current folder. The model's own environment (a virtualenv, pip install: minutes) is
stood in for by this one: what is checked here is which model is checked, and how."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import log_and_stage

from mlflow_flavor.cli.commands import main
from mlflow_flavor.tools import lean_check


@pytest.fixture()
def this_environment(monkeypatch):
    """The model's environment is this one; its answers the pyfunc's (lean) here. Records what was checked."""
    import mlflow.pyfunc

    checked: list[Path] = []

    def predict(python, model_dir, texts, params=None, timeout=900):
        checked.append(Path(model_dir))
        return {"answers": mlflow.pyfunc.load_model(str(model_dir)).predict(texts, params=params), "imported": []}

    monkeypatch.setattr(lean_check, "model_environment", lambda model_dir, directory: Path(sys.executable))
    monkeypatch.setattr(lean_check, "site_packages_mb", lambda python: 0.0)
    monkeypatch.setattr(lean_check, "predict_in_environment", predict)
    return checked


@pytest.fixture()
def elsewhere(tmp_path, monkeypatch):
    """A fresh current folder, as a user who runs the tool outside a checkout."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


SMALL = ["--sentences", "4", "--documents", "1", "--long-words", "0"]


@pytest.mark.slow
def test_lean_check_checks_a_logged_model_as_logged(tiny_tagger, this_environment, elsewhere, tmp_path, monkeypatch):
    """The user's report: --model took only a Flair .pt or 'demo', not models:/ner/1 or a model directory."""
    import mlflow_flavor

    monkeypatch.setenv("FLAIR_MLFLOW_CACHE", str(tmp_path / "cache"))
    log_and_stage(tiny_tagger)

    def no_export(*args, **kwargs):
        raise AssertionError("a logged model is checked as logged, not exported again")

    monkeypatch.setattr(lean_check, "save_model", no_export)
    result = CliRunner().invoke(main, ["lean-check", str(tmp_path / "env"), "--model", "models:/ner/1", *SMALL])
    assert result.exit_code == 0, result.output
    # the table printed (no FLERT tagger, no demo classifier: neither is built for a logged model)
    assert "`models:/ner/1` as logged" in result.stdout
    assert "| models:/ner/1 | sentences | 4 | 4 |" in result.stdout
    assert "| models:/ner/1 | documents (split, context) | 1 | 1 |" in result.stdout
    assert "FLERT" not in result.stdout and "classifier" not in result.stdout
    assert this_environment and all((tmp_path / "cache") in p.parents for p in this_environment)
    assert list(elsewhere.iterdir()) == []  # no docs/BENCHMARKS.md, mlflow.db or mlruns/ here

    # an MLflow model directory, as it is; --json prints the rows
    model_dir = tmp_path / "model"
    mlflow_flavor.save_model(tiny_tagger, model_dir)
    this_environment.clear()
    result = CliRunner().invoke(
        main, ["lean-check", str(tmp_path / "env"), "--model", str(model_dir), *SMALL, "--json"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["model"], r["count"], r["identical_to_flair_path"]) for r in rows] == [("model", 4, 4), ("model", 1, 1)]
    assert set(this_environment) == {model_dir}


def test_lean_check_bounds_the_exports_parity_gate_by_sentences(
    tiny_tagger_file, this_environment, elsewhere, tmp_path, monkeypatch
):
    """The user's report: --sentences 10 still ran the parity gate on the full 128 texts."""
    gates = []
    real_save = lean_check.save_model

    def save(model, path, **options):
        real_save(model, path, **options)
        gates.append(json.loads((Path(path) / "bundle" / "bundle.json").read_text())["parity"])

    monkeypatch.setattr(lean_check, "save_model", save)
    args = ["lean-check", str(tmp_path / "env"), "--model", str(tiny_tagger_file), "--classifier", "none"]
    args += ["--no-flert", *SMALL, "--output", str(tmp_path / "report.md")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert [g["sentences"] for g in gates] == [4] and gates[0]["passed"]
    assert "| tagger.pt | sentences | 4 | 4 |" in result.stdout
    # written where --output says, and only there
    assert "<!-- flair-mlflow lean: start -->" in (tmp_path / "report.md").read_text()
    assert list(elsewhere.iterdir()) == []


def test_lean_check_refuses_what_it_cannot_check_before_any_work(tiny_bundle, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["lean-check", str(tmp_path / "env"), "--model", str(tiny_bundle), "--flert"])
    assert result.exit_code == 2 and "a logged --model has none" in result.stderr
    result = runner.invoke(main, ["lean-check", str(tmp_path / "env"), "--model", str(tiny_bundle)])
    assert result.exit_code == 2 and "is a bundle, not an MLflow model" in result.stderr
    assert f"flair-mlflow log --model {tiny_bundle}" in result.stderr
    assert not (tmp_path / "env").exists()


@pytest.mark.slow
def test_lean_check_refuses_a_logged_model_that_serves_with_flair(tiny_tagger, this_environment, tmp_path):
    import mlflow_flavor

    model_dir = tmp_path / "model"
    mlflow_flavor.save_model(tiny_tagger, model_dir, model_config={"serving_path": "flair"})
    result = CliRunner().invoke(main, ["lean-check", str(tmp_path / "env"), "--model", str(model_dir), *SMALL])
    assert result.exit_code == 2 and "serves with Flair's code (serving_path: flair" in result.stderr
    assert this_environment == []
