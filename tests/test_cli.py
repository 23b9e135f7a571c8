"""The command line, through click's CliRunner: exit codes and output."""

from __future__ import annotations

import json

import mlflow
import pytest
from click.testing import CliRunner
from conftest import write_conll

from mlflow_flavor.cli.commands import main


def test_export_then_verify(tiny_tagger_file, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["export", str(tiny_tagger_file), str(tmp_path / "bundle")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["parity"]["passed"] is True and report["parity"]["tag_agreement"] == 1.0
    result = runner.invoke(main, ["verify", str(tmp_path / "bundle")])
    assert result.exit_code == 0 and "OK:" in result.stdout
    (tmp_path / "bundle" / "encoder.onnx").write_bytes(b"tampered")
    result = runner.invoke(main, ["verify", str(tmp_path / "bundle")])
    assert result.exit_code == 2
    assert "encoder.onnx" in result.stderr and "failed verification" in result.stderr


def test_verify_an_mlflow_model_directory_checks_the_recorded_manifest_digest(tiny_tagger, tmp_path):
    import json as _json

    import mlflow_flavor

    model_dir = tmp_path / "model"
    mlflow_flavor.save_model(tiny_tagger, model_dir)
    runner = CliRunner()
    assert runner.invoke(main, ["verify", str(model_dir)]).exit_code == 0
    manifest_path = model_dir / "bundle" / "bundle.json"
    manifest = _json.loads(manifest_path.read_text())
    manifest["labels"].append("EVIL")  # consistent with the files, but not with MLmodel
    manifest_path.write_text(_json.dumps(manifest))
    result = runner.invoke(main, ["verify", str(model_dir)])
    assert result.exit_code == 2 and "bundle.json: sha256" in result.stderr


def test_verify_an_mlflow_model_directory_checks_every_file_outside_the_bundle(tiny_tagger, tmp_path):
    import mlflow_flavor

    model_dir = tmp_path / "model"
    mlflow_flavor.save_model(tiny_tagger, model_dir)
    runner = CliRunner()
    result = runner.invoke(main, ["verify", str(model_dir)])
    assert result.exit_code == 0 and "OK:" in result.stdout, result.output
    for name in ("code/mlflow_flavor/pyfunc.py", "requirements.txt", "python_env.yaml", "input_example.json"):
        target = model_dir / name
        original = target.read_bytes()
        target.write_bytes(original + b"\nimport os  # appended\n")
        result = runner.invoke(main, ["verify", str(model_dir)])
        assert result.exit_code == 2, name
        assert f"{name}: sha256" in result.stderr and "differ from what was saved" in result.stderr
        target.write_bytes(original)
    (model_dir / "code" / "sitecustomize.py").write_text("import os\n")
    result = runner.invoke(main, ["verify", str(model_dir)])
    assert result.exit_code == 2 and "code/sitecustomize.py: not recorded when the model was saved" in result.stderr
    (model_dir / "code" / "sitecustomize.py").unlink()
    (model_dir / "conda.yaml").unlink()
    result = runner.invoke(main, ["verify", str(model_dir)])
    assert result.exit_code == 2 and "conda.yaml: missing" in result.stderr


def test_export_records_batching_options(tiny_tagger_file, tmp_path):
    from exporter.format.manifest import read_manifest

    args = ["export", str(tiny_tagger_file), str(tmp_path / "b"), "--intra-op-threads", "1", "--encoder-workers", "2"]
    result = CliRunner().invoke(main, [*args, "--no-length-buckets"])
    assert result.exit_code == 0, result.output
    runtime = read_manifest(tmp_path / "b")[0]["runtime"]
    assert (runtime["intra_op_num_threads"], runtime["encoder_workers"], runtime["length_buckets"]) == (1, 2, False)
    result = CliRunner().invoke(main, ["export", str(tiny_tagger_file), str(tmp_path / "c"), "--encoder-workers", "0"])
    assert result.exit_code != 0 and "encoder_workers must be a positive integer" in result.output
    assert not (tmp_path / "c").exists()


def test_clear_errors_without_tracebacks(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["export", str(tmp_path / "missing.pt"), str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "not found" in result.stderr and "Traceback" not in result.output
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a pickle")
    result = runner.invoke(main, ["export", str(garbage), str(tmp_path / "out")])
    assert result.exit_code == 2 and "not a Flair model file" in result.stderr
    assert not (tmp_path / "out").exists()


def test_log_registers_stages_and_aliases(tiny_tagger_file, tracking):
    runner = CliRunner()
    result = runner.invoke(main, ["log", "--model", str(tiny_tagger_file), "--backend", "torch"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["version"] == "1" and out["stage"] == "Production"
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias("ner", "production").version) == "1"
    run = client.get_run(out["run_id"])
    assert run.data.params["backend"] == "torch"
    assert run.data.metrics["parity_tag_agreement"] == 1.0
    assert (
        run.data.metrics["parity_entity_f1_vs_original_low"] == run.data.metrics["parity_entity_f1_vs_original"] == 1.0
    )


def test_demo_recipe_trains_on_a_conll_file(tmp_path):
    """`flair-mlflow demo --train-conll`: the demo recipe (frozen MiniLM + CRF) on a user's CoNLL file."""
    from flair.models import SequenceTagger

    from exporter.quality.corpus import generate_tagged_sentences

    conll = write_conll(tmp_path / "train.conll", generate_tagged_sentences(60, seed=5))
    runner = CliRunner()
    out = runner.invoke(main, ["demo", "--train-conll", str(conll)])
    assert out.exit_code == 2 and "--output" in out.output
    target = tmp_path / "tagger.pt"
    args = ["demo", "--train-conll", str(conll), "--output", str(target), "--sentences", "40", "--epochs", "1"]
    out = runner.invoke(main, args)
    assert out.exit_code == 0, out.output
    tagger = SequenceTagger.load(target)
    assert {"B-PER", "B-LOC", "B-ORG"} <= set(tagger.label_dictionary.get_items())
    # saved as plain data: the safe reader takes it (no code run, no "needs full unpickling" warning on export)
    from exporter.format.modelfile import load_state

    assert load_state(target)["__cls__"] == "SequenceTagger"
    out = runner.invoke(main, ["demo", "--train-conll", str(conll), "--output", str(target), "--sentences", "0"])
    assert out.exit_code == 2 and "sentences must be a positive integer" in out.output
    conll.write_text("Paris B-LOC\n")
    out = runner.invoke(main, ["demo", "--train-conll", str(conll), "--output", str(target)])
    assert out.exit_code == 2 and "holds only 1 sentences" in out.output


@pytest.mark.slow
def test_export_prints_one_json_document_on_stdout_even_with_flair_logging(tiny_tagger_file, tmp_path):
    """Flair logs to stdout by default; `export` moves those logs to stderr so that stdout pipes into jq."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "mlflow_flavor.cli", "export", str(tiny_tagger_file), str(tmp_path / "b")]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert json.loads(completed.stdout)["parity"]["passed"] is True
    assert "Bundle written to" in completed.stderr  # the logs are on stderr
    # Flair's dictionary line is filtered while flair-mlflow builds models; whatever else Flair logs goes to stderr
    assert "SequenceTagger predicts" not in completed.stdout + completed.stderr
    code = (
        "from mlflow_flavor.cli.commands import _flair_logs_to_stderr; _flair_logs_to_stderr(); "
        "import logging; logging.getLogger('flair').warning('flair says hello')"
    )
    flair_log = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert flair_log.stdout == "" and "flair says hello" in flair_log.stderr
