"""The parity gate: does the exported model tag like the original?

Both models predict the same fresh sentences; the report counts sentences whose entities (character span
and label) are identical, scores the exported model's entities against the original's (micro F1), and
records the largest difference between the two embeddings' token vectors. Every differing sentence is
collected before the gate decides, so a failure lists the worst cases at once.

Each F1 comes with a 95 % bootstrap interval over sentences (:func:`bootstrap_intervals`): the sentences are
resampled with replacement 1,000 times (fixed seed) and the F1 recomputed from the resampled sums of
per-sentence true positives, false positives and false negatives. An interval that holds the threshold says
that the verdict could go the other way on other sentences of the same kind.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from exporter.config import (
    SEQUENCE_TAGGING,
    TEXT_CLASSIFICATION,
    TEXT_PAIR_CLASSIFICATION,
    TEXT_PAIR_REGRESSION,
    ParityConfig,
)
from exporter.errors import ParityError
from exporter.format.modelfile import SUPPORTED_MODELS, model_embeddings
from exporter.format.specs import spec
from exporter.format.tasks import is_multitask, task_models
from exporter.quality.advice import char_lm_advice, more_faithful_recipes
from exporter.quality.metrics import f1_of_counts

__all__ = [
    "BOOTSTRAP",
    "bootstrap_intervals",
    "check_parity",
    "entity_spans",
    "predictions",
    "span_counts",
    "span_f1",
    "threshold_failures",
    "token_spans",
]

log = logging.getLogger(__name__)

_EMBEDDING_SAMPLE = 16
_WORST_LISTED = 10
#: the bootstrap of the report's intervals: resamples, seed, confidence
BOOTSTRAP = {"method": "percentile bootstrap over sentences", "resamples": 1000, "seed": 12, "confidence": 0.95}
_DRAWS_PER_CHUNK = 500_000  # sentence draws resampled at once (bounds the memory of a large check set)


def predictions(sentence: Any, label_type: str) -> list[tuple]:
    """What a model predicted for a sentence: entity spans for taggers, each token's label for taggers of token
    labels (part of speech) as ``(start, end, label)`` too, labels for text classifiers."""
    spans = entity_spans(sentence, label_type) if hasattr(sentence, "get_spans") else []
    if spans:
        return spans
    return [
        (label.value,) if label.data_point is sentence else (*_offsets(label.data_point), label.value)
        for label in sentence.get_labels(label_type)
    ]


def all_predictions(model: Any, sentence: Any) -> list[tuple]:
    """What ``model`` predicted for a sentence; for a multitask model every task's, each led by its label type."""
    if not is_multitask(model):
        return predictions(sentence, model.label_type)
    return [(m.label_type, *p) for m in task_models(model) for p in predictions(sentence, m.label_type)]


def _offsets(point: Any) -> tuple[int, ...]:
    if hasattr(point, "first") and hasattr(point, "second"):  # a relation: its head's and its tail's offsets
        return (*_offsets(point.first), *_offsets(point.second))
    return point.start_position, point.end_position


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
    """Micro F1 of predicted span sets against gold span sets (0 where nothing was found, as Flair reports it)."""
    return _f1_of_counts(span_counts(gold, predicted))


def span_counts(gold: Sequence[set], predicted: Sequence[set]) -> Any:
    """Per-sentence ``(true positives, false positives, false negatives)`` of predicted against gold span
    sets, as an integer array of shape ``(sentences, 3)``; :func:`span_f1` is the F1 of its column sums."""
    import numpy as np

    rows = [(len(g & p), len(p - g), len(g - p)) for g, p in zip(gold, predicted)]
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def _f1_of_counts(counts: Any) -> float:
    """Micro F1 of per-sentence ``(tp, fp, fn)`` (:func:`span_counts`)."""
    return float(_f1_of_sums(counts.sum(axis=0)))


def _f1_of_sums(sums: Any) -> Any:
    """Micro F1 of summed ``(tp, fp, fn)`` in the last axis, by :func:`exporter.quality.metrics.f1_of_counts`."""
    return f1_of_counts(sums[..., 0], sums[..., 1], sums[..., 2])


