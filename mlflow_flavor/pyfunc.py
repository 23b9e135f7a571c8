"""The pyfunc face of a bundle: raw texts in, entities with character offsets out.

Accepted inputs (see the README's input contract): a pandas DataFrame with a string column ``text`` (or a
single string column), a list of strings, a single string, or a pandas Series / numpy array of strings.
Output: one list per input text of ``{"text", "label", "start", "end", "score"}`` where
``text == input[start:end]``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exporter.errors import InputError

__all__ = [
    "ALLOWED_PARAMS",
    "SPARK_CLASSIFIER_RESULT_TYPE",
    "SPARK_RESULT_TYPE",
    "FlairPyfuncModel",
    "ServingOptions",
    "normalize_texts",
    "parse_params",
]

log = logging.getLogger(__name__)

TEXT_COLUMN = "text"
DEFAULT_MAX_TEXTS = 1_000
DEFAULT_BATCH = 32

#: The ``params`` a caller may pass to ``predict``, with their types and defaults.
ALLOWED_PARAMS: dict[str, tuple[type, Any]] = {
    "mini_batch_size": (int, DEFAULT_BATCH),
    "return_tokens": (bool, False),
    "min_score": (float, 0.0),
    "output": (str, "entities"),
    "top_k": (int, 0),
}
OUTPUTS = ("entities", "labels", "records")  # "entities" / "labels": a bare list per text

#: ``result_type`` for ``mlflow.pyfunc.spark_udf`` with ``params={"output": "records"}``: one struct per
#: text whose field ``entities`` is the array of entity structs.
SPARK_RESULT_TYPE = "entities array<struct<text: string, label: string, start: bigint, end: bigint, score: double>>"
#: The same for text classifiers: one struct per text whose field ``labels`` is the array of label structs.
SPARK_CLASSIFIER_RESULT_TYPE = "labels array<struct<label: string, score: double>>"


@dataclass(frozen=True)
class ServingOptions:
    """Limits and threads applied by the pyfunc wrapper (from ``model_config``).

    Attributes:
        max_texts: the most texts one ``predict`` call (one HTTP request) may hold.
        torch_num_threads: torch's intra-op threads for Flair's code around the encoder (0: torch's default).
    """

    max_texts: int = DEFAULT_MAX_TEXTS
    torch_num_threads: int = 0

    def __post_init__(self) -> None:
        from exporter.errors import ConfigError

        if isinstance(self.max_texts, bool) or not isinstance(self.max_texts, int) or self.max_texts < 1:
            raise ConfigError(f"max_texts must be a positive integer, got {self.max_texts!r}.")
        if (
            isinstance(self.torch_num_threads, bool)
            or not isinstance(self.torch_num_threads, int)
            or self.torch_num_threads < 0
        ):
            raise ConfigError(f"torch_num_threads must be a non-negative integer, got {self.torch_num_threads!r}.")


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_text(index: int, value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise InputError(f"Text {index} is missing (None/NaN): every input row must be a string (use '' for no text).")
    raise InputError(
        f"Text {index} is a {type(value).__name__} ({_describe(value)}), expected a string. "
        f"Send a DataFrame with a string column '{TEXT_COLUMN}', a list of strings, or a single string."
    )


def normalize_texts(model_input: Any) -> list[str]:
    """Turn any accepted input shape into a list of strings, or raise :class:`InputError`."""
    import numpy as np
    import pandas as pd

    if isinstance(model_input, str):
        return [model_input]
    if isinstance(model_input, pd.DataFrame):
        # MLflow's schema enforcement passes the first column on; a list arrives as column 0.
        if TEXT_COLUMN in model_input.columns:
            column = model_input[TEXT_COLUMN]
        elif len(model_input.columns) == 1 and isinstance(model_input.columns[0], (int, np.integer)):
            column = model_input.iloc[:, 0]
        else:
            names = ", ".join(map(repr, model_input.columns[:10]))
            raise InputError(
                f"The input has column(s) [{names}] but no '{TEXT_COLUMN}' column. "
                f"Send a DataFrame with a single string column '{TEXT_COLUMN}', a list of strings, or a string."
            )
        values = column.tolist()
    elif isinstance(model_input, (pd.Series, np.ndarray)):
        if isinstance(model_input, np.ndarray) and model_input.ndim != 1:
            raise InputError(f"Expected a one-dimensional array of strings, got shape {model_input.shape}.")
        values = list(model_input)
    elif isinstance(model_input, (list, tuple)):
        values = list(model_input)
    elif isinstance(model_input, Mapping) and TEXT_COLUMN in model_input:
        return normalize_texts(model_input[TEXT_COLUMN])
    else:
        raise InputError(
            f"Unsupported input of type {type(model_input).__name__}. Send a DataFrame with a string column "
            f"'{TEXT_COLUMN}', a list of strings, or a single string."
        )
    return [_check_text(i, v) for i, v in enumerate(values)]


def parse_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check ``params`` against :data:`ALLOWED_PARAMS`; return them with defaults filled in."""
    result = {name: default for name, (_, default) in ALLOWED_PARAMS.items()}
    allowed = ", ".join(sorted(ALLOWED_PARAMS))
    for name, value in (params or {}).items():
        if name not in ALLOWED_PARAMS:
            raise InputError(f"Unknown parameter {name!r}; allowed parameters: {allowed}.")
        kind, _ = ALLOWED_PARAMS[name]
        if kind is bool:
            if not isinstance(value, (bool, int)) or value not in (0, 1):
                raise InputError(f"Parameter {name!r} must be true or false, got {_describe(value)}.")
            value = bool(value)
        elif kind is int:
            low = 0 if name == "top_k" else 1
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 1024:
                raise InputError(
                    f"Parameter {name!r} must be an integer between {low} and 1024, got {_describe(value)}."
                )
        elif kind is str:
            if value not in OUTPUTS:
                raise InputError(f"Parameter {name!r} must be one of {', '.join(OUTPUTS)}, got {_describe(value)}.")
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise InputError(f"Parameter {name!r} must be a number between 0 and 1, got {_describe(value)}.")
            value = float(value)
        result[name] = value
    return result


#: Characters Flair's ``Sentence`` deletes before tokenizing (``Sentence._handle_problem_characters``:
#: zero-width characters, and the C1 controls that have no windows-1252 meaning); its offsets then refer
#: to the text without them.
_REMOVED_BY_FLAIR = frozenset("\u200c\u200b\ufe0f\ufeff\u2028\u2029\x81\x8d\x8f\x90")


class _Offsets:
    """Maps Flair's character offsets back to offsets into the caller's original text."""

    def __init__(self, text: str) -> None:
        if any(c in _REMOVED_BY_FLAIR for c in text):
            self.kept = [i for i, c in enumerate(text) if c not in _REMOVED_BY_FLAIR]
        else:
            self.kept = None

    def span(self, start: int, end: int) -> tuple[int, int]:
        if self.kept is None or end <= start:
            return start, end
        return self.kept[start], self.kept[end - 1] + 1


def _entities(sentence: Any, text: str, tag_type: str, min_score: float) -> list[dict[str, Any]]:
    entities = []
    offsets = _Offsets(text)
    for span in sentence.get_spans(tag_type):
        label = span.get_label(tag_type)
        if label.score < min_score:
            continue
        start, end = offsets.span(span.start_position, span.end_position)
        entities.append(
            {"text": text[start:end], "label": label.value, "start": start, "end": end, "score": float(label.score)}
        )
    return entities


def _tokens(sentence: Any, text: str, tag_type: str) -> list[dict[str, Any]]:
    tags: dict[int, str] = {}
    for span in sentence.get_spans(tag_type):
        label = span.get_label(tag_type).value
        for i, token in enumerate(span.tokens):
            prefix = "S" if len(span.tokens) == 1 else "B" if i == 0 else "E" if i == len(span.tokens) - 1 else "I"
            tags[token.idx] = f"{prefix}-{label}"
    offsets = _Offsets(text)
    result = []
    for t in sentence.tokens:
        start, end = offsets.span(t.start_position, t.end_position)
        result.append({"text": text[start:end], "start": start, "end": end, "tag": tags.get(t.idx, "O")})
    return result


def _sorted_labels(sentence: Any, label_type: str) -> list[dict[str, Any]]:
    labels = [{"label": label.value, "score": float(label.score)} for label in sentence.get_labels(label_type)]
    return sorted(labels, key=lambda x: -x["score"])


class FlairPyfuncModel:
    """Wraps a loaded Flair model (accelerated or not) behind MLflow's pyfunc ``predict``."""

    def __init__(self, model: Any, manifest: Mapping[str, Any], options: ServingOptions | None = None) -> None:
        self.model = model
        self.manifest = dict(manifest)
        self.options = options or ServingOptions()
        self.tag_type = manifest.get("tag_type") or model.label_type
        self.classifier = manifest.get("task") == "text-classification"
        # Flair's predict is not documented as re-entrant; one prediction at a time per model keeps
        # results identical to sequential calls. Tokenization and input checks run outside the lock.
        self._lock = threading.Lock()

    def predict(self, model_input: Any, params: Mapping[str, Any] | None = None) -> list[Any]:
        """Entities for each input text; bad input raises ``MlflowException`` (HTTP 400 when served)."""
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        try:
            return self._predict(model_input, params)
        except InputError as e:
            raise MlflowException(str(e), error_code=INVALID_PARAMETER_VALUE) from e

    def _labels(self, sentence: Any, options: Mapping[str, Any]) -> list[dict[str, Any]]:
        """A text classifier's answer for one text: labels sorted by score, cut by ``top_k`` and ``min_score``."""
        if sentence is None or len(sentence) == 0:
            return []
        labels = [x for x in _sorted_labels(sentence, self.tag_type) if x["score"] >= options["min_score"]]
        return labels[: options["top_k"]] if options["top_k"] else labels

    def _predict(self, model_input: Any, params: Mapping[str, Any] | None) -> list[Any]:
        from flair.data import Sentence

        options = parse_params(params)
        texts = normalize_texts(model_input)
        if len(texts) > self.options.max_texts:
            raise InputError(
                f"The request holds {len(texts)} texts; the limit is {self.options.max_texts}. "
                "Split it into smaller requests, or raise max_texts in the model_config."
            )
        sentences = {i: Sentence(t) for i, t in enumerate(texts) if t.strip()}
        todo = [s for s in sentences.values() if len(s) > 0]
        if todo:
            with self._lock:
                self.model.predict(
                    todo,
                    mini_batch_size=options["mini_batch_size"],
                    **({"return_probabilities_for_all_classes": True} if self.classifier and options["top_k"] else {}),
                )
        if self.classifier:
            labels = [self._labels(sentences.get(i), options) for i in range(len(texts))]
            return [{"labels": x} for x in labels] if options["output"] == "records" else labels
        results = []
        for i, text in enumerate(texts):
            sentence = sentences.get(i)
            if sentence is None or len(sentence) == 0:
                if options["return_tokens"]:
                    results.append({"entities": [], "tokens": []})
                else:
                    results.append({"entities": []} if options["output"] == "records" else [])
                continue
            entities = _entities(sentence, text, self.tag_type, options["min_score"])
            if options["return_tokens"]:
                results.append({"entities": entities, "tokens": _tokens(sentence, text, self.tag_type)})
            elif options["output"] == "records":
                results.append({"entities": entities})
            else:
                results.append(entities)
        return results
