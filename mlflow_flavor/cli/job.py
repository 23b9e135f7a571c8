"""The main job: export a Flair model, log it, register a version, stage it and alias it.

This is what ``mlflow run . -P backend=onnx`` runs (through the ``flair-mlflow log`` command).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter.config import Backend
from exporter.errors import ConfigError
from exporter.tools.demo import demo_classifier_path, demo_model_path
from mlflow_flavor.flavor import FLAVOR_NAME, log_model
from mlflow_flavor.registry.versions import canonical_stage, stage_and_alias

__all__ = ["JobResult", "resolve_model_path", "run_log_job"]

log = logging.getLogger(__name__)

DEMO = "demo"
DEMO_CLASSIFIER = "demo-classifier"


@dataclass(frozen=True)
class JobResult:
    model_uri: str
    run_id: str
    registered_model_name: str | None
    version: str | None
    stage: str | None
    alias: str | None
    parity: dict[str, Any] | None


def resolve_model_path(model: str) -> Path:
    """``demo`` / ``demo-classifier``: the built-in demo tagger / topic classifier (trained and cached on first
    use); anything else is a path."""
    if model == DEMO:
        return demo_model_path()
    if model == DEMO_CLASSIFIER:
        return demo_classifier_path()
    path = Path(model).expanduser()
    if not path.exists():
        relative = "" if path.is_absolute() else f" (relative paths resolve against the current directory {Path.cwd()})"
        raise ConfigError(
            f"Model {model!r} not found: {path.absolute()} does not exist{relative}. Give the path of a Flair .pt "
            "file or a bundle, 'demo' or 'demo-classifier'."
        )
    return path


def _option_params(config: Any) -> dict[str, Any]:
    """The export options worth seeing next to the run (no paths, nothing secret)."""
    params = {}
    if config.backend is Backend.ONNX:
        params.update(
            {
                "opset": config.onnx.opset,
                "optimize": config.onnx.optimize or "none",
                "quantize": config.onnx.quantize or "none",
                "precision": config.onnx.precision,
                "per_channel": config.onnx.per_channel,
                "providers": ",".join(config.runtime.providers),
            }
        )
    elif config.backend is Backend.TORCHSCRIPT:
        params["force_max_length"] = config.torchscript.force_max_length
        params["quantize"] = config.torchscript.quantize or "none"
    return params


def run_log_job(
    model: str = DEMO,
    *,
    backend: str = Backend.ONNX.value,
    name: str = "model",
    registered_model_name: str | None = "ner",
    stage: str | None = "Production",
    alias: str | None = "production",
    pair: bool = True,
    experiment_name: str | None = None,
    **save_kwargs: Any,
) -> JobResult:
    """Export ``model`` with ``backend``, log it to the active (or a new) run, register, stage and alias it (``pair``:
    the other name of the same place too, :func:`mlflow_flavor.registry.versions.paired`)."""
    import mlflow

    if stage:  # before any export, run or registration: a wrong name must not leave an unstaged version behind
        stage = canonical_stage(stage)
    export_config = save_kwargs.get("export_config")
    backend_value = export_config.backend.value if export_config is not None else Backend.parse(backend).value
    source = resolve_model_path(model)
    if experiment_name and not mlflow.active_run():
        mlflow.set_experiment(experiment_name)
    with mlflow.start_run(nested=bool(mlflow.active_run())) as run:
        # the same values `mlflow run` logs for its parameters (MLflow refuses to change a logged param)
        mlflow.log_params({"backend": backend, "model": model})
        if export_config is not None:
            mlflow.log_params(_option_params(export_config))
        info = log_model(
            str(source), name=name, backend=backend_value, registered_model_name=registered_model_name, **save_kwargs
        )
        flavor = info.flavors.get(FLAVOR_NAME, {})
        # "backend" holds what was asked (mlflow run logs it as given); a model Flair itself accelerated is
        # bundled with the backend it needs (exporter.backends.choose_backend): say which one was
        mlflow.log_param("bundled_backend", flavor.get("backend"))
        parity = flavor.get("parity")
        if parity:
            mlflow.log_metrics(
                {
                    f"parity_{k}": float(v)
                    for k, v in parity.items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)
                }
            )
        version = str(info.registered_model_version) if registered_model_name else None
        moved = None
        if registered_model_name:
            moved = stage_and_alias(registered_model_name, version, stage or None, alias or None, pair=pair)
    result = JobResult(
        model_uri=info.model_uri,
        run_id=run.info.run_id,
        registered_model_name=registered_model_name,
        version=version,
        stage=moved.stage if moved else None,
        alias=moved.alias if moved else None,
        parity=parity,
    )
    log.info(
        "Logged %s (run %s)%s",
        result.model_uri,
        result.run_id,
        f" as {registered_model_name} v{version}" if version else "",
    )
    return result