def _resampled_sums(counts: Any, resamples: int, seed: int) -> Any:
    """The column sums of ``counts`` over ``resamples`` resamples of its rows, drawn with replacement."""
    import numpy as np

    n = len(counts)
    rng = np.random.default_rng(seed)
    rows_per_chunk = max(1, _DRAWS_PER_CHUNK // n)
    sums = []
    for start in range(0, resamples, rows_per_chunk):
        picks = rng.integers(0, n, size=(min(rows_per_chunk, resamples - start), n))
        sums.append(counts[picks].sum(axis=1))
    return np.concatenate(sums)


def bootstrap_intervals(
    counts: dict[str, Any], differences: Sequence[tuple[str, str, str]] = (), **bootstrap: Any
) -> dict[str, list[float]]:
    """Percentile bootstrap intervals of micro F1 over sentences, all from the same resamples (paired).

    Args:
        counts: name -> per-sentence ``(tp, fp, fn)`` (:func:`span_counts`), the same sentences in each.
        differences: ``(name, minuend, subtrahend)``: also the interval of the difference of two F1s.
        bootstrap: overrides of :data:`BOOTSTRAP` (``resamples``, ``seed``, ``confidence``).

    Returns:
        name -> ``[low, high]``, widened where needed to hold the F1 of all sentences (the point estimate);
        ``[F1, F1]`` when there are no sentences.
    """
    import numpy as np

    settings = {**BOOTSTRAP, **bootstrap}
    matrices = [np.asarray(c, dtype=np.int64).reshape(-1, 3) for c in counts.values()]
    points = {name: float(_f1_of_sums(m.sum(axis=0))) for name, m in zip(counts, matrices)}
    points.update({name: points[a] - points[b] for name, a, b in differences})
    if not len(matrices[0]):
        return {name: [point, point] for name, point in points.items()}
    sums = _resampled_sums(np.concatenate(matrices, axis=1), settings["resamples"], settings["seed"])
    f1s = {name: _f1_of_sums(sums[:, 3 * i : 3 * i + 3]) for i, name in enumerate(counts)}
    f1s.update({name: f1s[a] - f1s[b] for name, a, b in differences})
    tail = (1 - settings["confidence"]) / 2
    intervals = {}
    for name, values in f1s.items():
        low, high = np.quantile(values, [tail, 1 - tail])
        intervals[name] = [min(float(low), points[name]), max(float(high), points[name])]
    return intervals


def _sentence(text: str | Sequence[str]) -> Any:
    from flair.data import Sentence

    return Sentence(text if isinstance(text, str) else list(text))


def _task_of(model: Any) -> str | None:
    return SUPPORTED_MODELS.get(type(model).__name__)


def is_pair_model(model: Any) -> bool:
    """Whether ``model`` answers pairs of texts (Flair's TextPairClassifier, TextPairRegressor)."""
    return spec(_task_of(model)).pairs


#: a regressor's two values agree when they differ by at most this, relative to the value (1 below 1): float
#: arithmetic in another order (an ONNX encoder) moves the 5th-6th digit
VALUE_TOLERANCE = 1e-3


def is_regressor(model: Any) -> bool:
    """Whether ``model`` answers a number (Flair's TextPairRegressor) rather than labels."""
    return _task_of(model) == TEXT_PAIR_REGRESSION


def same_values(values_a: list[set], values_b: list[set]) -> float:
    """Where a regressor's two values agree within :data:`VALUE_TOLERANCE`, count them as the same answer (the
    exported value replaced by the original's in ``values_b``); the largest difference of all."""
    largest = 0.0
    for i, (a, b) in enumerate(zip(values_a, values_b)):
        if len(a) == len(b) == 1:
            (va,), (vb,) = next(iter(a)), next(iter(b))
            diff = abs(float(va) - float(vb))
            largest = max(largest, diff)
            if diff <= VALUE_TOLERANCE * max(1.0, abs(float(va))):
                values_b[i] = set(a)
    return largest


def data_point(model: Any, text: Any) -> Any:
    """A Flair data point of ``text``: a sentence, or for a pair model a ``TextPair`` of a text's two parts."""
    if is_pair_model(model):
        from flair.data import TextPair

        first, second = text
        return TextPair(_sentence(first), _sentence(second))
    return _sentence(text)


def _predict(model: Any, texts: Sequence[Any], batch_size: int) -> list[Any]:
    sentences = [data_point(model, t) for t in texts]
    model.predict(sentences, mini_batch_size=batch_size)
    return sentences


def token_spans(sentence: Any, tag_type: str) -> set[tuple[int, int, str]]:
    """Predicted entities as ``(first token, last token + 1, label)``, comparable with gold BIO spans."""
    return {
        (span.tokens[0].idx - 1, span.tokens[-1].idx, span.get_label(tag_type).value)
        for span in sentence.get_spans(tag_type)
    }


def _max_embedding_diff(original: Any, exported: Any, texts: Sequence[str]) -> float:
    if not texts:
        return 0.0
    if is_pair_model(original):  # the embeddings of each pair's first text
        texts = [t[0] for t in texts]
    return max(
        _embedding_diff(model_embeddings(x), model_embeddings(y), texts)
        for x, y in zip(task_models(original), task_models(exported))
    )


def _embedding_diff(embeddings: Any, other: Any, texts: Sequence[str]) -> float:
    import torch

    a = [_sentence(t) for t in texts]
    b = [_sentence(t) for t in texts]
    with torch.no_grad():
        embeddings.embed(a)
        other.embed(b)
    diff = 0.0
    for sa, sb in zip(a, b):
        if embeddings.embedding_type == "word-level":
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
    recipe: str | None = None,
    char_lms: bool = False,
) -> dict[str, Any]:
    """Compare ``exported`` with ``original`` on ``texts`` (strings, or token lists when ``gold`` labels
    them); return the report, raise :class:`ParityError` when it violates the thresholds.

    ``recipe``, the int8 recipe of a quantized export, is recorded as the report's ``int8_recipe``;
    ``char_lms``: what was quantized is Flair's character language models (the advice of a failure differs).
    """
    thresholds = config.thresholds(lossy)
    a = _predict(original, texts, batch_size)
    b = _predict(exported, texts, batch_size)
    report = _compare(original, exported, texts, a, b, lossy, thresholds)
    if gold is not None:
        _add_gold_scores(report, gold, a, b, original.label_type)  # single taggers only (save refuses others)
    report["bootstrap"] = dict(BOOTSTRAP)
    if recipe is not None:
        report["int8_recipe"] = recipe
        if char_lms:
            report["int8_of"] = "character language models"
    failures = threshold_failures(report, thresholds)
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
    spans_a = [set(all_predictions(original, s)) for s in a]
    spans_b = [set(all_predictions(original, s)) for s in b]
    value_diff = None
    if is_regressor(original):
        value_diff = same_values(spans_a, spans_b)
    worst = _differences(texts, spans_a, spans_b)
    counts = span_counts(spans_a, spans_b)
    n = len(texts)
    identical = n - len(worst)
    keys = parity_keys(measure_of(original))
    report: dict[str, Any] = {
        "sentences": n,
        "lossy": lossy,
        "measure": measure_of(original),
        "identical_sentences": identical,
        keys["agreement"]: identical / n if n else 1.0,
        keys["f1"]: _f1_of_counts(counts),
        f"{keys['f1']}_interval": bootstrap_intervals({"f1": counts})["f1"],
        keys["original"]: sum(len(s) for s in spans_a),
        keys["exported"]: sum(len(s) for s in spans_b),
        "max_abs_embedding_diff": _max_embedding_diff(original, exported, texts[:_EMBEDDING_SAMPLE]),
        "thresholds": thresholds,
        "worst": worst[:_WORST_LISTED],
    }
    if value_diff is not None:
        report["max_abs_value_diff"] = value_diff
        report["value_tolerance"] = VALUE_TOLERANCE
    if measure_of(original) == "label":
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
    """Both models' F1 against gold labels, how much the export loses, and the intervals of the three."""
    counts = {
        "gold_f1_original": span_counts(gold, [token_spans(s, tag_type) for s in a]),
        "gold_f1_exported": span_counts(gold, [token_spans(s, tag_type) for s in b]),
    }
    report.update({name: _f1_of_counts(c) for name, c in counts.items()})
    report["gold_f1_drop"] = report["gold_f1_original"] - report["gold_f1_exported"]
    intervals = bootstrap_intervals(counts, [("gold_f1_drop", "gold_f1_original", "gold_f1_exported")])
    report.update({f"{name}_interval": interval for name, interval in intervals.items()})


