"""The CLI's export options: choices and defaults come from the library's configs, and build one ExportConfig."""

from __future__ import annotations

import click

from exporter.config import OPTIMIZATION_LEVELS, PRECISIONS, QUANTIZATIONS, Backend, ExportConfig, OnnxOptions
from mlflow_flavor.cli import _export_config, main


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
    args = ["--backend", "torchscript", "--opset", "16", "--optimize", "all", "--quantize", "int8", "--per-tensor"]
    args += ["--fp16-fallback", "--external-data", "--force-max-length", "--strict-providers", "--provider", "A"]
    args += ["--provider", "B", "--intra-op-threads", "1", "--encoder-workers", "2", "--no-length-buckets"]
    args += ["--min-agreement", "0.5", "--force"]
    config = _export_config(_context(*args).params)
    assert config.backend is Backend.TORCHSCRIPT
    assert config.onnx == OnnxOptions(
        opset=16, optimize="all", quantize="int8", per_channel=False, fp16_fallback=True, external_data=True
    )
    assert config.torchscript.force_max_length
    runtime = config.runtime
    assert runtime.providers == ("A", "B") and runtime.strict_providers
    assert (runtime.intra_op_num_threads, runtime.encoder_workers, runtime.length_buckets) == (1, 2, False)
    assert (config.parity.min_tag_agreement, config.parity.force) == (0.5, True)
