"""Loading a logged model: ``load_model`` (the Flair model) and ``_load_pyfunc`` (MLflow's pyfunc loader).

This is the reading side of the flavor and, with what it imports, all that a logged model's ``code/`` holds:
``exporter``'s format, runtime, backends and bundle reader, this package's pyfunc, batching, fetch and error
boundary. The writing side (``save_model``, ``log_model``) is ``mlflow_flavor.flavor``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from exporter.bundle.load import load_bundle
from exporter.config import RuntimeOptions
from exporter.errors import ConfigError
from mlflow_flavor.boundary import mlflow_errors
from mlflow_flavor.fetch import fetch_model
from mlflow_flavor.mlmodel import BUNDLE_SUBPATH, FLAVOR_NAME
from mlflow_flavor.pyfunc import SERVING_KEYS, FlairPyfuncModel, ServingOptions

__all__ = ["load_model"]


def _runtime_overrides(model_config: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a pyfunc ``model_config`` into session overrides and serving options; refuse unknown keys."""
    runtime_keys = {f.name for f in dataclasses.fields(RuntimeOptions)}
    config = dict(model_config or {})
    unknown = sorted(set(config) - runtime_keys - set(SERVING_KEYS))
    if unknown:
        allowed = ", ".join(sorted(runtime_keys | set(SERVING_KEYS)))
        raise ConfigError(f"Unknown model_config key(s) {', '.join(unknown)}; allowed: {allowed}.")
    runtime = {k: v for k, v in config.items() if k in runtime_keys}
    serving = {k: v for k, v in config.items() if k in SERVING_KEYS}
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


def _load_from_local(local_path: Path, model_config: Mapping[str, Any] | None = None, allow_pickle: bool | None = None):
    from mlflow.utils.model_utils import _get_flavor_configuration

    conf = _get_flavor_configuration(str(local_path), FLAVOR_NAME)
    runtime, serving = _runtime_overrides(model_config)
    model = load_bundle(
        local_path / conf.get("bundle", BUNDLE_SUBPATH),
        runtime=runtime or None,
        expected_manifest_sha256=conf.get("manifest_sha256"),
        allow_pickle=allow_pickle,
    )
    return model, serving


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
    with mlflow_errors():
        model, serving = _load_from_local(local_path, model_config)
        options = ServingOptions(**serving)
        if options.torch_num_threads:
            import torch

            torch.set_num_threads(options.torch_num_threads)
        return FlairPyfuncModel(model, model.flair_mlflow_manifest, options)
