"""Evaluate a model on labeled data with MLflow's own ``mlflow.models.evaluate`` (promotions gate on it).

::

    model reference ─► load (verified) ─► predict every text in batches through the pyfunc, as served
        ─► mlflow.models.evaluate(the predictions, custom metrics from mlflow.models.make_metric)
        ─► one run: metrics, a per-label table, a per-label F1 plot (challenger vs champion)
        ─► (promotion) mlflow_flavor.registry.gate: mlflow.validate_evaluation_results with MetricThreshold

A model reference is a ``models:/`` URI (version, stage or ``@alias``), an MLflow model directory or a bundle
directory written by ``flair-mlflow export``. Taggers are scored on entities (exact token span and label) over
a two-column CoNLL file, text classifiers on labels over ``__label__x text`` lines (what Flair's
``ClassificationCorpus`` reads): micro and macro F1, precision and recall, per-label F1, computed as Flair's
own ``evaluate`` computes them (macro over every label seen in the gold or the predictions).

A CoNLL sentence goes to the pyfunc as its tokens joined by spaces. Where Flair's tokenizer would split that
text into other tokens than the file's (``2008–09``, URLs), the served path cannot be scored against the
file's tokens: those sentences run through the same loaded model on the file's own tokens, and their number
is recorded as ``retokenized_sentences``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from exporter.bundle.load import load_for_serving
from exporter.config import SEQUENCE_TAGGING, TEXT_CLASSIFICATION, check_integer
from exporter.errors import ConfigError
from exporter.format.manifest import MANIFEST_FILE
from exporter.quality.metrics import Examples, labels_of, load_examples, score
from exporter.quality.parity import token_spans
from exporter.runtime.lean.model import LeanModel
from exporter.runtime.lean.text import Sentence as LeanSentence
from mlflow_flavor.fetch import locate_reference
from mlflow_flavor.pyfunc import FlairPyfuncModel
from mlflow_flavor.redact import redact

__all__ = [
    "CHAMPION_PREFIX",
    "EVALUATION_RUN_TAG",
    "EvaluationConfig",
    "EvaluationReport",
    "ModelScores",
    "evaluate_model",
    "load_reference",
    "quiet_evaluator",
]

log = logging.getLogger(__name__)

MAIN_METRIC = "f1_micro"
CHAMPION_PREFIX = "champion_"
PER_LABEL_TABLE = "evaluation/per_label.json"
PER_LABEL_PLOT = "evaluation/per_label_f1.png"
#: registry tag on a promoted version: the run that holds its evaluation (and its champion's)
EVALUATION_RUN_TAG = "flair_mlflow.evaluation_run_id"
PER_LABEL_METRIC = "f1_label_"  # + the label: per-label F1 as an MLflow metric
_AVERAGED = ("f1_micro", "precision_micro", "recall_micro", "f1_macro", "precision_macro", "recall_macro")


@dataclass(frozen=True)
class EvaluationConfig:
    """What to evaluate on and how.

    Args:
        data: the labeled file: two-column CoNLL (taggers) or ``__label__x text`` lines (classifiers).
        limit: only the first ``limit`` sentences or texts.
        mini_batch_size: the pyfunc's ``mini_batch_size`` (texts per model batch), as a client would send it.
        texts_per_call: texts per ``predict`` call (one request); progress is shown per call.
        experiment_name: the experiment of a new run (default: the active run, else the current experiment).
        experiment_id: the same by id (wins over ``experiment_name``).
        run_name: the name of a new run.
    """

    data: str
    limit: int | None = None
    mini_batch_size: int = 32
    texts_per_call: int = 256
    experiment_name: str | None = None
    experiment_id: str | None = None
    run_name: str | None = None

    def __post_init__(self) -> None:
        if not self.data or not Path(self.data).is_file():
            raise ConfigError(
                f"No labeled file at {self.data!r}: give a two-column CoNLL file (taggers) or a file of "
                "'__label__x text' lines (classifiers)."
            )
        object.__setattr__(self, "data", str(self.data))
        check_integer("mini_batch_size", self.mini_batch_size, 1, 1024)
        check_integer("texts_per_call", self.texts_per_call, 1, 1000)
        if self.limit is not None:
            check_integer("limit", self.limit, 1)


@dataclass(frozen=True)
class ModelScores:
    """One model's evaluation: the metrics logged by ``mlflow.models.evaluate`` and the per-label scores."""

    model: str
    task: str
    metrics: dict[str, float]
    per_label: dict[str, dict[str, float]]

    @property
    def f1(self) -> float:
        return self.metrics[MAIN_METRIC]


