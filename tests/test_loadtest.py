"""The load-test command serves each backend for real and reports latency, throughput, errors and memory."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mlflow_flavor.cli import main

pytestmark = pytest.mark.slow


def test_loadtest_reports_both_backends(tiny_tagger_file, tmp_path):
    report = tmp_path / "BENCHMARKS.md"
    args = ["loadtest", "--model", str(tiny_tagger_file), "--clients", "2", "--requests", "10", "--output", str(report)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout[result.stdout.index("[") :])
    assert [r["backend"] for r in rows] == ["torch", "onnx"]
    for row in rows:
        assert row["errors"] == 0 and row["requests"] == 20
        assert row["rps"] > 0 and row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
        assert row["rss_max_mb"] > 50
    assert "<!-- flair-mlflow loadtest: start -->" in report.read_text()
