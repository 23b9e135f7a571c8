"""Model registry helpers: register a logged model, move it to a stage, point an alias at it."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

__all__ = ["RegisteredVersion", "register_model_version", "stage_and_alias"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    stage: str | None
    alias: str | None


def stage_and_alias(
    name: str, version: str, stage: str | None = None, alias: str | None = None, archive_existing: bool = True
) -> RegisteredVersion:
    """Move ``name`` version ``version`` to ``stage`` (archiving the versions there) and set ``alias`` on it."""
    from mlflow import MlflowClient

    client = MlflowClient()
    if stage:
        with warnings.catch_warnings():
            # Stages are deprecated in MLflow 3 but still resolve models:/name/Stage URIs.
            warnings.simplefilter("ignore", category=FutureWarning)
            client.transition_model_version_stage(name, version, stage, archive_existing_versions=archive_existing)
        log.info("Model %s version %s moved to stage %s", name, version, stage)
    if alias:
        client.set_registered_model_alias(name, alias, version)
        log.info("Alias %s of model %s now points to version %s", alias, name, version)
    return RegisteredVersion(name=name, version=str(version), stage=stage, alias=alias)


def register_model_version(
    model_uri: str, name: str, stage: str | None = None, alias: str | None = None, tags: dict[str, str] | None = None
) -> RegisteredVersion:
    """Register ``model_uri`` as a new version of ``name``, then stage and alias it."""
    import mlflow

    from mlflow_flavor.fetch import seal_version

    result = mlflow.register_model(model_uri, name, tags=tags)
    log.info("Registered %s as %s version %s", model_uri, name, result.version)
    seal_version(name, str(result.version))
    return stage_and_alias(name, str(result.version), stage, alias)