@dataclass(frozen=True)
class EvaluationReport:
    run_id: str
    data: str
    challenger: ModelScores
    champion: ModelScores | None = field(default=None)

    def summary(self) -> dict[str, Any]:
        """One JSON-ready dict: the challenger's metrics at the top level, the champion's under ``champion``."""

        def flat(scores: ModelScores) -> dict[str, Any]:
            return {
                "model": scores.model,
                "task": scores.task,
                **scores.metrics,
                "per_label_f1": {label: row["f1"] for label, row in scores.per_label.items()},
            }

        result = {"run_id": self.run_id, "data": self.data, **flat(self.challenger)}
        if self.champion is not None:
            result["champion"] = flat(self.champion)
        return result


@functools.lru_cache(maxsize=4)
def _cached_score(task: str, predictions: tuple[str, ...], targets: tuple[str, ...]) -> dict[str, Any]:
    """The metrics of JSON-encoded predictions and targets; one computation serves every custom metric."""
    return score([_decode(t) for t in targets], [_decode(p) for p in predictions], task)


def _encode(items: frozenset) -> str:
    return json.dumps(sorted(items, key=str))


def _decode(text: str) -> frozenset:
    return frozenset(tuple(x) if isinstance(x, list) else x for x in json.loads(text))


def _metric_key(label: str) -> str:
    return PER_LABEL_METRIC + re.sub(r"\W", "_", label)


def _mlflow_metrics(task: str, labels: Sequence[str]) -> list:
    """Custom metrics for ``mlflow.models.evaluate``: the averages, accuracy (classifiers), F1 per label."""
    from mlflow.models import make_metric

    def metric(name: str, pick):
        def eval_fn(predictions, targets, metrics=None):
            return pick(_cached_score(task, tuple(predictions), tuple(targets)))

        return make_metric(eval_fn=eval_fn, greater_is_better=True, name=name)

    names = list(_AVERAGED) + (["accuracy"] if task == TEXT_CLASSIFICATION else [])
    metrics = [metric(name, lambda s, n=name: s[n]) for name in names]
    for label in labels:
        metrics.append(metric(_metric_key(label), lambda s, x=label: s["per_label"].get(x, {}).get("f1", 0.0)))
    return metrics


# -------------------------------------------------------------------------------------------------- predicting


@dataclass(frozen=True)
class _Loaded:
    reference: str
    predictor: Any  # an object with predict(texts, params=...): MLflow's pyfunc or our FlairPyfuncModel
    model: Any  # the Flair model inside it
    task: str
    tag_type: str


def _task(manifest: dict[str, Any]) -> str:
    return manifest.get("task") or SEQUENCE_TAGGING


def load_reference(reference: str, tracking_uri: str | None = None, *, located: Path | None = None) -> _Loaded:
    """Load a ``models:/`` URI, an MLflow model directory or a bundle directory as a pyfunc, verified first.

    ``located``: its local directory, when :func:`mlflow_flavor.fetch.locate_reference` already found it.

    Raises:
        ConfigError: the reference is none of these.
        BundleError: verification failed.
    """
    path = located or locate_reference(reference, tracking_uri=tracking_uri)
    if (path / MANIFEST_FILE).is_file():
        model = load_for_serving(path)  # what its pyfunc serves: lean where the bundle serves lean
        manifest = model.flair_mlflow_manifest
        predictor = FlairPyfuncModel(model, manifest)
    else:
        import mlflow

        predictor = mlflow.pyfunc.load_model(str(path))
        impl = getattr(predictor, "_model_impl", predictor)  # MLflow's PyFuncModel wraps our FlairPyfuncModel
        model, manifest = impl.model, impl.manifest
    tag_type = manifest.get("tag_type") or model.label_type
    return _Loaded(redact(reference), predictor, model, _task(manifest), tag_type)


