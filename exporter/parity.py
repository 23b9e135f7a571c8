"""The parity gate: does the exported model tag like the original?

Both models predict the same fresh sentences; the report counts sentences whose entities (character span
and label) are identical, scores the exported model's entities against the original's (micro F1), and
records the largest difference between the two embeddings' token vectors. Every differing sentence is
collected before the gate decides, so a failure lists the worst cases at once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from exporter.config import ParityConfig
from exporter.errors import ParityError

__all__ = ["check_parity", "entity_spans", "gold_spans", "predictions", "span_f1", "token_spans"]

log = logging.getLogger(__name__)

_EMBEDDING_SAMPLE = 16
_WORST_LISTED = 10


def predictions(sentence: Any, label_type: str) -> list[tuple]:
    """What a model predicted for a sentence: entity spans for taggers, labels for text classifiers."""
    spans = entity_spans(sentence, label_type)
    if spans:
        return spans
    return [(label.value,) for label in sentence.get_labels(label_type) if label.data_point is sentence]


def label_scores(sentence: Any, label_type: str) -> dict[str, float]:
    """A text classifier's label scores for one text (empty for taggers)."""
    return {label.value: label.score for label in sentence.get_labels(label_type) if label.data_point is sentence}


def max_score_diff(reference: Sequence[dict[str, float]], other: Sequence[dict[str, float]]) -> float:
    """Largest score difference of a label that both models predicted for the same text."""
    diffs = [abs(a[k] - b[k]) for a, b in zip(reference, other) for k in a.keys() & b.keys()]
    return max(diffs, default=0.0)


def entity_spans(sentence: Any, tag_type: str) -> list[tuple[int, int, str]]:
    """The predicted entities of a Flair sentence as ``(start, end, label)`` character spans."""
    return [
        (span.start_position, span.end_position, span.get_label(tag_type).value)
        for span in sentence.get_spans(tag_type)
    ]


def span_f1(gold: Sequence[set], predicted: Sequence[set]) -> float:
    """Micro F1 of predicted span sets against gold span sets (1.0 when both are empty)."""
    tp = sum(len(g & p) for g, p in zip(gold, predicted))
    n_gold = sum(len(g) for g in gold)
    n_pred = sum(len(p) for p in predicted)
    if n_gold == 0 and n_pred == 0:
        return 1.0
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def _sentence(text: str | Sequence[str]) -> Any:
    from flair.data import Sentence

    return Sentence(text if isinstance(text, str) else list(text))


def _predict(model: Any, texts: Sequence[str | Sequence[str]], batch_size: int) -> list[Any]:
    sentences = [_sentence(t) for t in texts]
    model.predict(sentences, mini_batch_size=batch_size)
    return sentences


def token_spans(sentence: Any, tag_type: str) -> set[tuple[int, int, str]]:
    """Predicted entities as ``(first token, last token + 1, label)``, comparable with gold BIO spans."""
    return {
        (span.tokens[0].idx - 1, span.tokens[-1].idx, span.get_label(tag_type).value)
        for span in sentence.get_spans(tag_type)
    }


def gold_spans(tags: Sequence[str]) -> set[tuple[int, int, str]]:
    """Entities of a BIO (or BIOES) tag sequence as ``(first token, last token + 1, label)``."""
    spans, start, label = set(), None, None
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, kind = tag.partition("-")
        continues = prefix in ("I", "E") and kind == label and start is not None
        if start is not None and not continues:
            spans.add((start, i, label))
            start, label = None, None
        if prefix in ("B", "S") or (prefix in ("I", "E") and start is None):
            start, label = i, kind
        if prefix in ("E", "S") and start is not None:
            spans.add((start, i + 1, label))
            start, label = None, None
    return spans


def _max_embedding_diff(original: Any, exported: Any, texts: Sequence[str]) -> float:
    import torch

    if not texts:
        return 0.0
    a = [_sentence(t) for t in texts]
    b = [_sentence(t) for t in texts]
    with torch.no_grad():
        original.embeddings.embed(a)
        exported.embeddings.embed(b)
    diff = 0.0
    for sa, sb in zip(a, b):
        if original.embeddings.token_embedding:
            for ta, tb in zip(sa, sb):
                diff = max(diff, float((ta.get_embedding() - tb.get_embedding()).abs().max()))
        else:
            diff = max(diff, float((sa.get_embedding() - sb.get_embedding()).abs().max()))
        sa.clear_embeddings()
        sb.clear_embeddings()
    return diff


