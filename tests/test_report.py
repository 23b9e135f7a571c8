"""exporter.tools.report: what the measuring tools share."""

from __future__ import annotations

from exporter.tools.report import percentile


def test_one_percentile_for_the_bench_and_the_load_test():
    assert percentile([], 0.5) == 0.0
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0  # sorted first
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.95) == 4.0 and percentile([1.0, 2.0, 3.0, 4.0], 0.0) == 1.0