def _chunks(indices: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(indices), size):
        yield list(indices[start : start + size])


def _token_offsets(tokens: Sequence[str]) -> tuple[dict[int, int], dict[int, int]]:
    """Character offsets of each token in ``" ".join(tokens)``: start → index, end → index + 1."""
    starts, ends, position = {}, {}, 0
    for i, token in enumerate(tokens):
        starts[position] = i
        position += len(token)
        ends[position] = i + 1
        position += 1
    return starts, ends


def _aligned(entities: Sequence[dict[str, Any]], tokens: Sequence[str]) -> frozenset:
    """The pyfunc's character-offset entities as token spans; an entity off the file's token boundaries
    keeps its character offsets (negative, so that it matches no gold span and counts as wrong)."""
    starts, ends = _token_offsets(tokens)
    spans = set()
    for e in entities:
        first, last = starts.get(e["start"]), ends.get(e["end"])
        if first is None or last is None:
            spans.add((-1 - e["start"], -1 - e["end"], e["label"]))
        else:
            spans.add((first, last, e["label"]))
    return frozenset(spans)


def _served_as_given(tokens: Sequence[str]) -> bool:
    """Whether Flair's tokenizer splits the joined text back into exactly these tokens."""
    from flair.data import Sentence

    return [t.text for t in Sentence(" ".join(tokens))] == list(tokens)


def predict_examples(loaded: _Loaded, examples: Examples, config: EvaluationConfig) -> tuple[list[frozenset], dict]:
    """Every text through the pyfunc in ``texts_per_call`` requests; return the predictions and timing facts."""
    if loaded.task != examples.task:
        raise ConfigError(
            f"{loaded.reference} is a {loaded.task}, but the labeled data was read for a {examples.task}."
        )
    params = {"mini_batch_size": config.mini_batch_size}
    predicted: list[frozenset] = [frozenset()] * len(examples)
    if examples.tokens is not None:
        served = [i for i, tokens in enumerate(examples.tokens) if _served_as_given(tokens)]
    else:
        served = list(range(len(examples)))
    retokenized = sorted(set(range(len(examples))) - set(served))
    started = time.perf_counter()
    progress = _Progress(len(examples), f"Evaluating {loaded.reference}")
    try:
        for chunk in _chunks(served, config.texts_per_call):
            answers = loaded.predictor.predict([examples.texts[i] for i in chunk], params=params)
            for i, answer in zip(chunk, answers):
                if examples.tokens is None:
                    predicted[i] = frozenset(x["label"] for x in answer)
                else:
                    predicted[i] = _aligned(answer, examples.tokens[i])
            progress.advance(len(chunk))
        for chunk in _chunks(retokenized, config.texts_per_call):
            for i, spans in zip(chunk, _predict_tokens(loaded, [examples.tokens[i] for i in chunk], config)):
                predicted[i] = spans
            progress.advance(len(chunk))
    finally:
        progress.close()
    elapsed = time.perf_counter() - started
    facts = {
        "sentences": len(examples),
        "throughput_texts_per_s": len(examples) / elapsed if elapsed > 0 else 0.0,
        "predict_seconds": elapsed,
    }
    if examples.tokens is not None:
        facts["retokenized_sentences"] = len(retokenized)
        facts["gold_entities"] = sum(len(g) for g in examples.gold)
    return predicted, facts


class _Progress:
    """A progress bar on a terminal; elsewhere (CI, logs) a log line about every ``every`` texts."""

    def __init__(self, total: int, description: str, every: int = 2000) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, unit="text", desc=description, disable=None)
        self.total, self.done, self.every, self.description = total, 0, every, description

    def advance(self, count: int) -> None:
        before, self.done = self.done, self.done + count
        self.bar.update(count)
        if self.bar.disable and self.total > self.every and self.done // self.every > before // self.every:
            log.info("%s: %d of %d texts", self.description, self.done, self.total)

    def close(self) -> None:
        self.bar.close()


