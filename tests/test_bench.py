"""The benchmark command runs end to end on a tiny model: it prints its report, writes it where --output says and
logs an MLflow run where a tracking URI is set."""

from __future__ import annotations

import json
import re

import mlflow
import pytest
from click.testing import CliRunner

from mlflow_flavor.cli.commands import main


@pytest.mark.slow
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


@pytest.fixture()
def no_tracking_uri(tmp_path, monkeypatch):
    """A user in a fresh folder who set no tracking URI (the autouse fixture set one: take it back)."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(name)
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    yield folder
    mlflow.set_tracking_uri(None)


def test_a_small_bench_prints_its_report_says_what_it_compared_and_writes_nothing(tiny_tagger_file, no_tracking_uri):
    """The user's reports: `flair-pytorch | 16/32 | 1.0000` (the reference against itself, over half the texts),
    '1 timed passes', and docs/BENCHMARKS.md, mlflow.db and mlruns/ written into the folder it ran in."""
    args = ["bench", "--model", str(tiny_tagger_file), "--sentences", "8", "--repeats", "1", "--threads", "1"]
    args += ["--batch-size", "2", "--batch-size", "4", "--small-batch-sentences", "4", "--backend", "torch"]
    args += ["--no-flair-onnx", "--no-pytorch-buckets", "--no-memory"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = result.stdout
    assert "| flair-pytorch | reference | — |" in report  # no count of the reference against itself
    assert "| torch | 8/8 |" in report  # every text compared: the largest batch size runs over all of them
    assert "batch 4 over all of them, batch 2 over the first 4; 1 timed pass per variant" in report
    assert "scores aside" in report  # what 'identical' counts
    # a figure is true of a machine: the report names the instruction sets int8 and bf16 speed depend on
    assert re.search(r"- Machine: .+ \((AVX-512|AVX2|no AVX2); int8: [^;]+; bf16: [^)]+\)", report), report
    assert list(no_tracking_uri.iterdir()) == []  # no docs/BENCHMARKS.md, mlflow.db or mlruns/
    assert "Not logged to MLflow: no tracking URI is set" in result.stderr
    rows = json.loads(CliRunner().invoke(main, [*args, "--json"]).stdout)
    assert [(r["backend"], r["identical"], r["sentences"]) for r in rows] == [("flair-pytorch", 8, 8), ("torch", 8, 8)]
    assert list(no_tracking_uri.iterdir()) == []
