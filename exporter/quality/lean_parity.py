"""The lean path's own parity check: a bundle serves lean only where the lean path (``exporter.runtime.lean``)
answered every check text as the bundle's Flair path did.

Both paths run on the same raw texts, each a document of its own, and, for a model with context (FLERT), on
documents of several check texts split into sentences (each sentence then sees its neighbours): a tagger's entities
or token labels with their character offsets, a classifier's every label, must be identical, and the largest score
difference is recorded. Where a text differs, :func:`lean_parity` reports it and the export serves with Flair's code
instead (or, where ``serving_path='lean'`` was asked for, fails).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from exporter.runtime.lean.model import LeanModel
from exporter.runtime.lean.text import documents, flair_documents

__all__ = ["DOCUMENT_TEXTS", "SCORE_TOLERANCE", "lean_parity"]

#: the largest score difference the two paths may show (float32 sums of two libraries; softmax of long CRF paths)
SCORE_TOLERANCE = 1e-4
#: check texts per document for a model with context
DOCUMENT_TEXTS = 3


def _answers(sentence: Any, label_type: str) -> list[tuple[Any, ...]]:
    """``(start, end, label, score)`` per span or labelled token (a tagger), ``(label, score)`` per label; offsets
    count from the start of the sentence's document."""
    base = sentence.start_position or 0
    spans = sentence.get_spans(label_type) if hasattr(sentence, "get_spans") else []
    if spans:
        return [
            (
                base + s.start_position,
                base + s.end_position,
                s.get_label(label_type).value,
                s.get_label(label_type).score,
            )
            for s in spans
        ]
    found = []
    for label in sentence.get_labels(label_type):
        point = label.data_point
        where = (base + point.start_position, base + point.end_position) if point is not sentence else ()
        found.append((*where, label.value, label.score))
    return sorted(found, key=lambda x: x[:-1])


def lean_parity(flair_model: Any, lean_model: LeanModel, texts: Sequence[str], batch_size: int = 32) -> dict[str, Any]:
    """Compare the two paths of one bundle on ``texts`` (and, with context, on documents of them); the report says
    how many were identical and which were not (indexes into ``texts``, then ``d<k>`` for the k-th document)."""
    cases = [(str(i), text, False) for i, text in enumerate(texts)]
    if lean_model.settings.context_length > 0:
        step = DOCUMENT_TEXTS
        cases += [(f"d{k}", " ".join(texts[i : i + step]), True) for k, i in enumerate(range(0, len(texts), step))]
    flair_docs = [flair_documents(text, split) for _, text, split in cases]
    lean_docs = [documents(text, split) for _, text, split in cases]
    all_classes = lean_model.kind == "classifier"
    extra = {"return_probabilities_for_all_classes": True} if all_classes else {}
    flair_sentences = [s for doc in flair_docs for s in doc if len(s)]
    if flair_sentences:
        flair_model.predict(flair_sentences, mini_batch_size=batch_size, **extra)
    lean_model.predict(
        [s for doc in lean_docs for s in doc],
        mini_batch_size=batch_size,
        return_probabilities_for_all_classes=all_classes,
    )
    label_type = lean_model.label_type
    identical, largest, differing = 0, 0.0, []
    for (name, _, _), a, b in zip(cases, flair_docs, lean_docs):
        x = [answer for s in a for answer in _answers(s, label_type)]
        y = [answer for s in b for answer in _answers(s, label_type)]
        same = len(a) == len(b) and [p[:-1] for p in x] == [q[:-1] for q in y]
        diff = max((abs(p[-1] - q[-1]) for p, q in zip(x, y)), default=0.0) if same else 0.0
        if same and diff <= SCORE_TOLERANCE:
            identical += 1
        else:
            differing.append(name)
        largest = max(largest, diff)
    return {
        "texts": len(cases),
        "documents": sum(1 for _, _, split in cases if split),
        "identical": identical,
        "max_score_diff": largest,
        "score_tolerance": SCORE_TOLERANCE,
        "differing": differing[:10],
        "passed": identical == len(cases),
    }