def _predict_tokens(loaded: _Loaded, tokens: list[list[str]], config: EvaluationConfig) -> list[frozenset]:
    """Sentences on the file's own tokens, through the same loaded model (Flair's, or the lean one)."""
    if isinstance(loaded.model, LeanModel):
        sentences = [LeanSentence.from_words(list(t)) for t in tokens]
    else:
        from flair.data import Sentence

        sentences = [Sentence(list(t)) for t in tokens]
    loaded.model.predict(sentences, mini_batch_size=config.mini_batch_size)
    return [frozenset(token_spans(s, loaded.tag_type)) for s in sentences]


# ------------------------------------------------------------------------------------------------------ logging


@contextlib.contextmanager
def _run(config: EvaluationConfig) -> Iterator[str]:
    """The run to log into: a new run in the configured experiment when one is given (nested under an active
    run), else the active run, else a new run in the current experiment."""
    import mlflow

    active = mlflow.active_run()
    experiment_id = config.experiment_id
    if experiment_id is None and config.experiment_name:
        experiment = mlflow.get_experiment_by_name(config.experiment_name)
        experiment_id = experiment.experiment_id if experiment else mlflow.create_experiment(config.experiment_name)
    if experiment_id is None:
        if active is not None:
            yield active.info.run_id
            return
        with mlflow.start_run(run_name=config.run_name) as run:
            yield run.info.run_id
        return
    project_run = os.environ.pop("MLFLOW_RUN_ID", None)  # under `mlflow run`: a run of its own, not the project's
    try:
        with mlflow.start_run(experiment_id=experiment_id, run_name=config.run_name, nested=active is not None) as run:
            yield run.info.run_id
    finally:
        if project_run is not None:
            os.environ["MLFLOW_RUN_ID"] = project_run


@contextlib.contextmanager
def quiet_evaluator() -> Iterator[None]:
    """MLflow's evaluator narrates its mechanics at INFO ("Testing metrics on first row...", once per model
    scored: twice in every gated promotion); our own line says what was evaluated and how it scored."""
    logger = logging.getLogger("mlflow.models.evaluation")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def _log_scores(
    loaded: _Loaded, examples: Examples, predicted: list[frozenset], facts: dict, labels: Sequence[str], prefix: str
) -> ModelScores:
    """``mlflow.models.evaluate`` on the predictions (in the active run); the facts as plain metrics."""
    import mlflow
    import pandas as pd

    data = pd.DataFrame(
        {
            "text": examples.texts,
            "predictions": [_encode(p) for p in predicted],
            "targets": [_encode(g) for g in examples.gold],
        }
    )
    with quiet_evaluator():
        result = mlflow.models.evaluate(
            data=data,
            predictions="predictions",
            targets="targets",
            extra_metrics=_mlflow_metrics(examples.task, labels),
            evaluator_config={"metric_prefix": prefix} if prefix else None,
        )
    mlflow.log_metrics({prefix + k: float(v) for k, v in facts.items()})
    own = {k[len(prefix) :]: float(v) for k, v in result.metrics.items() if k.startswith(prefix)}
    metrics = {k: v for k, v in own.items() if not k.startswith(PER_LABEL_METRIC)}
    per_label = score(examples.gold, predicted, examples.task)["per_label"]
    return ModelScores(loaded.reference, examples.task, {**metrics, **facts}, per_label)


def _per_label_table(challenger: ModelScores, champion: ModelScores | None):
    import pandas as pd

    rows = []
    for label in sorted(set(challenger.per_label) | set(champion.per_label if champion else ())):
        row = {"label": label, **{k: v for k, v in challenger.per_label.get(label, {}).items()}}
        if champion is not None:
            row.update({f"champion_{k}": v for k, v in champion.per_label.get(label, {}).items()})
        rows.append(row)
    return pd.DataFrame(rows)