#: what the gate compares, by the model's task: a tagger's entities (or token tags), a classifier's labels, or
#: any other model's answers (a regressor's values, a multitask model's every task); the report's keys and
#: lines are named after it ("label F1 vs original" for a classifier)
MEASURES = {SEQUENCE_TAGGING: "entity", TEXT_CLASSIFICATION: "label", TEXT_PAIR_CLASSIFICATION: "label"}


def measure_of(model: Any) -> str:
    """What the parity gate compares for ``model``: ``entity``, ``label`` or ``answer``."""
    return MEASURES.get(_task_of(model), "answer")


def parity_keys(measure: str) -> dict[str, str]:
    """A report's keys for ``measure``: its agreement, its F1 against the original, what each model found."""
    plural = {"entity": "entities", "label": "labels", "answer": "answers"}[measure]
    return {
        "agreement": "tag_agreement" if measure == "entity" else f"{measure}_agreement",
        "f1": f"{measure}_f1_vs_original",
        "original": f"{plural}_original",
        "exported": f"{plural}_exported",
    }


def _named(report: dict[str, Any]) -> tuple[dict[str, str], str, str]:
    """The report's keys and how its lines name the agreement and the F1 (reports before ``measure``: entity)."""
    measure = report.get("measure", "entity")
    agreement = "tag agreement" if measure == "entity" else f"{measure} agreement"
    return parity_keys(measure), agreement, f"{measure} F1 vs original"


