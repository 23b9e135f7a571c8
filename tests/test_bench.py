"""The benchmark command runs end to end on a tiny model and writes its report and MLflow run."""

from __future__ import annotations

import mlflow
import pytest
from click.testing import CliRunner

from mlflow_flavor.cli.commands import main

pytestmark = pytest.mark.slow


def test_bench_writes_report_keeps_preamble_and_logs_chart(tiny_tagger_file, tmp_path):
    report = tmp_path / "BENCHMARKS.md"
    report.write_text("# Benchmarks\n\nHand-written notes stay.\n")
    args = [
        "bench",
        "--model",
        str(tiny_tagger_file),
        "--sentences",
        "40",
        "--repeats",
        "1",
        "--threads",
        "1",
        "--batch-size",
        "4",
        "--batch-size",
        "16",
        "--small-batch-sentences",
        "12",
        "--backend",
        "onnx",
        "--backend",
        "onnx-int8",
        "--output",
        str(report),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    text = report.read_text()
    assert "Hand-written notes stay." in text
    for variant in ("flair-pytorch", "flair-export-onnx", "pytorch-buckets", "onnx", "onnx-int8"):
        assert f"| {variant} |" in text
    assert "batch 4" in text and "batch 16" in text and "GFLOP/s, useful / executed" in text and "peak RSS" in text
    # a second run replaces the generated block instead of appending another (the smallest run that writes one)
    small = ["bench", "--model", str(tiny_tagger_file), "--sentences", "8", "--repeats", "1", "--threads", "1"]
    small += ["--batch-size", "4", "--small-batch-sentences", "4", "--backend", "onnx", "--output", str(report)]
    small += ["--no-flair-onnx", "--no-pytorch-buckets", "--no-memory"]
    again = CliRunner().invoke(main, small)
    assert again.exit_code == 0, again.output
    assert report.read_text().count("<!-- flair-mlflow bench: start -->") == 1
    runs = mlflow.search_runs(search_all_experiments=True, filter_string="tags.mlflow.runName = 'benchmark'")
    assert len(runs) == 2
    full = runs.sort_values("start_time").iloc[0]  # the first run: both batch sizes
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(full.run_id)}
    assert {"benchmark.png", "BENCHMARKS.md"} <= artifacts
    assert full["metrics.onnx_ratio_b16"] > 0
