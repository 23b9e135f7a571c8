"""The load-test command serves each backend for real, adaptive batching off and on, and reports the
in-process rate, the served rates, the efficiency, latency, errors and memory."""

from __future__ import annotations

import contextlib
import json
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from mlflow_flavor.cli.commands import main
from mlflow_flavor.tools import loadtest


@pytest.mark.slow
def test_loadtest_reports_every_backend_with_batching_off_and_on(tiny_tagger_file, tmp_path):
    report = tmp_path / "BENCHMARKS.md"
    args = ["loadtest", "--model", str(tiny_tagger_file), "--backend", "torch", "--backend", "int8"]
    args += ["--clients", "4", "--requests", "6", "--sentences", "40", "--long-words", "2500", "--output", str(report)]
    args += ["--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    long_rows = [r for r in rows if "words" in r]
    cold_rows = [r for r in rows if "cold_start" in r]
    rows = [r for r in rows if "words" not in r and "cold_start" not in r]
    # launching the server until the first answer, beside a do-nothing pyfunc in the same run
    assert [r["cold_start"] for r in cold_rows] == ["do-nothing pyfunc", "torch", "int8"]
    for row in cold_rows:
        assert 0 < row["server_up_s"] <= row["first_answer_s"] < 300
    assert min(r["first_answer_s"] for r in cold_rows[1:]) > cold_rows[0]["first_answer_s"] * 0.5
    assert [(r["backend"], r["words"]) for r in long_rows] == [("torch", 2500), ("int8", 2500)]
    for row in long_rows:
        assert row["warm_mb"] > 50 and row["peak_above_warm_mb"] >= 0
        assert row["ms_per_word_1000"] > 0 and row["ms_per_word_long"] > 0
    assert [(r["backend"], r["batching"]) for r in rows] == [
        ("torch", "off"),
        ("torch", "on"),
        ("int8", "off"),
        ("int8", "on"),
    ]
    for row in rows:
        assert row["errors"] == 0 and row["requests"] == 24
        assert row["texts_per_s"] > 0 and row["bulk_texts_per_s"] > 0 and row["in_process_texts_per_s"] > 0
        assert row["efficiency"] == pytest.approx(row["texts_per_s"] / row["in_process_texts_per_s"])
        assert 0 < row["p50_1x1_ms"] and row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
        assert row["rss_bulk_mb"] > 50 and row["rss_concurrent_mb"] > 50
        assert 0 <= row["changed_share"] <= 1
        # torch is lossless and the default int8 recipe batch-independent: entities never depend on the batch
        assert row["changed_share"] == 0, row
    text = report.read_text()
    assert "<!-- flair-mlflow loadtest: start -->" in text and "| int8 | mlflow | on |" in text
    assert "One long text" in text and "| do-nothing pyfunc |" in text


@pytest.mark.slow
def test_loadtest_runs_mlserver_and_two_workers_with_the_same_answers(tiny_tagger_file, tmp_path):
    """MLServer (V2 requests) with its own batching, and two uvicorn workers: texts answered as alone."""
    pytest.importorskip("mlserver_mlflow", reason='pip install -e ".[mlserver]"')
    args = ["loadtest", "--model", str(tiny_tagger_file), "--backend", "onnx", "--batching", "on"]
    args += ["--server", "mlserver-batching", "--server", "mlflow-2workers", "--clients", "4", "--requests", "6"]
    args += ["--sentences", "40", "--no-cold-start", "--output", str(tmp_path / "BENCHMARKS.md"), "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["server"], r["batching"]) for r in rows] == [("mlserver-batching", "on"), ("mlflow-2workers", "on")]
    for row in rows:
        assert row["errors"] == 0 and row["requests"] == 24 and row["changed_share"] == 0, row
        assert row["texts_per_s"] > 0 and row["rss_concurrent_mb"] > 50
    assert "| onnx | mlserver-batching | on |" in (tmp_path / "BENCHMARKS.md").read_text()


def test_loadtest_refuses_unknown_backends_before_any_work(tiny_tagger_file):
    result = CliRunner().invoke(main, ["loadtest", "--model", str(tiny_tagger_file), "--backend", "int4"])
    assert result.exit_code == 2 and "'int4' is not one of 'torch', 'onnx', 'int8'" in result.output


SERVED = {
    "p50_1x1_ms": 5.0,
    "bulk_texts_per_s": 90.0,
    "texts_per_s": 80.0,
    "requests": 24,
    "p50_ms": 10.0,
    "p95_ms": 12.0,
    "p99_ms": 13.0,
    "changed_share": 0.0,
    "errors": 0,
    "rss_bulk_mb": 300.0,
    "rss_concurrent_mb": 310.0,
}


@pytest.fixture()
def no_servers(monkeypatch):
    """The load test's run with its models, servers and clients stood in for (what is checked: where it reports)."""

    @contextlib.contextmanager
    def serving(server, model_dir, work, env):
        yield SimpleNamespace(pid=0), None

    monkeypatch.setattr(loadtest, "_save", lambda config, backend, path: None)
    monkeypatch.setattr(loadtest, "_save_do_nothing", lambda path: path)
    monkeypatch.setattr(loadtest, "first_answer", lambda *args, **kwargs: {"server_up_s": 1.0, "first_answer_s": 2.0})
    monkeypatch.setattr(loadtest, "_in_process", lambda model_dir, texts: (100.0, {}))
    monkeypatch.setattr(loadtest, "_serving", serving)
    monkeypatch.setattr(loadtest, "_served_phases", lambda *args, **kwargs: dict(SERVED))


def test_loadtest_prints_its_report_and_writes_a_file_only_when_asked(
    tiny_tagger_file, no_servers, tmp_path, monkeypatch
):
    """The user's report: the measuring tools wrote into docs/BENCHMARKS.md of whatever folder they ran in."""
    folder = tmp_path / "checkout"
    (folder / "docs").mkdir(parents=True)
    published = (
        "# Benchmarks\n\n<!-- flair-mlflow loadtest: start -->\npublished\n<!-- flair-mlflow loadtest: end -->\n"
    )
    (folder / "docs" / "BENCHMARKS.md").write_text(published)
    monkeypatch.chdir(folder)
    args = ["loadtest", "--model", str(tiny_tagger_file), "--backend", "onnx", "--batching", "on", "--sentences", "8"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "| onnx | mlflow | on | 100 | 90 | 80 | 0.80 |" in result.stdout  # the report, printed
    assert "| do-nothing pyfunc | 1.0 | 2.0 | 1.00x |" in result.stdout
    assert (folder / "docs" / "BENCHMARKS.md").read_text() == published  # the published section untouched
    assert sorted(p.name for p in folder.iterdir()) == ["docs"]  # no mlflow.db, no mlruns/
    # --output: written there (its section replaced); --json: the rows instead of the report
    report = tmp_path / "mine.md"
    result = CliRunner().invoke(main, [*args, "--output", str(report), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r.get("backend", r.get("cold_start")) for r in rows] == ["onnx", "do-nothing pyfunc", "onnx"]
    assert "| onnx | mlflow | on | 100 | 90 | 80 | 0.80 |" in report.read_text()
    assert (folder / "docs" / "BENCHMARKS.md").read_text() == published
