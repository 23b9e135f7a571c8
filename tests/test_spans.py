"""One rule for BIO/BIOES tags to spans: Flair's `get_spans_from_bio`, which its ColumnCorpus reads gold columns
with and its taggers decode predictions with. The gold spans of the evaluation and the parity gate
(`exporter.quality.metrics.gold_spans`) and the lean path's decoding (`exporter.runtime.lean.heads.spans_from_bio`)
both follow it, malformed sequences included (the gold reader used to close a span at every E-: `B-PER E-PER I-PER`
gave two entities where Flair reads one)."""

from __future__ import annotations

import random

from flair.data import get_spans_from_bio

from exporter.quality.metrics import gold_spans
from exporter.runtime.lean.heads import spans_from_bio

TAGS = ["O", "", "_", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]


def _sequences(count: int, seed: int):
    rng = random.Random(seed)
    for _ in range(count):
        length = rng.randint(0, 10)
        yield [rng.choice(TAGS) for _ in range(length)], [rng.random() for _ in range(length)]


def test_gold_spans_are_read_as_flair_reads_a_gold_column():
    assert gold_spans(["B-PER", "E-PER", "I-PER"]) == {(0, 3, "PER")}  # Flair: one entity
    for tags, _ in _sequences(5000, seed=1):
        expected = {(ix[0], ix[-1] + 1, label) for ix, _, label in get_spans_from_bio(list(tags))}
        assert gold_spans(tags) == expected, tags


def test_the_lean_decoder_is_flairs_on_the_same_tags_and_scores():
    for tags, scores in _sequences(5000, seed=2):
        assert spans_from_bio(list(tags), scores) == get_spans_from_bio(list(tags), scores), tags
