"""The pyfunc face of a bundle: raw texts in, entities with character offsets (or labels, or a value) out.

Accepted inputs (:mod:`mlflow_flavor.inputs`, the README's input contract): texts, or for models of two texts
pairs of texts. Output per task: a tagger answers one list per text of ``{"text", "label", "start", "end",
"score"}`` where ``text == input[start:end]``; a classifier (of texts or of pairs) a list of ``{"label",
"score"}``; a regressor of pairs a number.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import logging
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from exporter.config import (
    MULTITASK,
    RELATION_EXTRACTION,
    SEQUENCE_TAGGING,
    TEXT_CLASSIFICATION,
    TEXT_PAIR_CLASSIFICATION,
    TEXT_PAIR_REGRESSION,
    check_integer,
)
from exporter.errors import ConfigError, InputError, did_you_mean
from exporter.format.modelfile import ZERO_SHOT_MODELS
from exporter.format.specs import TASKS, spec
from exporter.runtime.lean.model import LeanModel
from exporter.runtime.lean.text import documents as lean_documents
from exporter.runtime.lean.text import flair_documents
from exporter.runtime.words import REMOVED_CHARACTERS
from mlflow_flavor.batching import AdaptiveBatcher
from mlflow_flavor.boundary import mlflow_errors
from mlflow_flavor.inputs import describe, normalize_pairs, normalize_texts

__all__ = [
    "ALLOWED_PARAMS",
    "SPARK_CLASSIFIER_RESULT_TYPE",
    "SPARK_RESULT_TYPE",
    "SPARK_VALUE_RESULT_TYPE",
    "spark_result_type",
    "FlairPyfuncModel",
    "SERVING_KEYS",
    "ServingOptions",
    "normalize_texts",
    "parse_params",
    "request_params",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_TEXTS = 1_000
DEFAULT_BATCH = 32
DEFAULT_MAX_BATCH_TEXTS = 128
#: Sentences longer than this (in words) are predicted on their own, never padded against (see ``_run``).
LONG_SENTENCE_WORDS = 512

#: The ``params`` a caller may pass to ``predict``, with their types and defaults.
ALLOWED_PARAMS: dict[str, tuple[type, Any]] = {
    "mini_batch_size": (int, DEFAULT_BATCH),
    "return_tokens": (bool, False),
    "min_score": (float, 0.0),
    "output": (str, "entities"),
    "top_k": (int, 0),
    "split_sentences": (bool, False),
    "candidate_labels": (tuple, ()),
}
#: The most candidate labels one request may give (a TARS model runs once per label and text) and their length.
MAX_CANDIDATE_LABELS = 64
MAX_LABEL_CHARS = 200

#: ``result_type`` for a regressor of text pairs: one number per pair.
SPARK_VALUE_RESULT_TYPE = TASKS[TEXT_PAIR_REGRESSION].spark
#: ``result_type`` for ``mlflow.pyfunc.spark_udf`` with ``params={"output": "records"}``: one struct per
#: text whose field ``entities`` is the array of entity structs.
SPARK_RESULT_TYPE = f"entities {TASKS[SEQUENCE_TAGGING].spark}"
#: The same for text classifiers: one struct per text whose field ``labels`` is the array of label structs.
SPARK_CLASSIFIER_RESULT_TYPE = f"labels {TASKS[TEXT_CLASSIFICATION].spark}"


def spark_result_type(flavor: Mapping[str, Any]) -> str:
    """``result_type`` for ``mlflow.pyfunc.spark_udf`` of a model, from its flair_mlflow flavor section (MLflow's
    ``get_model_info(uri).flavors["flair_mlflow"]``): with ``params={"output": "records"}`` for taggers and
    classifiers; a multitask model's struct has one field per task; a regressor of pairs answers a double."""
    task = spec(flavor.get("task"))
    if task.task == MULTITASK:
        return ", ".join(f"{t['name']} {spec(t['task']).spark}" for t in flavor.get("tasks") or ())
    if task.task == TEXT_PAIR_REGRESSION:  # one number per pair, not a struct
        return task.spark
    return f"{task.answer} {task.spark}"


