"""MLServer's runtime for flair-mlflow models: the V2 inference protocol, for KServe and Seldon Core.

KServe and Seldon Core run MLflow models on MLServer, whose MLflow runtime (``mlserver_mlflow.MLflowRuntime``)
builds the model's V2 metadata from its signature's *inputs* and encodes whatever ``predict`` returns with
its codecs. A flair-mlflow model fits neither as it is, on purpose:

- its signature declares outputs and params but no inputs: with an input schema, MLflow's schema enforcement
  would refuse a plain list of texts ("Model is missing inputs ['text']") and drop the ``text_pair`` column
  of a pair model's unnamed schema without a word; so ``MLflowRuntime`` fails at load
  (``'NoneType' object has no attribute 'inputs'``);
- each text's answer is a list of entity dicts (or labels, a value, a dict per task), which none of
  MLServer's codecs encode (``'list' object has no attribute 'items'``).

:class:`FlairRuntime` is ``MLflowRuntime`` with those two steps done for the model: its inputs are the text
columns the model's task reads (``text``, and ``text_pair`` for pair models, ``BYTES``), requests decode as a
DataFrame (``content_type`` ``pd``), and the answers go back as a DataFrame with one row per input row and a
column per output of the signature (``entities``, ``labels``, ``value``, or one per task), each cell JSON
(MLServer's ``pd_json``). One row out per row in is also what MLServer's own adaptive batching needs
(``max_batch_size`` / ``max_batch_time``). With that batching on, request parameters are refused (MLServer
merges a batch's requests under one set of parameters, the last request's) and a merged batch larger than
the model's ``max_texts`` is predicted in parts (MLServer's batch size counts requests, not texts); a bad text
or input fails every request of its batch (MLServer's batching, unlike the pyfunc's, does not split a failed
batch). Each request's inputs are checked before they are decoded (:func:`check_inputs`): only the model's input
names, datatype ``BYTES``, a text in every row, as many rows in each input; anything else, or a request that
MLServer's codecs cannot decode, is a 400 with a sentence (MLServer's codecs would read a number as an empty
text, or fail with a 500 and a traceback). The model's refusals keep their status (400 for bad input).
``/invocations`` (MLflow's scoring protocol) answers as ``mlflow models serve`` does. Files for
``mlserver start``: ``flair-mlflow mlserver-config``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from functools import partial
from typing import Any

try:
    import pandas as pd
    from mlflow.exceptions import MlflowException
    from mlserver.codecs import PandasCodec, StringCodec
    from mlserver.errors import InferenceError, MLServerError
    from mlserver.settings import ModelParameters
    from mlserver.types import (
        Datatype,
        InferenceRequest,
        InferenceResponse,
        MetadataTensor,
        Parameters,
        RequestInput,
    )
    from mlserver_mlflow import MLflowRuntime
    from mlserver_mlflow.metadata import DefaultOutputPrefix, to_metadata_tensors
except ImportError as e:  # pragma: no cover - the message is the point
    from exporter.errors import MissingDependencyError

    raise MissingDependencyError("mlserver-mlflow", extra="mlserver", purpose="serving on MLServer") from e

from exporter.errors import did_you_mean
from exporter.format.specs import spec
from mlflow_flavor.mlmodel import FLAVOR_NAME
from mlflow_flavor.pyfunc import DEFAULT_MAX_TEXTS

__all__ = ["FlairRuntime", "check_inputs", "input_columns", "max_texts"]


def input_columns(task: str) -> tuple[str, ...]:
    """The V2 inputs (DataFrame columns) a model of ``task`` reads."""
    return spec(task).columns


class FlairRuntime(MLflowRuntime):
    """``mlserver_mlflow.MLflowRuntime`` for flair-mlflow models (see the module docstring)."""

    def _sync_metadata(self) -> None:
        flavor = self._model.metadata.flavors.get(FLAVOR_NAME)
        if flavor is None:
            raise ValueError(
                f"{self._settings.name}: not a flair-mlflow model (its MLmodel has no '{FLAVOR_NAME}' flavor); "
                "serve it with mlserver_mlflow.MLflowRuntime instead."
            )
        self._columns = input_columns(flavor.get("task", ""))
        self.inputs = [
            MetadataTensor(
                name=column,
                datatype=Datatype.BYTES,
                shape=[-1],
                parameters=Parameters(content_type=StringCodec.ContentType),
            )
            for column in self._columns
        ]
        signature = self._signature
        self._outputs = [spec.name for spec in signature.outputs.inputs] if signature and signature.outputs else []
        if signature is not None and signature.outputs is not None:
            self.outputs = to_metadata_tensors(schema=signature.outputs, prefix=DefaultOutputPrefix)
        if not self._settings.parameters:
            self._settings.parameters = ModelParameters()
        self._settings.parameters.content_type = PandasCodec.ContentType

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        merging = self._settings.max_batch_size > 1 and self._settings.max_batch_time > 0
        check_inputs(payload.inputs, self._columns, merged=merging)
        try:
            frame = self.decode_request(payload, default_codec=PandasCodec)
        except Exception as e:  # a 400 with a sentence, never a 500 with MLServer's traceback
            raise InferenceError(
                f"The request's inputs could not be read as a table of texts ({type(e).__name__}: {e}); send each "
                f"input ({', '.join(self._columns)}) as datatype BYTES, data a list of texts, one per row."
            ) from None
        if isinstance(frame, pd.DataFrame):
            frame = frame.apply(lambda column: column.map(_as_text))
        params = payload.parameters.model_extra if payload.parameters and payload.parameters.model_extra else None
        if params and merging:
            # MLServer merges the requests of a batch and keeps one set of parameters (the last request's)
            raise InferenceError(
                f"Request parameters ({', '.join(sorted(params))}) cannot be honoured with MLServer's adaptive "
                "batching on (max_batch_size > 1): MLServer would apply one request's parameters to every request "
                "merged with it. Serve without MLServer's batching (the model batches concurrent requests itself), "
                "or set the values for every request in the model_config (MLFLOW_PYFUNC_INFERENCE_CONFIG)."
            )
        # MLServer's batch size counts requests: a merged batch may hold more texts than one predict call may
        chunk = max_texts(self._model) if merging else len(frame) or 1
        parts = [frame.iloc[start : start + chunk] for start in range(0, max(len(frame), 1), chunk)]
        answers: list[Any] = []
        try:
            for part in parts:
                # on a thread, as MLflow's own server does: the event loop goes on reading requests, and those that
                # arrive while the model runs reach the pyfunc's adaptive batching together (inline, MLServer handed
                # the model one request at a time: 75 texts/s for 8 one-text clients on 2 cores, any batching)
                answers += await asyncio.get_running_loop().run_in_executor(
                    None, partial(self._model.predict, part, params=params)
                )
        except MlflowException as e:  # the model's refusal keeps its status: 400 for bad input
            if e.get_http_status_code() < 500:
                raise InferenceError(e.message) from None
            raise MLServerError(e.message, e.get_http_status_code()) from None
        return self.encode_response(self._as_table(answers), default_codec=PandasCodec)

    def _as_table(self, answers: Any) -> pd.DataFrame:
        """One row per answer: the answer under the signature's single output, or a dict's fields as columns."""
        answers = list(answers)
        if len(self._outputs) == 1 and not (answers and isinstance(answers[0], dict)):
            return pd.DataFrame({self._outputs[0]: pd.Series(answers, dtype=object)})
        if answers and all(isinstance(a, dict) for a in answers):
            return pd.DataFrame({k: pd.Series([a.get(k) for a in answers], dtype=object) for k in answers[0]})
        return pd.DataFrame({"answer": pd.Series(answers, dtype=object)})


def check_inputs(inputs: Sequence[RequestInput], columns: Sequence[str], merged: bool = False) -> None:
    """Refuse (``InferenceError``, 400) V2 request inputs that are not texts for a model that reads ``columns``.

    Each input must be named after one of ``columns`` (once), have datatype ``BYTES`` and data a list of texts
    (``str``, or ``bytes`` as gRPC sends them; a single text counts as one row, as MLServer's codecs read it), and
    every input must have as many rows. ``merged``: the request is MLServer's merge of a batch of requests, whose
    row numbers count across them (the message says so).
    """
    across = " (rows count across the requests MLServer's adaptive batching merged with this one)" if merged else ""
    seen: dict[str, int] = {}
    for request_input in inputs:
        name = request_input.name
        if name not in columns:
            expected = " and ".join(repr(c) for c in columns)
            raise InferenceError(
                f"Input {name!r} is not one this model reads{did_you_mean(name, columns)}: its "
                f"input{'s are' if len(columns) > 1 else ' is'} {expected}."
            )
        if name in seen:
            raise InferenceError(f"Input {name!r} appears twice in the request: send each input once.")
        datatype = getattr(request_input.datatype, "value", request_input.datatype)
        if datatype != Datatype.BYTES.value:
            raise InferenceError(
                f"Input {name!r} has datatype {datatype}: the model reads texts, so each input must be datatype "
                "BYTES with data a list of texts, one per row."
            )
        data = getattr(request_input.data, "root", request_input.data)
        rows = data if isinstance(data, list) else [data]
        for row, value in enumerate(rows):
            if not isinstance(value, (str, bytes, bytearray)):
                raise InferenceError(
                    f"Input {name!r}, row {row}{across}, holds {_shown(value)}, not a text: each row must be a text "
                    "(a JSON string)."
                )
            if isinstance(value, (bytes, bytearray)):
                try:
                    value.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise InferenceError(
                        f"Input {name!r}, row {row}{across}, is not UTF-8 text ({e.reason} at byte {e.start}): send "
                        "each text encoded as UTF-8."
                    ) from None
        seen[name] = len(rows)
    missing = [column for column in columns if column not in seen]
    if missing:
        raise InferenceError(
            f"The request lacks the input{'s' if len(missing) > 1 else ''} {' and '.join(map(repr, missing))}: this "
            f"model reads {' and '.join(map(repr, columns))}, each datatype BYTES with one text per row."
        )
    if len(set(seen.values())) > 1:
        counts = " and ".join(f"{name!r} {count}" for name, count in seen.items())
        raise InferenceError(
            f"The inputs have different numbers of rows ({counts}): each row is one text, or one pair of texts "
            "across the inputs, so every input needs as many."
        )


def _shown(value: Any) -> str:
    """``value`` for a message: as JSON (as the client wrote it), cut short, with its JSON type."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    kinds = {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object"}
    kind = "null" if value is None else kinds.get(type(value), type(value).__name__)
    return text if kind == "null" else f"{text} ({kind})"


def max_texts(model: Any) -> int:
    """The most texts one ``predict`` call of ``model`` (a loaded pyfunc) takes: its ``max_texts`` setting."""
    options = getattr(getattr(model, "_model_impl", None), "options", None)
    return int(getattr(options, "max_texts", DEFAULT_MAX_TEXTS))


def _as_text(value: Any) -> Any:
    """V2 ``BYTES`` arrive as bytes over gRPC: the model reads text."""
    return value.decode("utf-8") if isinstance(value, (bytes, bytearray)) else value
