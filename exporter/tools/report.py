"""What the benchmarks share and that needs neither torch nor Flair: the sentences they run on and the generated
blocks they write into a Markdown report (``docs/BENCHMARKS.md``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from exporter.quality.corpus import generate_sentences, read_conll

__all__ = ["benchmark_sentences", "percentile", "write_report"]


def benchmark_sentences(conll: Path | None, num_sentences: int, min_words: int) -> tuple[list[str], str]:
    """The sentences a benchmark runs on and a description of where they come from: the first ``num_sentences``
    of at least ``min_words`` words of a CoNLL file, else generated ones."""
    if conll:
        texts = []
        for sentence in read_conll(conll):
            if len(sentence) >= min_words:
                texts.append(" ".join(w for w, _ in sentence))
            if len(texts) >= num_sentences:
                break
        where = f"`{conll.name}` ({conll.parent.name})"
        return texts, f"the first {len(texts)} sentences of at least {min_words} words of {where}"

    texts = generate_sentences(num_sentences, seed=11, long_every=0)
    return texts, f"{len(texts)} generated sentences"


def write_report(output: Path, markdown: str, section: str = "bench") -> None:
    """Replace the generated block ``section`` of ``output`` (between its markers), keeping everything else."""
    start_mark, end_mark = f"<!-- flair-mlflow {section}: start -->", f"<!-- flair-mlflow {section}: end -->"
    block = f"{start_mark}\n{markdown}{end_mark}\n"
    text = output.read_text(encoding="utf-8") if output.exists() else "# Benchmarks\n\n"
    if start_mark in text and end_mark in text:
        head, rest = text.split(start_mark, 1)
        tail = rest.split(end_mark, 1)[1].lstrip("\n")
        text = head + block + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0 to 1) of ``values`` by nearest rank, as the bench and the load test report latencies
    (0.0 for no values)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else 0.0