@dataclass(frozen=True)
class ServingOptions:
    """Limits and threads applied by the pyfunc wrapper (from ``model_config``).

    Attributes:
        max_texts: the most texts one ``predict`` call (one HTTP request) may hold.
        torch_num_threads: torch's intra-op threads for Flair's code around the encoder (0: torch's default).
        adaptive_batching: merge requests that arrive while the model is busy into one model run
            (:mod:`mlflow_flavor.batching`); off, requests run one after the other.
        max_batch_texts: the most texts in one merged run (a larger single request still runs, alone).
        max_wait_ms: how long a run waits for more requests before it starts (0: never; at low load a
            request then runs at once, under load requests merge while the model is busy anyway).
        log_batches: log every merged run (requests, texts) at INFO on stderr, for diagnosis.
    """

    max_texts: int = DEFAULT_MAX_TEXTS
    torch_num_threads: int = 0
    adaptive_batching: bool = True
    max_batch_texts: int = DEFAULT_MAX_BATCH_TEXTS
    max_wait_ms: float = 0.0
    log_batches: bool = False

    def __post_init__(self) -> None:
        check_integer("max_texts", self.max_texts, 1, 1_000_000)
        check_integer("torch_num_threads", self.torch_num_threads, 0, 1024)
        check_integer("max_batch_texts", self.max_batch_texts, 1, 100_000)
        for name in ("adaptive_batching", "log_batches"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}.")
        wait = self.max_wait_ms
        if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait <= 1000:
            raise ConfigError(f"max_wait_ms must be a number of milliseconds from 0 to 1000, got {wait!r}.")


#: the ``model_config`` keys that configure the pyfunc wrapper (the others configure the runtime)
SERVING_KEYS = tuple(f.name for f in dataclasses.fields(ServingOptions))


def request_params(task: str, *, zero_shot: bool = False) -> tuple[str, ...]:
    """The request params a model of ``task`` takes (``candidate_labels`` besides for zero-shot models), in
    :data:`ALLOWED_PARAMS`' order; the signature declares the others too, only to refuse them by name."""
    own = set(spec(task).params) | ({"candidate_labels"} if zero_shot else set())
    return tuple(name for name in ALLOWED_PARAMS if name in own)


def parse_params(
    params: Mapping[str, Any] | None, task: str = SEQUENCE_TAGGING, *, zero_shot: bool = False
) -> dict[str, Any]:
    """Check ``params`` against :data:`ALLOWED_PARAMS` for ``task``; return them with defaults filled in.

    A model's signature declares every param of every task (so that MLflow passes them on instead of dropping
    them with a warning), and MLflow fills in the declared defaults: a param of another task is refused when
    it is given a value other than its default. ``candidate_labels`` applies to zero-shot (TARS) models only.
    """
    known = {name: ALLOWED_PARAMS[name] for name in request_params(task, zero_shot=zero_shot)}
    other = set(ALLOWED_PARAMS) - set(known)
    result = {name: default for name, (_, default) in ALLOWED_PARAMS.items()}
    result["output"] = spec(task).answer
    allowed = ", ".join(sorted(known))
    for name, value in (params or {}).items():
        if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # a numpy scalar (no MLflow in between)
            value = value.item()
        if name in SERVING_KEYS:  # declared (default None) so that MLflow passes them on to be refused
            if value is None:
                continue
            raise InputError(
                f"{name!r} is a setting of the served model, not a request param: set it when logging the model "
                f"(model_config={{{name!r}: ...}}, flair-mlflow log --model-config {name}=...) or when serving "
                f"(MLFLOW_PYFUNC_INFERENCE_CONFIG); the request params: {allowed}."
            )
        if name in other:
            if _is_default(name, value):
                continue
            if name == "candidate_labels":
                raise InputError(
                    "Parameter 'candidate_labels' applies to Flair's zero-shot models (TARSClassifier, TARSTagger) "
                    f"only; this model's parameters: {allowed}."
                )
            raise InputError(f"Parameter {name!r} does not apply to a {spec(task).name}; its parameters: {allowed}.")
        if name not in known:
            raise InputError(f"Unknown parameter {name!r}{did_you_mean(name, known)}; allowed parameters: {allowed}.")
        result[name] = _checked_param(name, value, task)
    return result


