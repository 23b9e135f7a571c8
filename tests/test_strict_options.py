"""Nothing silently ignored: every keyword of save_model / log_model is checked; written folders are shareable."""

from __future__ import annotations

import dataclasses
import os
import stat

import mlflow
import pytest

import mlflow_flavor
from exporter import ExportConfig, save_bundle
from exporter.config import OnnxOptions, ParityConfig, TorchScriptOptions

VALUES = {bool: True, int: 3, float: 0.5, str: "x"}


def _flat_options():
    """Every option of the typed configs, as the flat keyword a user might guess, with the form to use instead."""
    for arg, cls in (("onnx", OnnxOptions), ("torchscript", TorchScriptOptions), ("parity", ParityConfig)):
        for field in dataclasses.fields(cls):
            yield pytest.param(field.name, f"{arg}={cls.__name__}({field.name}=", id=f"{arg}.{field.name}")


@pytest.mark.parametrize(("keyword", "form"), _flat_options())
def test_every_flat_export_option_is_refused_with_its_typed_form(tiny_tagger, tmp_path, keyword, form):
    target = tmp_path / "model"
    with pytest.raises(TypeError, match=rf"unexpected keyword argument.*'{keyword}'") as refused:
        mlflow_flavor.save_model(tiny_tagger, target, **{keyword: "int8"})
    message = str(refused.value)
    # quantize is OnnxOptions' first and, for character language models, TorchScriptOptions' too: both are named
    assert f"{keyword}: give it as " in message and f"{form}'int8')" in message
    assert not target.exists()


def test_the_issues_example_names_both_fixes(tiny_tagger, tmp_path):
    with pytest.raises(TypeError) as refused:
        mlflow_flavor.save_model(tiny_tagger, tmp_path / "model", quantize="int8", optimise="all")
    message = str(refused.value)
    assert "quantize: give it as onnx=OnnxOptions(quantize='int8') (from exporter.config import OnnxOptions)" in message
    assert "optimise: did you mean optimize? give it as onnx=OnnxOptions(optimize='all')" in message
    assert not (tmp_path / "model").exists()


def test_typos_of_real_keywords_and_session_options_are_named(tiny_tagger, tmp_path):
    with pytest.raises(TypeError, match=r"pip_requirement: did you mean pip_requirements=\.\.\.\?"):
        mlflow_flavor.save_model(tiny_tagger, tmp_path / "m", pip_requirement=["flair"])
    with pytest.raises(TypeError, match=r"session_options=\{'intra_op_num_threads': 1\}"):
        mlflow_flavor.save_model(tiny_tagger, tmp_path / "m", intra_op_num_threads=1)
    with pytest.raises(TypeError, match="zzz: not an option here"):
        mlflow_flavor.save_model(tiny_tagger, tmp_path / "m", zzz=1)


def test_log_model_refuses_before_any_run_and_passes_mlflows_own_keywords(tiny_tagger):
    with pytest.raises(TypeError, match=r"quantise: did you mean quantize\? give it as onnx=OnnxOptions"):
        mlflow_flavor.log_model(tiny_tagger, name="ner", quantise="int8")
    with pytest.raises(TypeError, match=r"registered_model: did you mean registered_model_name=\.\.\.\?"):
        mlflow_flavor.log_model(tiny_tagger, name="ner", registered_model="ner")
    assert mlflow.active_run() is None
    assert mlflow.search_runs().empty
    # keywords of MLflow's Model.log reach MLflow (and validate_serving_input, which it passes on to save_model)
    with mlflow.start_run():
        info = mlflow_flavor.log_model(
            tiny_tagger,
            name="ner",
            tags={"team": "nlp"},
            validate_serving_input=False,
            await_registration_for=0,
            onnx=OnnxOptions(),
        )
    assert mlflow.get_logged_model(info.model_id).tags["team"] == "nlp"


@pytest.mark.slow
def test_written_folders_get_the_umask_permissions(tiny_tagger, tmp_path):
    previous = os.umask(0o022)
    try:
        bundle = save_bundle(tiny_tagger, tmp_path / "bundle", ExportConfig()).path
        mlflow_flavor.save_model(tiny_tagger, tmp_path / "model")
        os.umask(0o027)
        shared = save_bundle(tiny_tagger, tmp_path / "group", ExportConfig()).path
    finally:
        os.umask(previous)
    for folder in (bundle, tmp_path / "model", tmp_path / "model" / "bundle", tmp_path / "model" / "code"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755, folder
    assert stat.S_IMODE(shared.stat().st_mode) == 0o750
    assert all(stat.S_IMODE(p.stat().st_mode) & 0o044 == 0o044 for p in bundle.rglob("*") if p.is_file())


def test_runtime_overrides_refuse_unknown_keys():
    from exporter.config import RuntimeOptions
    from exporter.errors import ConfigError

    with pytest.raises(ConfigError, match=r"'intra_threads' \(did you mean 'intra_op_num_threads'\?\)"):
        RuntimeOptions().updated({"intra_threads": 1})
    assert RuntimeOptions().updated({"intra_op_num_threads": 1}).intra_op_num_threads == 1


def test_log_with_an_unknown_stage_is_refused_before_export_or_registration(tiny_tagger_file, tmp_path):
    from click.testing import CliRunner

    from mlflow_flavor.cli.commands import main

    args = ["log", "--model", str(tiny_tagger_file), "--registered-model-name", "ner", "--stage", "Prod"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "Unknown stage 'Prod' (did you mean 'Production'?)" in result.stderr
    assert mlflow.search_runs().empty
    assert mlflow.MlflowClient().search_registered_models() == []
