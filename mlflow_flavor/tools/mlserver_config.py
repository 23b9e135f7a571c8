"""Files that run a flair-mlflow model on MLServer: ``model-settings.json`` and ``settings.json`` for ``mlserver start``.

``model-settings.json`` names the model, its runtime (:class:`mlflow_flavor.mlserver.FlairRuntime`, which
needs MLServer and its MLflow runtime: ``pip install -e ".[mlserver]"`` in a checkout of this project), its URI
(a local path, ``runs:/``, ``models:/name/Stage``, ``models:/name@alias`` or ``s3://...``: MLflow resolves it
when MLServer loads the model, with the serving process's ``MLFLOW_TRACKING_URI`` and credentials, none of
which are written here) and MLServer's own adaptive batching. ``settings.json`` holds the server's ports and its
parallel workers (0: the model runs in the server's process; N: N worker processes, each with its own copy of
the model).

The layout is MLServer's model repository: ``DIRECTORY/settings.json`` and ``DIRECTORY/<name>/model-settings.json``
for ``mlserver start DIRECTORY``, which finds every ``model-settings.json`` below the folder it is given and warns
when a model's name is not the name of the folder holding its settings (``Model name 'ner' is different than
model's folder name``). The same command with another ``name`` adds a model to the server (``settings.json``
is rewritten with that command's server options).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter.config import check_integer
from exporter.errors import ConfigError
from mlflow_flavor.redact import public_uri

__all__ = ["MLServerConfig", "RUNTIME", "write_mlserver_config"]

#: the ``implementation`` MLServer imports to run a flair-mlflow model
RUNTIME = "mlflow_flavor.mlserver.FlairRuntime"
MODEL_SETTINGS = "model-settings.json"
SERVER_SETTINGS = "settings.json"


@dataclass(frozen=True)
class MLServerConfig:
    """How MLServer serves the model.

    Attributes:
        model_uri: the MLflow model to serve (path or URI, resolved by MLflow at load).
        name: the model's name in V2 paths (``/v2/models/<name>/infer``).
        parallel_workers: worker processes (0: the model runs in the server's own process).
        max_batch_size / max_batch_time: MLServer's adaptive batching of V2 requests (0: off); the time in
            seconds.
        http_port / grpc_port / metrics_port: the server's ports.
    """

    model_uri: str
    name: str = "flair"
    parallel_workers: int = 0
    max_batch_size: int = 0
    max_batch_time: float = 0.0
    http_port: int = 8080
    grpc_port: int = 8081
    metrics_port: int = 8082

    def __post_init__(self) -> None:
        if not str(self.model_uri).strip():
            raise ConfigError("model_uri must name an MLflow model (a path or a URI).", "model_uri")
        if public_uri(str(self.model_uri)) != str(self.model_uri):
            raise ConfigError(
                f"model_uri {public_uri(str(self.model_uri))!r} carries credentials, which would be written into "
                "model-settings.json: give the URI without them and the credentials to the serving process "
                "(AWS_* or MLFLOW_TRACKING_* variables, a service account).",
                "model_uri",
            )
        if not self.name or any(c in self.name for c in "/\\ ?#") or self.name in (".", ".."):
            raise ConfigError(f"name must be one path segment without spaces, got {self.name!r}.", "name")
        check_integer("parallel_workers", self.parallel_workers, 0)
        check_integer("max_batch_size", self.max_batch_size, 0)
        if not isinstance(self.max_batch_time, (int, float)) or self.max_batch_time < 0:
            raise ConfigError(f"max_batch_time must be seconds >= 0, got {self.max_batch_time!r}.", "max_batch_time")
        if bool(self.max_batch_size) != bool(self.max_batch_time):
            raise ConfigError(
                "MLServer batches only with both max_batch_size and max_batch_time above 0 (got "
                f"{self.max_batch_size} and {self.max_batch_time}): set both, or neither.",
                "max_batch_size",
            )
        ports = (self.http_port, self.grpc_port, self.metrics_port)
        for port_name, port in zip(("http_port", "grpc_port", "metrics_port"), ports):
            check_integer(port_name, port, 1)
        if len(set(ports)) != 3:
            raise ConfigError(f"http_port, grpc_port and metrics_port must differ, got {ports}.", "http_port")

    def model_settings(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "implementation": RUNTIME,
            "parameters": {"uri": str(self.model_uri)},
            "max_batch_size": self.max_batch_size,
            "max_batch_time": self.max_batch_time,
        }

    def server_settings(self) -> dict[str, Any]:
        return {
            "http_port": self.http_port,
            "grpc_port": self.grpc_port,
            "metrics_port": self.metrics_port,
            "parallel_workers": self.parallel_workers,
        }


def write_mlserver_config(config: MLServerConfig, directory: str | Path) -> list[Path]:
    """Write ``directory/<name>/model-settings.json`` and ``directory/settings.json`` (folders created if
    missing), each file written whole or not at all; returns their paths.

    A ``directory/model-settings.json`` of this runtime (the layout this function wrote before, one model per
    directory) is moved into the folder named after its model once the new files are written (MLServer keeps
    serving it, without the folder-name warning), or replaced where it is this model's. Any other one is refused
    (``ConfigError``) before anything is written: it is another runtime's model.
    """
    directory = Path(directory)
    stale = directory / MODEL_SETTINGS
    previous = None
    if stale.is_file():
        try:
            previous = json.loads(stale.read_text())
        except (OSError, ValueError):
            previous = None
        if not (isinstance(previous, dict) and previous.get("implementation") == RUNTIME):
            raise ConfigError(
                f"{stale} already holds another model's settings, which `mlserver start {directory}` would load "
                "beside this one: give another directory, or move that file into a folder named after its model.",
                "directory",
            )
    model_folder = directory / config.name
    model_folder.mkdir(parents=True, exist_ok=True)
    written = []
    for folder, name, content in (
        (model_folder, MODEL_SETTINGS, config.model_settings()),
        (directory, SERVER_SETTINGS, config.server_settings()),
    ):
        target = folder / name
        with tempfile.NamedTemporaryFile("w", dir=folder, prefix=f".{name}.", delete=False) as f:
            json.dump(content, f, indent=2)
            f.write("\n")
        os.replace(f.name, target)
        written.append(target)
    if stale.is_file():
        kept = str(previous.get("name") or "")
        if kept and kept != config.name and kept not in (".", "..") and "/" not in kept:
            (directory / kept).mkdir(exist_ok=True)
            os.replace(stale, directory / kept / MODEL_SETTINGS)  # another model of this runtime: kept, moved
        else:
            stale.unlink()
    return written