def _is_default(name: str, value: Any) -> bool:
    """Whether ``value`` is ``name``'s default (as MLflow fills it in from the signature)."""
    default = ALLOWED_PARAMS[name][1]
    if isinstance(default, tuple):
        return _is_list(value) and len(value) == 0
    return value is None or (type(value) is type(default) and value == default)


def _is_list(value: Any) -> bool:
    import numpy as np

    return isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim == 1)


def _checked_param(name: str, value: Any, task: str) -> Any:
    kind, _ = ALLOWED_PARAMS[name]
    if kind is bool:
        if not isinstance(value, (bool, int)) or value not in (0, 1):
            raise InputError(f"Parameter {name!r} must be true or false, got {describe(value)}.")
        return bool(value)
    if kind is int:
        low = 0 if name == "top_k" else 1
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 1024:
            raise InputError(f"Parameter {name!r} must be an integer between {low} and 1024, got {describe(value)}.")
        return value
    if kind is str:
        if value not in spec(task).outputs:
            choices = ", ".join(spec(task).outputs)
            raise InputError(f"Parameter {name!r} must be one of {choices}, got {describe(value)}.")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise InputError(f"Parameter {name!r} must be a number between 0 and 1, got {describe(value)}.")
        return float(value)
    return _candidate_labels(value)


def _candidate_labels(value: Any) -> tuple[str, ...]:
    """A request's candidate labels: a list of distinct, non-blank strings (empty: the current task's labels)."""
    if isinstance(value, str):
        value = [value]
    if not _is_list(value):
        raise InputError(f"Parameter 'candidate_labels' must be a list of label names, got {describe(value)}.")
    labels = list(value)
    if len(labels) > MAX_CANDIDATE_LABELS:
        raise InputError(
            f"Parameter 'candidate_labels' holds {len(labels)} labels; the limit is {MAX_CANDIDATE_LABELS} "
            "(a zero-shot model runs once per label and text): split them over several requests."
        )
    for label in labels:
        if not isinstance(label, str) or not label.strip() or len(label) > MAX_LABEL_CHARS:
            raise InputError(
                "Parameter 'candidate_labels' must hold label names (non-blank strings of at most "
                f"{MAX_LABEL_CHARS} characters), got {describe(label)}."
            )
    # Flair's TARS reads a label dictionary of tags: it drops "O" and the prefix of "B-x" style names
    tag_like = [label for label in labels if label == "O" or (len(label) > 1 and label[1] == "-")]
    if tag_like:
        raise InputError(
            f"Parameter 'candidate_labels' holds {', '.join(map(repr, tag_like))}: Flair's zero-shot models read "
            "'O' as no label and a second character '-' as a tag prefix (B-, I-, ...), so the answer would name "
            "another label. Name it otherwise (e-commerce -> ecommerce)."
        )
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise InputError(f"Parameter 'candidate_labels' names {', '.join(map(repr, repeated))} more than once.")
    return tuple(labels)


class _Offsets:
    """Maps Flair's character offsets back to offsets into the caller's original text.

    A sentence that starts at ``base`` in the text (Flair's sentence splitter records it as the sentence's
    ``start_position``) counts its offsets from there, in its own text without the removed characters.
    """

    def __init__(self, text: str) -> None:
        if any(c in REMOVED_CHARACTERS for c in text):
            self.kept: list[int] | None = [i for i, c in enumerate(text) if c not in REMOVED_CHARACTERS]
        else:
            self.kept = None

    def span(self, start: int, end: int, base: int = 0) -> tuple[int, int]:
        if self.kept is None:
            return base + start, base + end
        first = bisect.bisect_left(self.kept, base)  # kept characters before the sentence
        if end <= start:
            return self.kept[first + start] if first + start < len(self.kept) else base, base
        return self.kept[first + start], self.kept[first + end - 1] + 1


def _labeled(sentence: Any, tag_type: str) -> list[Any]:
    """What a tagger labeled, in text order: its spans (entities, chunks), or, for a tagger of token labels (part
    of speech: Flair's ``predict_spans`` is off), its tokens."""
    spans = sentence.get_spans(tag_type)
    if spans:
        return spans
    return sorted(
        {id(label.data_point): label.data_point for label in sentence.get_labels(tag_type)}.values(),
        key=lambda point: point.start_position,
    )


