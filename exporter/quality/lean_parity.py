"""The lean path's own parity check: a bundle serves lean only where the lean path (``exporter.runtime.lean``)
answered every check text as the bundle's Flair path did.

Both paths run on the same raw texts (each a document of its own): a tagger's entities or token labels with their
character offsets, a classifier's every label, must be identical, and the largest score difference is recorded.
Where a text differs, :func:`lean_parity` reports it and the export serves with Flair's code instead (or, where
``serving_path='lean'`` was asked for, fails).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from exporter.runtime.lean.model import LeanModel
from exporter.runtime.lean.text import documents

__all__ = ["SCORE_TOLERANCE", "lean_parity"]

#: the largest score difference the two paths may show (float32 sums of two libraries; softmax of long CRF paths)
SCORE_TOLERANCE = 1e-4


def _answers(sentence: Any, label_type: str) -> list[tuple[Any, ...]]:
    """``(start, end, label, score)`` per span or labelled token (a tagger), ``(label, score)`` per label."""
    spans = sentence.get_spans(label_type) if hasattr(sentence, "get_spans") else []
    if spans:
        return [
            (s.start_position, s.end_position, s.get_label(label_type).value, s.get_label(label_type).score)
            for s in spans
        ]
    found = []
    for label in sentence.get_labels(label_type):
        point = label.data_point
        where = (point.start_position, point.end_position) if point is not sentence else ()
        found.append((*where, label.value, label.score))
    return sorted(found, key=lambda x: x[:-1])


def lean_parity(flair_model: Any, lean_model: LeanModel, texts: Sequence[str], batch_size: int = 32) -> dict[str, Any]:
    """Compare the two paths of one bundle on ``texts``; the report says how many texts were identical."""
    from flair.data import Sentence

    texts = [t for t in texts if t.strip()]
    flair_sentences = []
    for text in texts:
        sentence = Sentence(text)
        sentence._has_context = True  # a document of its own, as the pyfunc makes it
        flair_sentences.append(sentence)
    lean_sentences = [documents(text, False)[0] for text in texts]
    all_classes = lean_model.kind == "classifier"
    extra = {"return_probabilities_for_all_classes": True} if all_classes else {}
    flair_model.predict([s for s in flair_sentences if len(s)], mini_batch_size=batch_size, **extra)
    lean_model.predict(lean_sentences, mini_batch_size=batch_size, return_probabilities_for_all_classes=all_classes)
    label_type = lean_model.label_type
    identical, largest, differing = 0, 0.0, []
    for index, (a, b) in enumerate(zip(flair_sentences, lean_sentences)):
        x, y = _answers(a, label_type), _answers(b, label_type)
        same = [p[:-1] for p in x] == [q[:-1] for q in y]
        diff = max((abs(p[-1] - q[-1]) for p, q in zip(x, y)), default=0.0) if same else 0.0
        if same and diff <= SCORE_TOLERANCE:
            identical += 1
        else:
            differing.append(index)
        largest = max(largest, diff)
    return {
        "texts": len(texts),
        "identical": identical,
        "max_score_diff": largest,
        "score_tolerance": SCORE_TOLERANCE,
        "differing": differing[:10],
        "passed": identical == len(texts),
    }