def _per_label_figure(challenger: ModelScores, champion: ModelScores | None):
    """Horizontal bars of per-label F1 (challenger, and the champion beside it when there is one)."""
    from matplotlib.figure import Figure

    labels = sorted(set(challenger.per_label) | set(champion.per_label if champion else ()))
    figure = Figure(figsize=(7, 1.8 + 0.45 * max(len(labels), 1)), layout="constrained")
    axes = figure.subplots()
    height = 0.4 if champion is not None else 0.7
    positions = list(range(len(labels)))
    series = [("challenger" if champion else "model", challenger)] + ([("champion", champion)] if champion else [])
    for n, (name, scores) in enumerate(series):
        values = [scores.per_label.get(label, {}).get("f1", 0.0) for label in labels]
        offsets = [p + (n - (len(series) - 1) / 2) * height for p in positions]
        axes.barh(offsets, values, height=height, label=f"{name}: {scores.model} (F1 micro {scores.f1:.3f})")
    axes.set_yticks(positions, labels)
    axes.invert_yaxis()
    axes.set_xlim(0, 1)
    axes.set_xlabel("F1")
    axes.set_title("Per-label F1" + (" (entities)" if challenger.task == SEQUENCE_TAGGING else ""))
    figure.legend(loc="outside lower center", fontsize="small")
    return figure


def evaluate_model(
    model: str,
    config: EvaluationConfig,
    *,
    champion: str | None = None,
    tracking_uri: str | None = None,
    names: tuple[str, str | None] | None = None,
) -> EvaluationReport:
    """Evaluate ``model`` (and ``champion``, when given) on ``config.data`` and log both to one MLflow run.

    The champion's metrics carry the prefix ``champion_`` in the run. ``names`` replaces the references in the
    report and the plot (e.g. ``("ner v4", "ner v3")``). The run is a new one in the configured experiment, else
    the active run, else a new one in the current experiment.

    Raises:
        ConfigError: a reference or the labeled file is not usable (the message says why).
        BundleError: a model failed verification.
    """
    import mlflow

    challenger = load_reference(model, tracking_uri)
    examples = load_examples(config.data, challenger.task, config.limit)
    predicted, facts = predict_examples(challenger, examples, config)
    baseline = None
    if champion is not None:
        loaded = load_reference(champion, tracking_uri)
        baseline = (loaded, *predict_examples(loaded, examples, config))
    if names:
        challenger = replace(challenger, reference=names[0])
        if baseline is not None and names[1]:
            baseline = (replace(baseline[0], reference=names[1]), *baseline[1:])
    labels = labels_of(examples.gold, predicted, *([baseline[1]] if baseline else []))
    with _run(config) as active_id:
        scores = _log_scores(challenger, examples, predicted, facts, labels, "")
        champion_scores = None
        if baseline is not None:
            champion_scores = _log_scores(*baseline[:1], examples, *baseline[1:], labels, CHAMPION_PREFIX)
            mlflow.log_metric(f"{MAIN_METRIC}_drop_vs_champion", champion_scores.f1 - scores.f1)
        mlflow.set_tags(
            {
                "flair_mlflow.evaluation.data": Path(config.data).name,
                "flair_mlflow.evaluation.task": examples.task,
                "flair_mlflow.evaluation.model": scores.model,
                "flair_mlflow.evaluation.champion": champion_scores.model if champion_scores else "",
            }
        )
        mlflow.log_table(_per_label_table(scores, champion_scores), PER_LABEL_TABLE)
        mlflow.log_figure(_per_label_figure(scores, champion_scores), PER_LABEL_PLOT)
    log.info(
        "Evaluated %s on %d %s: F1 micro %.4f, macro %.4f%s (run %s)",
        scores.model,
        len(examples),
        "sentences" if examples.task == SEQUENCE_TAGGING else "texts",
        scores.f1,
        scores.metrics["f1_macro"],
        f"; champion {champion_scores.model}: F1 micro {champion_scores.f1:.4f}" if champion_scores else "",
        active_id,
    )
    return EvaluationReport(active_id, config.data, scores, champion_scores)
