"""Loading a logged model: ``load_model`` (the Flair model) and ``_load_pyfunc`` (MLflow's pyfunc loader).

This is the reading side of the flavor and, with what it imports, all that a logged model's ``code/`` holds:
``exporter``'s format, runtime, backends and bundle reader, this package's pyfunc, batching, fetch and error
boundary. The writing side (``save_model``, ``log_model``) is ``mlflow_flavor.flavor``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from exporter.bundle.load import load_bundle, load_for_serving
from exporter.config import RuntimeOptions
from exporter.errors import ConfigError, did_you_mean
from exporter.runtime.lean.model import LeanModel
from mlflow_flavor.boundary import mlflow_errors
from mlflow_flavor.fetch import fetch_model
from mlflow_flavor.mlmodel import BUNDLE_SUBPATH, FLAVOR_NAME
from mlflow_flavor.pyfunc import SERVING_KEYS, FlairPyfuncModel, ServingOptions

__all__ = ["MODEL_CONFIG_KEYS", "check_model_config", "load_model"]

log = logging.getLogger(__name__)

#: the keys of a pyfunc ``model_config``: the runtime's (``RuntimeOptions``) and the pyfunc's (``ServingOptions``)
RUNTIME_KEYS = tuple(f.name for f in dataclasses.fields(RuntimeOptions))
MODEL_CONFIG_KEYS = (*RUNTIME_KEYS, *SERVING_KEYS)
#: where MLflow reads serving-time ``model_config`` overrides from (it drops the keys a model does not declare)
INFERENCE_CONFIG_ENV = "MLFLOW_PYFUNC_INFERENCE_CONFIG"


def check_model_config(model_config: Mapping[str, Any] | None, where: str = "model_config") -> tuple[dict, dict]:
    """Split a pyfunc ``model_config`` into runtime overrides and serving options, every key and value checked.

    Raises:
        ConfigError: an unknown key (named with its closest valid one) or a value out of range (one sentence).
    """
    config = dict(model_config or {})
    unknown = [key for key in config if key not in MODEL_CONFIG_KEYS]
    if unknown:
        hints = [f"{key!r}{did_you_mean(key, MODEL_CONFIG_KEYS)}" for key in unknown]
        raise ConfigError(
            f"Unknown {where} key(s) {', '.join(hints)}; allowed: {', '.join(MODEL_CONFIG_KEYS)} "
            "(`flair-mlflow inspect MODEL` shows each with its meaning)."
        )
    runtime = {k: v for k, v in config.items() if k in RUNTIME_KEYS}
    serving = {k: v for k, v in config.items() if k in SERVING_KEYS}
    RuntimeOptions().updated(runtime)  # the values' checks: one sentence each
    ServingOptions(**serving)
    return runtime, serving


def _check_inference_config_env() -> None:
    """Refuse a misspelt key in ``MLFLOW_PYFUNC_INFERENCE_CONFIG``, which MLflow itself drops with a warning."""
    text = os.environ.get(INFERENCE_CONFIG_ENV)
    if not text:
        return
    try:
        given = json.loads(text)
    except ValueError:
        raise ConfigError(f"{INFERENCE_CONFIG_ENV} must hold a JSON object, got {text[:80]!r}.") from None
    if not isinstance(given, dict):
        raise ConfigError(f"{INFERENCE_CONFIG_ENV} must hold a JSON object, got {text[:80]!r}.")
    check_model_config(given, where=INFERENCE_CONFIG_ENV)


def _runtime_overrides(model_config: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a pyfunc ``model_config`` into session overrides and serving options; refuse unknown keys."""
    runtime, serving = check_model_config(model_config)
    # environment variables fill in thread counts left at 0 ("let the library decide")
    for key, target in (
        ("intra_op_num_threads", runtime),
        ("inter_op_num_threads", runtime),
        ("torch_num_threads", serving),
    ):
        env = os.environ.get(f"FLAIR_MLFLOW_{key.upper()}")
        if env and not target.get(key):
            try:
                target[key] = int(env)
            except ValueError:
                raise ConfigError(f"FLAIR_MLFLOW_{key.upper()} must be an integer, got {env!r}.") from None
    return runtime, serving


def _load_from_local(
    local_path: Path,
    model_config: Mapping[str, Any] | None = None,
    allow_pickle: bool | None = None,
    *,
    serving: bool = False,
):
    """The bundle's model (with ``serving``: what its pyfunc serves, lean where it can) and the serving options."""
    from mlflow.utils.model_utils import _get_flavor_configuration

    conf = _get_flavor_configuration(str(local_path), FLAVOR_NAME)
    runtime, serving_options = _runtime_overrides(model_config)
    model = (load_for_serving if serving else load_bundle)(
        local_path / conf.get("bundle", BUNDLE_SUBPATH),
        runtime=runtime or None,
        expected_manifest_sha256=conf.get("manifest_sha256"),
        allow_pickle=allow_pickle,
    )
    return model, serving_options


def load_model(
    model_uri: str,
    dst_path: str | None = None,
    model_config: Mapping[str, Any] | None = None,
    *,
    allow_pickle: bool | None = None,
):
    """Load the Flair model (accelerated as logged) from ``model_uri`` (``models:/...``, ``runs:/...``, a path).

    ``allow_pickle=True`` unpickles the bundle's model.pt fully (running the code it names): needed only for
    bundles of schema 1 and 2 and for ``flair-onnx`` / Flair JIT models, and only for models you trust.
    ``None`` (default) follows ``FLAIR_MLFLOW_ALLOW_PICKLE`` in the environment.
    """
    from mlflow.tracking.artifact_utils import _download_artifact_from_uri

    with mlflow_errors():
        if dst_path is None:
            local_path = fetch_model(model_uri)  # verified, cached per exact model
        else:
            local_path = Path(_download_artifact_from_uri(artifact_uri=model_uri, output_path=dst_path))
        model, _ = _load_from_local(local_path, model_config, allow_pickle)
    return model


def _load_pyfunc(path: str, model_config: Mapping[str, Any] | None = None):
    """MLflow's pyfunc loader: ``path`` is the bundle directory inside the model directory.

    The opt-in to unpickle model.pt comes only from this process's environment (``FLAIR_MLFLOW_ALLOW_PICKLE=1``):
    a ``model_config`` key could be set by whoever wrote the ``MLmodel`` file, which MLflow reads it from.
    """
    local_path = Path(path).parent
    with mlflow_errors(), _said_in_one_line():
        _check_inference_config_env()
        model, serving = _load_from_local(local_path, model_config, serving=True)
        options = ServingOptions(**serving)
        if options.torch_num_threads and not isinstance(model, LeanModel):
            import torch

            torch.set_num_threads(options.torch_num_threads)
        return FlairPyfuncModel(model, model.flair_mlflow_manifest, options)


@contextlib.contextmanager
def _said_in_one_line() -> Iterator[None]:
    """A setting refused while MLflow loads the model (``mlflow models serve`` prints the traceback that
    follows): its sentence first, on one line of its own."""
    try:
        yield
    except ConfigError as e:
        log.error("The model was not loaded: %s", e)
        raise