def _entities(sentence: Any, text: str, tag_type: str, min_score: float, offsets: _Offsets) -> list[dict[str, Any]]:
    """One record per labeled span (or token, for a tagger of token labels): its text, label, offsets into the
    caller's text and score, as Flair's own predict labels the sentence."""
    entities = []
    base = sentence.start_position or 0
    for span in _labeled(sentence, tag_type):
        label = span.get_label(tag_type)
        if label.score < min_score:
            continue
        start, end = offsets.span(span.start_position, span.end_position, base)
        entities.append(
            {"text": text[start:end], "label": label.value, "start": start, "end": end, "score": float(label.score)}
        )
    return entities


def _relations(
    sentence: Any, text: str, label_type: str, entity_types: Sequence[str], min_score: float, offsets: _Offsets
) -> list[dict[str, Any]]:
    """One record per relation Flair's relation model labeled: its head and tail entities (text, offsets into
    the caller's text, the entity label of the first of ``entity_types`` it has), the relation's label and score."""
    base = sentence.start_position or 0

    def entity(span: Any) -> dict[str, Any]:
        start, end = offsets.span(span.start_position, span.end_position, base)
        label = next((span.get_label(t).value for t in entity_types if span.get_labels(t)), None)
        return {"text": text[start:end], "start": start, "end": end, "label": label}

    relations = []
    for relation in sentence.get_relations(label_type):
        label = relation.get_label(label_type)
        if label.score >= min_score:
            relations.append(
                {
                    "head": entity(relation.first),
                    "tail": entity(relation.second),
                    "label": label.value,
                    "score": float(label.score),
                }
            )
    return relations


def _tokens(sentence: Any, text: str, tag_type: str, offsets: _Offsets) -> list[dict[str, Any]]:
    tags: dict[int, str] = {}
    for span in _labeled(sentence, tag_type):
        label = span.get_label(tag_type).value
        if not hasattr(span, "tokens"):  # a token label (part of speech): the label as it is
            tags[span.idx] = label
            continue
        tokens = span.tokens
        for i, token in enumerate(tokens):
            prefix = "S" if len(tokens) == 1 else "B" if i == 0 else "E" if i == len(tokens) - 1 else "I"
            tags[token.idx] = f"{prefix}-{label}"
    base = sentence.start_position or 0
    result = []
    for t in sentence.tokens:
        start, end = offsets.span(t.start_position, t.end_position, base)
        result.append({"text": text[start:end], "start": start, "end": end, "tag": tags.get(t.idx, "O")})
    return result


def _sorted_labels(sentence: Any, label_type: str) -> list[dict[str, Any]]:
    labels = [{"label": label.value, "score": float(label.score)} for label in sentence.get_labels(label_type)]
    return sorted(labels, key=lambda x: -x["score"])