def threshold_failures(report: dict[str, Any], thresholds: dict[str, float]) -> list[str]:
    """The thresholds the report violates, each said with its value.

    Where neither model found anything on the check set, the F1 between them is 0 as Flair reports it (nothing
    to score), so it decides nothing: the two agree sentence by sentence, which the agreement measures."""
    failures = []
    keys, agreement, f1 = _named(report)
    if report[keys["agreement"]] < thresholds["min_tag_agreement"]:
        failures.append(f"{agreement} {report[keys['agreement']]:.4f} < {thresholds['min_tag_agreement']}")
    found = report[keys["original"]] + report[keys["exported"]]
    if found and report[keys["f1"]] < thresholds["min_entity_f1"]:
        failures.append(f"{f1} {report[keys['f1']]:.4f} < {thresholds['min_entity_f1']}")
    score_diff = report.get("max_label_score_diff")
    if score_diff is not None and score_diff > thresholds.get("max_label_score_diff", 1.0):
        failures.append(f"label score moved by {score_diff:.4g} > {thresholds['max_label_score_diff']}")
    if "gold_f1_drop" in report and report["gold_f1_drop"] > thresholds["max_gold_f1_drop"]:
        failures.append(f"gold F1 drop {report['gold_f1_drop']:.4f} > {thresholds['max_gold_f1_drop']}")
    return failures


def _interval(report: dict[str, Any], key: str) -> str:
    low, high = report[f"{key}_interval"]
    return f"[{low:.4f}, {high:.4f}]"