def check_parity(
    original: Any,
    exported: Any,
    texts: Sequence[str | Sequence[str]],
    config: ParityConfig,
    lossy: bool = False,
    gold: Sequence[set[tuple[int, int, str]]] | None = None,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Compare ``exported`` with ``original`` on ``texts`` (strings, or token lists when ``gold`` labels
    them); return the report, raise :class:`ParityError` when it violates the thresholds."""
    thresholds = config.thresholds(lossy)
    a = _predict(original, texts, batch_size)
    b = _predict(exported, texts, batch_size)
    report = _compare(original, exported, texts, a, b, lossy, thresholds)
    if gold is not None:
        _add_gold_scores(report, gold, a, b, original.label_type)
    failures = _failures(report, thresholds)
    report["passed"] = not failures
    report["failures"] = failures
    _log_report(report)
    if failures and not config.force:
        raise _parity_error(report, failures)
    return report


def _compare(
    original: Any,
    exported: Any,
    texts: Sequence[str | Sequence[str]],
    a: list[Any],
    b: list[Any],
    lossy: bool,
    thresholds: dict[str, float],
) -> dict[str, Any]:
    """The report on how the two models' predictions ``a`` and ``b`` of ``texts`` agree."""
    tag_type = original.label_type
    spans_a = [set(predictions(s, tag_type)) for s in a]
    spans_b = [set(predictions(s, tag_type)) for s in b]
    worst = _differences(texts, spans_a, spans_b)
    n = len(texts)
    identical = n - len(worst)
    report: dict[str, Any] = {
        "sentences": n,
        "lossy": lossy,
        "identical_sentences": identical,
        "tag_agreement": identical / n if n else 1.0,
        "entity_f1_vs_original": span_f1(spans_a, spans_b),
        "entities_original": sum(len(s) for s in spans_a),
        "entities_exported": sum(len(s) for s in spans_b),
        "max_abs_embedding_diff": _max_embedding_diff(original, exported, texts[:_EMBEDDING_SAMPLE]),
        "thresholds": thresholds,
        "worst": worst[:_WORST_LISTED],
    }
    if type(original).__name__ == "TextClassifier":
        report["max_label_score_diff"] = max_score_diff(
            [label_scores(s, tag_type) for s in a], [label_scores(s, tag_type) for s in b]
        )
    return report


def _differences(
    texts: Sequence[str | Sequence[str]], spans_a: Sequence[set], spans_b: Sequence[set]
) -> list[dict[str, Any]]:
    """Every text whose predictions differ, the most differences first."""
    worst = []
    for text, ea, eb in zip(texts, spans_a, spans_b):
        if ea == eb:
            continue
        shown = text if isinstance(text, str) else " ".join(text)
        worst.append(
            {
                "text": shown if len(shown) <= 300 else shown[:300] + " ...",
                "original": sorted(ea),
                "exported": sorted(eb),
                "differences": len(ea ^ eb),
            }
        )
    worst.sort(key=lambda w: -w["differences"])
    return worst


def _add_gold_scores(
    report: dict[str, Any], gold: Sequence[set[tuple[int, int, str]]], a: list[Any], b: list[Any], tag_type: str
) -> None:
    """Both models' F1 against gold labels, and how much the export loses."""
    report["gold_f1_original"] = span_f1(gold, [token_spans(s, tag_type) for s in a])
    report["gold_f1_exported"] = span_f1(gold, [token_spans(s, tag_type) for s in b])
    report["gold_f1_drop"] = report["gold_f1_original"] - report["gold_f1_exported"]


def _failures(report: dict[str, Any], thresholds: dict[str, float]) -> list[str]:
    """The thresholds the report violates, each said with its value."""
    failures = []
    if report["tag_agreement"] < thresholds["min_tag_agreement"]:
        failures.append(f"tag agreement {report['tag_agreement']:.4f} < {thresholds['min_tag_agreement']}")
    if report["entity_f1_vs_original"] < thresholds["min_entity_f1"]:
        failures.append(f"entity F1 vs original {report['entity_f1_vs_original']:.4f} < {thresholds['min_entity_f1']}")
    if "gold_f1_drop" in report and report["gold_f1_drop"] > thresholds["max_gold_f1_drop"]:
        failures.append(f"gold F1 drop {report['gold_f1_drop']:.4f} > {thresholds['max_gold_f1_drop']}")
    return failures


def _log_report(report: dict[str, Any]) -> None:
    gold = (
        f", gold F1 {report['gold_f1_original']:.4f} -> {report['gold_f1_exported']:.4f}"
        if "gold_f1_drop" in report
        else ""
    )
    log.info(
        "Parity on %d sentences: %d identical (%.4f), entity F1 vs original %.4f, max embedding diff %.2e%s",
        report["sentences"],
        report["identical_sentences"],
        report["tag_agreement"],
        report["entity_f1_vs_original"],
        report["max_abs_embedding_diff"],
        gold,
    )


def _parity_error(report: dict[str, Any], failures: list[str]) -> ParityError:
    n, identical = report["sentences"], report["identical_sentences"]
    lines = [f"  {w['text'][:120]!r}: original {w['original']} exported {w['exported']}" for w in report["worst"]]
    return ParityError(
        f"The exported model fails the parity gate on {n} check sentences: {'; '.join(failures)}. "
        f"{n - identical} sentences differ; the worst:\n"
        + "\n".join(lines)
        + "\nChoose a more faithful backend (fp32, per-channel int8), relax the thresholds, or force the export.",
        report,
    )
