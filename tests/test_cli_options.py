"""The CLI's export options: choices and defaults come from the library's configs, build one ExportConfig, and are
checked (in the CLI's terms) before anything slow runs."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import REPO

from exporter.config import OPTIMIZATION_LEVELS, PRECISIONS, QUANTIZATIONS, Backend, ExportConfig, OnnxOptions
from mlflow_flavor.cli import commands as cli
from mlflow_flavor.cli.commands import _export_config, main


def _context(*args: str) -> click.Context:
    return main.commands["export"].make_context("export", ["model.pt", "out", *args])


def test_choices_are_the_configs_own():
    options = {p.name: p for p in main.commands["export"].params}
    assert list(options["backend"].type.choices) == [b.value for b in Backend if b is not Backend.FLAIR_ONNX]
    assert list(options["optimize"].type.choices) == ["none", *OPTIMIZATION_LEVELS]
    assert list(options["quantize"].type.choices) == ["none", *QUANTIZATIONS]
    assert list(options["precision"].type.choices) == list(PRECISIONS)
    assert {p.name for p in main.commands["log"].params} >= set(options) - {"model", "output"}


def test_cli_defaults_are_the_library_defaults():
    assert _export_config(_context().params) == ExportConfig()


def test_every_option_reaches_its_config():
    args = ["--backend", "torchscript", "--opset", "16", "--optimize", "all", "--quantize", "int8-dynamic"]
    args += ["--per-tensor", "--max-call-rows", "1"]
    args += ["--fp16-fallback", "--external-data", "--force-max-length", "--strict-providers", "--provider", "A"]
    args += ["--provider", "B", "--intra-op-threads", "1", "--encoder-workers", "2", "--no-length-buckets"]
    args += ["--min-agreement", "0.5", "--force"]
    config = _export_config(_context(*args).params)
    assert config.backend is Backend.TORCHSCRIPT
    # with --backend torchscript, --quantize is TorchScript's (PyTorch's int8 of character language models)
    assert config.onnx == OnnxOptions(
        opset=16, optimize="all", quantize=None, per_channel=False, fp16_fallback=True, external_data=True
    )
    assert config.torchscript.force_max_length and config.torchscript.quantize == "int8-dynamic"
    runtime = config.runtime
    assert runtime.providers == ("A", "B") and runtime.strict_providers
    assert (runtime.intra_op_num_threads, runtime.encoder_workers, runtime.length_buckets) == (1, 2, False)
    assert runtime.max_call_rows == 1
    assert (config.parity.min_tag_agreement, config.parity.force) == (0.5, True)


@pytest.fixture()
def nothing_loads(monkeypatch):
    """Loading Flair or a model fails loudly: what the CLI refuses must be refused before either."""
    import exporter.format.modelfile

    def loaded(*args, **kwargs):
        raise AssertionError("Flair or the model was loaded before the options were checked")

    monkeypatch.setattr(cli, "_flair_logs_to_stderr", loaded)
    monkeypatch.setattr(exporter.format.modelfile, "load_flair_model", loaded)


@pytest.mark.parametrize("command", ["export", "log"])
def test_options_are_checked_in_the_clis_terms_before_anything_loads(
    command, nothing_loads, tiny_tagger_file, tmp_path
):
    runner = CliRunner()
    base = ["export", str(tiny_tagger_file), str(tmp_path / "out")] if command == "export" else ["log", "--model"]
    base = base if command == "export" else [*base, str(tiny_tagger_file)]
    result = runner.invoke(main, [*base, "--min-agreement", "1.5"])
    assert result.exit_code == 2 and "Invalid value for '--min-agreement': 1.5 is not in the range" in result.output
    result = runner.invoke(main, [*base, "--encoder-workers", "0"])
    assert result.exit_code == 2 and "Invalid value for --encoder-workers: encoder_workers must be" in result.output
    result = runner.invoke(main, [*base, "--precision", "fp16"])
    assert result.exit_code == 2, result.output
    assert "--precision fp16 runs on ONNX Runtime's CUDAExecutionProvider" in result.output
    assert "--provider CUDAExecutionProvider" in result.output and "--fp16-fallback" in result.output
    assert "fp16_fallback" not in result.output and "providers=[" not in result.output
    missing = (
        ["export", "missing.pt", str(tmp_path / "out")] if command == "export" else ["log", "--model", "missing.pt"]
    )
    result = runner.invoke(main, missing)
    assert result.exit_code == 2 and f"{Path.cwd() / 'missing.pt'} does not exist" in result.output
    assert "Traceback" not in result.output


def test_an_existing_output_folder_is_refused_before_anything_loads(nothing_loads, tiny_tagger_file, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    result = CliRunner().invoke(main, ["export", str(tiny_tagger_file), str(tmp_path / "out")])
    assert result.exit_code == 2
    assert f"{tmp_path / 'out'} already exists and is not an empty directory; choose a new path" in result.output
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_cuda_on_a_machine_without_it_names_the_install(monkeypatch):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    args = ["--precision", "fp16", "--provider", "CUDAExecutionProvider", "--provider", "CPUExecutionProvider"]
    with pytest.raises(click.UsageError, match="onnxruntime does not offer \\(install onnxruntime-gpu"):
        _export_config(_context(*args).params)
    assert _export_config(_context(*args, "--fp16-fallback").params).onnx.fp16_fallback


def test_directory_option_resolves_relative_paths_and_gives_the_directory_back(tiny_bundle, tmp_path):
    here = Path.cwd()
    runner = CliRunner()
    result = runner.invoke(main, ["-C", str(tiny_bundle.parent), "verify", tiny_bundle.name])
    assert result.exit_code == 0 and result.output.strip().endswith(f"files verified in {tiny_bundle.name}")
    assert Path.cwd() == here
    result = runner.invoke(main, ["-C", str(tmp_path), "log", "--model", "bundle1"])
    assert result.exit_code == 2
    assert (
        f"{tmp_path / 'bundle1'} does not exist (relative paths resolve against the current directory" in result.output
    )
    assert Path.cwd() == here


def test_the_project_resolves_relative_paths_where_mlflow_run_started(tmp_path, monkeypatch):
    """MLflow runs each entry point in the project folder: base_dir (a path parameter) brings the user's."""
    from mlflow.projects._project_spec import load_project

    monkeypatch.chdir(tmp_path)
    project = load_project(str(REPO))
    storage = tmp_path / "storage"
    storage.mkdir()
    for entry, given in (("main", {"model": "bundle1"}), ("promote", {"version": "1", "eval_conll": "test.conll"})):
        command = project.get_entry_point(entry).compute_command(given, str(storage))
        assert command.startswith(f"python -m mlflow_flavor.cli --from-project -C {tmp_path} "), command
        # the run records the parameter as given, not this machine's folder
        params, _ = project.get_entry_point(entry).compute_parameters(given, None)
        assert params["base_dir"] == "."


def test_the_main_entry_takes_a_check_set_and_leaves_it_unset_by_default(tmp_path, monkeypatch):
    """-P parity_sentences=FILE / -P gold_conll=FILE reach the export; left out, the shipped check set is used."""
    import shlex

    from mlflow.projects._project_spec import load_project

    from mlflow_flavor.cli.commands import log_cmd

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.txt").write_text("Angela Merkel visited Paris .\n")
    entry = load_project(str(REPO)).get_entry_point("main")
    storage = tmp_path / "storage"
    storage.mkdir()

    def parsed(given):
        argv = shlex.split(entry.compute_command(given, str(storage)))
        return log_cmd.make_context("log", argv[argv.index("log") + 1 :]).params

    default = parsed({})
    assert default["parity_sentences"] is None and default["gold_conll"] is None
    mine = parsed({"parity_sentences": "mine.txt"})
    assert mine["parity_sentences"] == "mine.txt" and mine["gold_conll"] is None
    with pytest.raises(click.BadParameter, match="does not exist"):
        parsed({"gold_conll": "missing.conll"})
