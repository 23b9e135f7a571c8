"""Labeled data and the scores of predictions against it, computed as Flair's own ``evaluate`` computes them.

A tagger's answer for one sentence is a set of entity spans ``(first token, last token + 1, label)``, a text
classifier's a set of labels. Per label, true positives are items in both the gold and the predicted set, false
positives predicted items that are not gold (a right span with the wrong label counts against the predicted
label), false negatives gold items that were not predicted. Micro scores sum those counts over the labels;
macro scores average the labels' own scores over every label seen in the gold or the predictions; precision,
recall and F1 are 0 where they are undefined. That is scikit-learn's ``classification_report`` with
``zero_division=0`` over Flair's span-aligned labels, which is what ``flair.nn.Classifier.evaluate`` reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter.config import SEQUENCE_TAGGING, TEXT_CLASSIFICATION
from exporter.errors import ConfigError
from exporter.quality.corpus import LABEL_PREFIX, read_conll, read_labeled_texts
from exporter.runtime.lean.heads import spans_from_bio

__all__ = ["Examples", "f1_of_counts", "gold_spans", "labels_of", "load_examples", "score"]


@dataclass(frozen=True)
class Examples:
    """A labeled set: the texts as a client sends them, and the gold answer of each."""

    task: str
    path: str
    texts: list[str]
    gold: list[frozenset]
    tokens: list[list[str]] | None = None  # taggers: the file's tokens

    def __len__(self) -> int:
        return len(self.texts)


def load_examples(path: str | Path, task: str, limit: int | None = None) -> Examples:
    """Read a labeled file for ``task`` (``tagger``: CoNLL; ``classifier``: ``__label__x text`` lines).

    Raises:
        ConfigError: the file holds nothing of the kind the model needs, or the task is not scored here.
    """
    if task not in (TEXT_CLASSIFICATION, SEQUENCE_TAGGING):
        raise ConfigError(
            f"Labeled data is read for taggers (CoNLL) and text classifiers ({LABEL_PREFIX} lines); a {task} model "
            "is not evaluated by flair-mlflow yet: use Flair's own model.evaluate on its corpus."
        )
    if task == TEXT_CLASSIFICATION:
        rows = list(read_labeled_texts(path, limit))
        if not rows:
            raise ConfigError(
                f"{path} holds no labeled texts. A text classifier is evaluated on lines such as "
                f"'{LABEL_PREFIX}sports The match ended 2-1 .' (Flair's ClassificationCorpus format)."
            )
        return Examples(
            TEXT_CLASSIFICATION, str(path), [text for _, text in rows], [frozenset(labels) for labels, _ in rows]
        )
    sentences = list(read_conll(path, limit))
    if not sentences:
        raise ConfigError(f"{path} holds no sentences: a tagger is evaluated on a two-column CoNLL file (token TAG).")
    if sentences[0][0][0].startswith(LABEL_PREFIX):
        raise ConfigError(
            f"{path} looks like text classification data ({LABEL_PREFIX}...), but the model is a tagger: give a "
            "two-column CoNLL file (token TAG)."
        )
    tokens = [[w for w, _ in s] for s in sentences]
    return Examples(
        SEQUENCE_TAGGING,
        str(path),
        [" ".join(t) for t in tokens],
        [frozenset(gold_spans([tag for _, tag in s])) for s in sentences],
        tokens,
    )


def _counts(gold: Sequence[frozenset], predicted: Sequence[frozenset]) -> dict[str, list[int]]:
    """Per label: [true positives, false positives, false negatives] (items are entity spans or labels)."""
    counts: dict[str, list[int]] = {}

    def label(item) -> str:
        return item[-1] if isinstance(item, tuple) else item

    for g, p in zip(gold, predicted):
        for item in g & p:
            counts.setdefault(label(item), [0, 0, 0])[0] += 1
        for item in p - g:
            counts.setdefault(label(item), [0, 0, 0])[1] += 1
        for item in g - p:
            counts.setdefault(label(item), [0, 0, 0])[2] += 1
    return counts


def f1_of_counts(tp: Any, fp: Any, fn: Any) -> Any:
    """F1 of true positive, false positive and false negative counts (numbers or arrays of them), as
    scikit-learn's ``classification_report`` with ``zero_division=0`` computes it and Flair's ``evaluate`` reports
    it: ``2 tp / (2 tp + fp + fn)``, and 0 where there is no true positive, also where there was nothing to find
    and nothing was found (Flair's ``evaluate`` then reports a main score of 0). The one F1 of flair-mlflow: the
    parity gate, its bootstrap intervals, ``evaluate`` and the quality gate all compute it here."""
    import numpy as np

    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    denominator = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(denominator), where=tp > 0)
    return f1 if f1.ndim else float(f1)


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall and F1 as scikit-learn computes them (``zero_division=0``), as Flair reports them."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return precision, recall, f1_of_counts(tp, fp, fn)


def score(gold: Sequence[frozenset], predicted: Sequence[frozenset], task: str) -> dict[str, Any]:
    """Micro / macro F1, precision, recall (and accuracy for classifiers) plus ``per_label`` rows."""
    counts = _counts(gold, predicted)
    per_label = {}
    for name in sorted(counts):
        tp, fp, fn = counts[name]
        p, r, f = _prf(tp, fp, fn)
        per_label[name] = {"precision": p, "recall": r, "f1": f, "support": tp + fn, "predicted": tp + fp}
    totals = [sum(c[i] for c in counts.values()) for i in range(3)]
    p, r, f = _prf(*totals)
    result: dict[str, Any] = {"f1_micro": f, "precision_micro": p, "recall_micro": r}
    for key in ("f1", "precision", "recall"):
        values = [row[key] for row in per_label.values()]
        result[f"{key}_macro"] = sum(values) / len(values) if values else 0.0
    if task == TEXT_CLASSIFICATION:
        result["accuracy"] = sum(g == p for g, p in zip(gold, predicted)) / len(gold) if gold else 0.0
    result["per_label"] = per_label
    return result


def labels_of(*answers: Sequence[frozenset]) -> list[str]:
    """Every label in gold or predicted answers (an entity span ends with its label)."""
    return sorted({x[-1] if isinstance(x, tuple) else x for sets in answers for s in sets for x in s})


def gold_spans(tags: Sequence[str]) -> set[tuple[int, int, str]]:
    """Entities of a BIO (or BIOES) tag sequence as ``(first token, last token + 1, label)``, read as Flair's
    ``ColumnCorpus`` reads a gold column (``flair.data.get_spans_from_bio``, whose numpy-free copy the lean path
    decodes predictions with): one rule for gold and predicted tags, also on malformed sequences."""
    found = spans_from_bio(list(tags), [1.0] * len(tags))
    return {(indexes[0], indexes[-1] + 1, label) for indexes, _, label in found}