class FlairPyfuncModel:
    """Wraps a loaded Flair model (accelerated or not) behind MLflow's pyfunc ``predict``.

    Concurrent calls (MLflow's scoring server runs each request on its own thread) are merged into one
    Flair ``predict`` while the model is busy (:class:`~mlflow_flavor.batching.AdaptiveBatcher`); the model
    itself only ever runs one prediction at a time.
    """

    def __init__(self, model: Any, manifest: Mapping[str, Any], options: ServingOptions | None = None) -> None:
        self.model = model
        self.manifest = dict(manifest)
        self.options = options or ServingOptions()
        self.tag_type = manifest.get("tag_type") or model.label_type
        self.task = manifest.get("task") or SEQUENCE_TAGGING
        self.classifier = self.task in (TEXT_CLASSIFICATION, TEXT_PAIR_CLASSIFICATION)
        self.zero_shot = manifest.get("model_class") in ZERO_SHOT_MODELS
        self.tasks = list(manifest.get("tasks") or [])  # a multitask model's, in the order it runs them
        # a lean model's sentences are its own (Flair's words and offsets, without Flair)
        self.documents = lean_documents if isinstance(model, LeanModel) else flair_documents
        self.batcher = AdaptiveBatcher(
            self._run,
            max_batch_texts=self.options.max_batch_texts,
            max_wait_ms=self.options.max_wait_ms,
            enabled=self.options.adaptive_batching,
        )
        if self.options.log_batches:
            _log_batches_to_stderr()

    def get_raw_model(self) -> Any:
        """The model behind the pyfunc (what MLflow's ``PyFuncModel.get_raw_model()`` returns, as for MLflow's own
        flavors): the Flair model, accelerated as logged, or the lean model where the bundle serves lean
        (``mlflow_flavor.load_model`` always gives the Flair model)."""
        return self.model

    def predict(self, model_input: Any, params: Mapping[str, Any] | None = None) -> list[Any]:
        """Entities for each input text; errors raise ``MlflowException`` with the code of
        :mod:`mlflow_flavor.boundary` (bad input: HTTP 400 when served)."""
        with mlflow_errors():
            return self._predict(model_input, params)

    def _run(self, key: Hashable, sentences: Sequence[Any]) -> Sequence[Any]:
        """One Flair ``predict`` over the sentences of one or more requests (the batcher's run).

        Flair pads each mini-batch to its longest sentence after the encoder (recombined windows,
        pooled embeddings, CRF features), so a very long sentence goes through ``predict`` on its own:
        a long document merged with short texts would otherwise pad every one of them to its length.
        """
        mini_batch_size, all_probabilities, candidate_labels = key
        extra = {"return_probabilities_for_all_classes": True} if all_probabilities else {}
        zero_shot = _zero_shot_task(self.model, candidate_labels) if candidate_labels else contextlib.nullcontext()
        with zero_shot:
            short = [s for s in sentences if 0 < len(s) <= LONG_SENTENCE_WORDS]
            if short:
                self.model.predict(short, mini_batch_size=mini_batch_size, **extra)
            for sentence in sentences:
                if len(sentence) > LONG_SENTENCE_WORDS:
                    self.model.predict([sentence], mini_batch_size=1, **extra)
        return sentences

    def _batch_key(self, options: Mapping[str, Any]) -> Hashable:
        """What a model run depends on besides its sentences: requests merge only when it is the same."""
        return (options["mini_batch_size"], bool(self.classifier and options["top_k"]), options["candidate_labels"])

    def _labels(self, sentence: Any, options: Mapping[str, Any], label_type: str) -> list[dict[str, Any]]:
        """A text classifier's answer for one text: labels sorted by score, cut by ``top_k`` and ``min_score``."""
        if sentence is None or len(sentence) == 0:
            return []
        labels = [x for x in _sorted_labels(sentence, label_type) if x["score"] >= options["min_score"]]
        return labels[: options["top_k"]] if options["top_k"] else labels

    def _predict(self, model_input: Any, params: Mapping[str, Any] | None) -> list[Any]:
        options = parse_params(params, self.task, zero_shot=self.zero_shot)
        if spec(self.task).pairs:
            return self._pair_answers(normalize_pairs(model_input), options)
        texts = normalize_texts(model_input)
        self._check_count(len(texts))
        documents = [self.documents(t, options["split_sentences"]) for t in texts]
        sentences = [s for document in documents for s in document]
        if sentences:
            self.batcher.submit(self._batch_key(options), sentences)
        # a zero-shot request's labels are under the label type Flair gives its ad-hoc task
        label_type = zero_shot_label_type(options["candidate_labels"]) or self.tag_type
        if self.task == MULTITASK:
            return [self._multitask_answer(text, document, options) for text, document in zip(texts, documents)]
        if self.classifier:
            return _shaped([self._labels(d[0] if d else None, options, label_type) for d in documents], options)
        return [self._tagger_answer(text, document, options, label_type) for text, document in zip(texts, documents)]

    def _check_count(self, count: int) -> None:
        if count > self.options.max_texts:
            raise InputError(
                f"The request holds {count} texts; the limit is {self.options.max_texts}. "
                "Split it into smaller requests, or raise max_texts in the model_config."
            )

    def _pair_answers(self, pairs: list[tuple[str, str]], options: Mapping[str, Any]) -> list[Any]:
        """A model of text pairs: labels per pair (a classifier) or a value (a regressor); none (``[]``, None) where
        Flair gives none (two empty texts) or cannot (one empty text, when the two are embedded separately:
        Flair's own predict fails on the whole call)."""
        from flair.data import Sentence, TextPair

        self._check_count(len(pairs))
        points = [TextPair(Sentence(first), Sentence(second)) for first, second in pairs]
        separately = getattr(self.model, "embed_separately", False)
        answerable = [p for p in points if len(p.first) and len(p.second)] if separately else points
        if answerable:
            self.batcher.submit(self._batch_key(options), answerable)
        if self.classifier:
            return _shaped([self._labels(point, options, self.tag_type) for point in points], options)
        return _shaped([_value(point, self.tag_type) for point in points], options, field="value")

    def _multitask_answer(self, text: str, document: list[Any], options: Mapping[str, Any]) -> dict[str, Any]:
        """Every task's answer for one text under the task's name: entities, labels or relations."""
        offsets = _Offsets(text)
        answer: dict[str, Any] = {}
        for task in self.tasks:
            label_type, kind = task["label_type"], task["task"]
            if kind == SEQUENCE_TAGGING:
                found = [e for s in document for e in _entities(s, text, label_type, options["min_score"], offsets)]
            elif kind == RELATION_EXTRACTION:
                entity_types = task["entity_label_types"]
                found = [
                    r
                    for s in document
                    for r in _relations(s, text, label_type, entity_types, options["min_score"], offsets)
                ]
            else:
                found = self._labels(document[0] if document else None, options, label_type)
            answer[task["name"]] = found
        return answer

    def _tagger_answer(self, text: str, document: list[Any], options: Mapping[str, Any], label_type: str) -> Any:
        offsets = _Offsets(text)
        entities = [e for s in document for e in _entities(s, text, label_type, options["min_score"], offsets)]
        if options["return_tokens"]:
            tokens = [t for s in document for t in _tokens(s, text, label_type, offsets)]
            return {"entities": entities, "tokens": tokens}
        return {"entities": entities} if options["output"] == "records" else entities


