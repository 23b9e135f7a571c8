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

__all__ = ["check_parity", "entity_spans", "span_f1"]

log = logging.getLogger(__name__)

_EMBEDDING_SAMPLE = 16
_WORST_LISTED = 10


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


def _predict(model: Any, texts: Sequence[str], batch_size: int) -> list[Any]:
    from flair.data import Sentence

    sentences = [Sentence(t) for t in texts]
    model.predict(sentences, mini_batch_size=batch_size)
    return sentences


def _max_embedding_diff(original: Any, exported: Any, texts: Sequence[str]) -> float:
    import torch
    from flair.data import Sentence

    if not texts:
        return 0.0
    a = [Sentence(t) for t in texts]
    b = [Sentence(t) for t in texts]
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
    original: Any, exported: Any, texts: Sequence[str], config: ParityConfig, batch_size: int = 32
) -> dict[str, Any]:
    """Compare ``exported`` with ``original`` on ``texts``; return the report, raise :class:`ParityError` on failure."""
    tag_type = original.label_type
    a = _predict(original, texts, batch_size)
    b = _predict(exported, texts, batch_size)
    spans_a = [set(entity_spans(s, tag_type)) for s in a]
    spans_b = [set(entity_spans(s, tag_type)) for s in b]
    worst = []
    identical = 0
    for text, ea, eb in zip(texts, spans_a, spans_b):
        if ea == eb:
            identical += 1
            continue
        worst.append(
            {
                "text": text if len(text) <= 300 else text[:300] + " ...",
                "original": sorted(ea),
                "exported": sorted(eb),
                "differences": len(ea ^ eb),
            }
        )
    worst.sort(key=lambda w: -w["differences"])
    n = len(texts)
    report = {
        "sentences": n,
        "identical_sentences": identical,
        "tag_agreement": identical / n if n else 1.0,
        "entity_f1_vs_original": span_f1(spans_a, spans_b),
        "entities_original": sum(len(s) for s in spans_a),
        "entities_exported": sum(len(s) for s in spans_b),
        "max_abs_embedding_diff": _max_embedding_diff(original, exported, texts[:_EMBEDDING_SAMPLE]),
        "thresholds": {"min_tag_agreement": config.min_tag_agreement},
        "worst": worst[:_WORST_LISTED],
    }
    report["passed"] = report["tag_agreement"] >= config.min_tag_agreement
    log.info(
        "Parity on %d sentences: %d identical (%.4f), entity F1 vs original %.4f, max embedding diff %.2e",
        n,
        identical,
        report["tag_agreement"],
        report["entity_f1_vs_original"],
        report["max_abs_embedding_diff"],
    )
    if not report["passed"] and not config.force:
        lines = [f"  {w['text'][:120]!r}: original {w['original']} exported {w['exported']}" for w in report["worst"]]
        raise ParityError(
            f"The exported model tags {n - identical} of {n} check sentences differently from the original "
            f"(agreement {report['tag_agreement']:.4f} < required {config.min_tag_agreement}). Worst sentences:\n"
            + "\n".join(lines)
            + "\nChoose a lossless backend, relax parity.min_tag_agreement, or force the export.",
            report,
        )
    return report
