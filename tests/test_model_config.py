"""Serving settings as a first-class part of a model (issue 23, item 4): written with save_model / log_model /
`flair-mlflow log --model-config`, shown by `flair-mlflow inspect`, unknown keys and bad values refused in one
sentence, a misspelt key in MLFLOW_PYFUNC_INFERENCE_CONFIG refused instead of dropped."""

from __future__ import annotations

import json
import logging
import re

import mlflow
import pytest
from click.testing import CliRunner

import mlflow_flavor
from exporter.errors import ConfigError
from mlflow_flavor.cli.commands import main


def _options(model_dir):
    """The serving options the pyfunc loaded with (our FlairPyfuncModel behind MLflow's PyFuncModel)."""
    return mlflow.pyfunc.load_model(str(model_dir))._model_impl.options


def test_save_model_writes_serving_settings_the_pyfunc_then_uses(tiny_bundle, tmp_path):
    mlflow_flavor.save_model(str(tiny_bundle), tmp_path / "model", model_config={"max_wait_ms": 5, "max_texts": 40})
    config = mlflow.models.Model.load(str(tmp_path / "model")).flavors["python_function"]["config"]
    assert config["max_wait_ms"] == 5 and config["max_texts"] == 40 and config["max_batch_texts"] == 128
    options = _options(tmp_path / "model")
    assert options.max_wait_ms == 5 and options.max_texts == 40
    pyfunc = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    with pytest.raises(mlflow.exceptions.MlflowException, match="the limit is 40"):
        pyfunc.predict(["a"] * 41)
    # a serving setting sent as a request param is refused, not dropped (MLflow drops undeclared params)
    with pytest.raises(mlflow.exceptions.MlflowException, match="'max_wait_ms' is a setting of the served model"):
        pyfunc.predict(["a"], params={"max_wait_ms": 3})
    assert pyfunc.predict(["Angela Merkel met Tim Cook ."], params={"min_score": 0.0}) is not None


@pytest.mark.parametrize(
    "config, message",
    [
        ({"max_batch_textz": 64}, r"'max_batch_textz' \(did you mean 'max_batch_texts'\?\)"),
        ({"max_wait_ms": -5}, "max_wait_ms must be a number of milliseconds from 0 to 1000, got -5"),
        ({"encoder_workers": 0}, "encoder_workers"),
    ],
)
def test_a_wrong_setting_is_refused_in_one_sentence_before_any_export(tiny_tagger, tmp_path, config, message):
    with pytest.raises(ConfigError, match=message) as refused:
        mlflow_flavor.save_model(tiny_tagger, tmp_path / "model", model_config=config)
    assert "\n" not in str(refused.value) and not (tmp_path / "model").exists()


def test_log_model_takes_model_config(tiny_bundle, tracking):
    with mlflow.start_run():
        info = mlflow_flavor.log_model(str(tiny_bundle), name="ner", model_config={"adaptive_batching": False})
    assert mlflow.models.Model.load(info.model_uri).flavors["python_function"]["config"]["adaptive_batching"] is False


def test_a_misspelt_serving_time_override_is_refused_not_dropped(tiny_bundle, tmp_path, monkeypatch, caplog):
    mlflow_flavor.save_model(str(tiny_bundle), tmp_path / "model")
    monkeypatch.setenv("MLFLOW_PYFUNC_INFERENCE_CONFIG", json.dumps({"max_wait_msec": 5}))
    with caplog.at_level(logging.ERROR, logger="mlflow_flavor.loading"):
        with pytest.raises(mlflow.exceptions.MlflowException, match=r"did you mean 'max_wait_ms'"):
            mlflow.pyfunc.load_model(str(tmp_path / "model"))
    # the sentence on a line of its own, before whatever traceback the server prints
    assert "The model was not loaded: Unknown MLFLOW_PYFUNC_INFERENCE_CONFIG key(s) 'max_wait_msec'" in caplog.text
    monkeypatch.setenv("MLFLOW_PYFUNC_INFERENCE_CONFIG", json.dumps({"max_wait_ms": -5}))
    with pytest.raises(mlflow.exceptions.MlflowException, match="max_wait_ms must be a number of milliseconds"):
        mlflow.pyfunc.load_model(str(tmp_path / "model"))
    monkeypatch.setenv("MLFLOW_PYFUNC_INFERENCE_CONFIG", json.dumps({"max_wait_ms": 7}))
    assert _options(tmp_path / "model").max_wait_ms == 7


def test_the_command_line_logs_settings_and_inspect_shows_them(tiny_bundle, tracking):
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "log",
            "--model",
            str(tiny_bundle),
            "--model-config",
            "max_wait_ms=5",
            "--model-config",
            "adaptive_batching=false",
        ],
    )
    assert result.exit_code == 0, result.output
    shown = runner.invoke(main, ["inspect", "models:/ner/Production"])
    assert shown.exit_code == 0, shown.output
    assert "max_wait_ms" in shown.output and "5 (default 0.0): how long a run waits for more requests" in shown.output
    facts = json.loads(runner.invoke(main, ["inspect", "models:/ner@production", "--json"]).stdout)
    assert facts["task"] == "sequence-tagging" and facts["model_config"]["adaptive_batching"]["value"] is False
    # a tagger's own params only: a request with top_k or candidate_labels is refused, so they are not listed
    assert set(facts["params"]) == {"mini_batch_size", "return_tokens", "min_score", "output", "split_sentences"}
    assert "top_k" not in shown.output and "candidate_labels" not in shown.output
    # batch_invariant null means "as length_buckets": what is in force is shown
    invariance = facts["model_config"]["batch_invariant"]
    assert invariance["value"] is None and invariance["default"] is None and invariance["in_force"] is True
    assert re.search(r"batch_invariant +null \(true as length_buckets\)", shown.output), shown.output
    assert "None" not in shown.output and "False" not in shown.output  # model_config's spelling: null, false
    assert all(setting["meaning"] for setting in facts["model_config"].values())
    assert "serving_path: lean" in shown.output and facts["serving_path"] == "lean"  # issue 25
    forced = runner.invoke(main, ["log", "--model", str(tiny_bundle), "--model-config", "serving_path=flair"])
    assert forced.exit_code == 0, forced.output
    facts = json.loads(runner.invoke(main, ["inspect", "models:/ner/Production", "--json"]).stdout)
    assert facts["serving_path"] == "flair" and "model_config sets serving_path: flair" in facts["serving_path_reason"]
    bad = runner.invoke(main, ["log", "--model", str(tiny_bundle), "--model-config", "max_batch_textz=3"])
    assert bad.exit_code == 2 and "--model-config" in bad.output and "did you mean 'max_batch_texts'" in bad.output