def _shaped(answers: list[Any], options: Mapping[str, Any], field: str = "labels") -> list[Any]:
    """Answers as the request's ``output`` asks: as they are, or ``records`` (``{field: answer}`` per input)."""
    return [{field: answer} for answer in answers] if options["output"] == "records" else answers


def _value(point: Any, label_type: str) -> float | None:
    """A regressor's answer for one data point (Flair writes the number as the label's value)."""
    labels = point.get_labels(label_type)
    return float(labels[0].value) if labels else None


#: the task name Flair's ``predict_zero_shot`` gives its temporary task
ZERO_SHOT_TASK = "ZeroShot"


def zero_shot_label_type(labels: Sequence[str]) -> str:
    """The label type of a zero-shot task over ``labels``, as Flair's ``predict_zero_shot`` names it ('' for none)."""
    return "-".join(labels)


@contextlib.contextmanager
def _zero_shot_task(model: Any, labels: Sequence[str]) -> Iterator[None]:
    """Within the block, a TARS model answers for ``labels``: the steps of Flair's own ``predict_zero_shot``
    (a temporary task over the labels, multi-label as Flair's default there; the model's task
    restored afterwards); Flair's own method takes no ``mini_batch_size``."""
    from flair.data import Dictionary

    dictionary = Dictionary(add_unk=False)
    for label in labels:
        dictionary.add_item(label)
    current = model._current_task
    model.add_and_switch_to_new_task(
        task_name=ZERO_SHOT_TASK,
        label_dictionary=dictionary,
        label_type=zero_shot_label_type(dictionary.get_items()),
        multi_label=True,
        force_switch=True,
    )
    try:
        yield
    finally:
        model.switch_to_task(current)
        model._drop_task(ZERO_SHOT_TASK)


def _log_batches_to_stderr() -> None:
    """Show the batcher's per-run lines (``log_batches``) on stderr, once per process."""
    import sys

    batch_log = logging.getLogger("mlflow_flavor.batching")
    if not any(getattr(h, "_flair_mlflow", False) for h in batch_log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler._flair_mlflow = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        batch_log.addHandler(handler)
    batch_log.setLevel(logging.DEBUG)
