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
fails every request of its batch (MLServer's batching, unlike the pyfunc's, does not split a failed batch).
The model's refusals keep their status (400 for bad input). ``/invocations`` (MLflow's scoring protocol)
answers as ``mlflow models serve`` does. Files for ``mlserver start``: ``flair-mlflow mlserver-config``.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

try:
    import pandas as pd
    from mlflow.exceptions import MlflowException
    from mlserver.codecs import PandasCodec, StringCodec
    from mlserver.errors import InferenceError, MLServerError
    from mlserver.settings import ModelParameters
    from mlserver.types import Datatype, InferenceRequest, InferenceResponse, MetadataTensor, Parameters
    from mlserver_mlflow import MLflowRuntime
    from mlserver_mlflow.metadata import DefaultOutputPrefix, to_metadata_tensors
except ImportError as e:  # pragma: no cover - the message is the point
    from exporter.errors import MissingDependencyError

    raise MissingDependencyError("mlserver-mlflow", extra="mlserver", purpose="serving on MLServer") from e

from exporter.config import TEXT_PAIR_CLASSIFICATION, TEXT_PAIR_REGRESSION
from mlflow_flavor.inputs import PAIR_COLUMN, TEXT_COLUMN
from mlflow_flavor.mlmodel import FLAVOR_NAME
from mlflow_flavor.pyfunc import DEFAULT_MAX_TEXTS

__all__ = ["FlairRuntime", "input_columns", "max_texts"]

#: the tasks whose rows are text pairs
PAIR_TASKS = (TEXT_PAIR_CLASSIFICATION, TEXT_PAIR_REGRESSION)


def input_columns(task: str) -> tuple[str, ...]:
    """The V2 inputs (DataFrame columns) a model of ``task`` reads."""
    return (TEXT_COLUMN, PAIR_COLUMN) if task in PAIR_TASKS else (TEXT_COLUMN,)


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
        frame = self.decode_request(payload, default_codec=PandasCodec)
        if isinstance(frame, pd.DataFrame):
            frame = frame.apply(lambda column: column.map(_as_text))
        params = payload.parameters.model_extra if payload.parameters and payload.parameters.model_extra else None
        merging = self._settings.max_batch_size > 1 and self._settings.max_batch_time > 0
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


def max_texts(model: Any) -> int:
    """The most texts one ``predict`` call of ``model`` (a loaded pyfunc) takes: its ``max_texts`` setting."""
    options = getattr(getattr(model, "_model_impl", None), "options", None)
    return int(getattr(options, "max_texts", DEFAULT_MAX_TEXTS))


def _as_text(value: Any) -> Any:
    """V2 ``BYTES`` arrive as bytes over gRPC: the model reads text."""
    return value.decode("utf-8") if isinstance(value, (bytes, bytearray)) else value