def _log_report(report: dict[str, Any]) -> None:
    """One line: the verdict, how many sentences changed beside the F1 and its interval, the thresholds."""
    gold = (
        f", gold F1 {report['gold_f1_original']:.4f} -> {report['gold_f1_exported']:.4f}"
        f" (drop {report['gold_f1_drop']:.4f}, {_interval(report, 'gold_f1_drop')})"
        if "gold_f1_drop" in report
        else ""
    )
    recipe = f" ({report['int8_recipe']})" if "int8_recipe" in report else ""
    thresholds = report["thresholds"]
    keys, _, f1 = _named(report)
    log.info(
        "Parity%s %s on %d sentences: %d changed, %d identical (%.4f, needs >= %s), %s %.4f "
        "(%d %% interval %s), needs >= %s, max embedding diff %.2e%s",
        recipe,
        "passed" if report["passed"] else "FAILED",
        report["sentences"],
        report["sentences"] - report["identical_sentences"],
        report["identical_sentences"],
        report[keys["agreement"]],
        thresholds["min_tag_agreement"],
        f1,
        report[keys["f1"]],
        round(100 * report["bootstrap"]["confidence"]),
        _interval(report, keys["f1"]),
        thresholds["min_entity_f1"],
        report["max_abs_embedding_diff"],
        gold,
    )


def _where_threshold_lies(low: float, high: float, threshold: float, minimum: bool = True) -> str:
    """Where a threshold (a minimum, or a maximum) lies relative to an interval: does the verdict hang on it?"""
    some_pass = high >= threshold if minimum else low <= threshold
    some_fail = low < threshold if minimum else high > threshold
    if some_pass and some_fail:
        return (
            f"the threshold {threshold} lies inside it, so the verdict could go either way on other sentences "
            "of this kind: check on more sentences (parity_sentences) or on a labeled set (gold_conll)"
        )
    side = "below" if some_fail == minimum else "above"
    return (
        f"the whole interval lies {side} the threshold {threshold}: "
        "more sentences of this kind would very likely give the same verdict"
    )


def _uncertainty(report: dict[str, Any]) -> str:
    """The gate's intervals, and whether each threshold lies inside its interval (a verdict near a coin toss)."""
    thresholds = report["thresholds"]
    keys, _, f1 = _named(report)
    low, high = report[f"{keys['f1']}_interval"]
    f1_threshold = thresholds["min_entity_f1"]
    where = (
        f"the threshold {f1_threshold} asks for identical predictions: any difference fails, whatever the interval"
        if f1_threshold >= 1.0
        else _where_threshold_lies(low, high, f1_threshold)
    )
    confidence = f"{round(100 * report['bootstrap']['confidence'])} % interval"
    lines = [
        f"{f1[0].upper()}{f1[1:]} {report[keys['f1']]:.4f}, {confidence} "
        f"{_interval(report, keys['f1'])} over {report['sentences']} sentences: {where}."
    ]
    if "gold_f1_drop_interval" in report:
        low, high = report["gold_f1_drop_interval"]
        lines.append(
            f"Gold F1 drop {report['gold_f1_drop']:.4f}, {confidence} {_interval(report, 'gold_f1_drop')}: "
            f"{_where_threshold_lies(low, high, thresholds['max_gold_f1_drop'], minimum=False)}."
        )
    return "\n".join(lines)


def _parity_error(report: dict[str, Any], failures: list[str]) -> ParityError:
    n, identical = report["sentences"], report["identical_sentences"]
    recipe = f" ({report['int8_recipe']})" if "int8_recipe" in report else ""
    lines = [f"  {w['text'][:120]!r}: original {w['original']} exported {w['exported']}" for w in report["worst"]]
    return ParityError(
        f"The exported model{recipe} fails the parity gate on {n} check sentences: {'; '.join(failures)}.\n"
        f"{_uncertainty(report)}\n"
        f"{n - identical} sentences differ; the worst:\n" + "\n".join(lines) + f"\n{_next_step(report)}",
        report,
    )


def _next_step(report: dict[str, Any]) -> str:
    """What to do about a failed gate; for an int8 export, the recipes measured as more faithful."""
    if "int8_recipe" in report:
        if report.get("int8_of") == "character language models":
            hint = char_lm_advice(report["int8_recipe"])
        else:
            hint = more_faithful_recipes(report["int8_recipe"], report["thresholds"]["min_entity_f1"])
        if hint:
            return hint + " Or relax the thresholds, or force the export."
    return (
        "Choose a more faithful backend (fp32, a more faithful int8 recipe), relax the thresholds, or force the export."
    )
