"""Model registry helpers: register a logged model, move it to a stage, point an alias at it."""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass
from typing import Any

from exporter.errors import ConfigError, did_you_mean
from mlflow_flavor.fetch import seal_version
from mlflow_flavor.redact import redact
from mlflow_flavor.registry.errors import PromotionError

__all__ = [
    "RegisteredVersion",
    "PAIRED_STAGES",
    "alias_target",
    "paired",
    "register_model_version",
    "stage_and_alias",
    "versions_in_stage",
    "warn_alias_case",
    "warn_unpaired",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    stage: str | None
    alias: str | None


#: MLflow's model version stages
STAGES = ("None", "Staging", "Production", "Archived")


def canonical_stage(stage: str) -> str:
    """MLflow's spelling of ``stage`` (any case); an unknown stage raises ``ConfigError`` naming the closest."""
    for known in STAGES:
        if str(stage).lower() == known.lower():
            return known
    hint = did_you_mean(str(stage).capitalize(), STAGES, cutoff=0.5)
    raise ConfigError(f"Unknown stage {stage!r}{hint}: MLflow's stages are {', '.join(STAGES)}.")


def _stages(client, name: str) -> dict[str, str]:
    """Every version of ``name`` with its current stage."""
    return {str(v.version): v.current_stage for v in client.search_model_versions(f"name='{name}'")}


def versions_in_stage(client, name: str, stage: str) -> list[str]:
    """The versions of ``name`` in ``stage`` (any case), oldest first; none when the model does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        stages = _stages(client, name)
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            return []
        raise
    return sorted((v for v, s in stages.items() if s.lower() == stage.lower()), key=int)


def alias_target(client, name: str, alias: str) -> str | None:
    """The version ``alias`` points at, or None when it points nowhere (or the model does not exist)."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as e:
        if e.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def warn_alias_case(client, name: str, alias: str) -> None:
    """Warn when ``alias`` differs only by case from aliases ``name`` already has.

    MLflow's aliases are case-sensitive: ``Production`` beside ``production`` is a second alias, not the same one.
    """
    from mlflow.exceptions import MlflowException

    try:
        aliases = client.get_registered_model(name).aliases or {}
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            return
        raise
    twins = sorted(a for a in aliases if a != alias and a.lower() == alias.lower())
    if not twins:
        return
    existing, versions = " and ".join(map(repr, twins)), ", ".join(str(aliases[t]) for t in twins)
    message = "Alias %r differs only by case from %s of model %s: MLflow aliases are case-sensitive, so this sets"
    message += " a second alias beside it (which still points to version %s). To move that one, give %r."
    log.warning(message, alias, existing, name, versions, twins[0])


#: the stages that an alias of the same name (any case) also names: ``models:/ner/Production`` and
#: ``models:/ner@production`` are two ways of naming one thing
PAIRED_STAGES = ("Staging", "Production")


#: how to move only what was named, in the CLI and the MLflow project
_UNPAIR = "--no-pair, or -P pair=false in the MLflow project, moves only what was named"


def paired(client, name: str, stage: str | None, alias: str | None) -> tuple[str | None, str | None]:
    """``stage`` and ``alias`` completed with the other way of naming the same place, where that other name is in
    use: an alias ``production`` alone also moves the ``Production`` stage when a version of ``name`` is in it, a
    stage ``Production`` alone also moves the alias ``production`` when the model has it. So a promotion never
    leaves ``models:/name/Production`` and ``models:/name@production`` on different versions."""
    stage = canonical_stage(stage) if stage else stage
    if alias and not stage:
        twin = next((s for s in PAIRED_STAGES if s.lower() == alias), None)  # aliases are case-sensitive
        if twin and versions_in_stage(client, name, twin):
            log.info("Also moving stage %s of %s with alias %s (both name it; %s)", twin, name, alias, _UNPAIR)
            return twin, alias
    if stage in PAIRED_STAGES and not alias:
        twin = stage.lower()
        if alias_target(client, name, twin) is not None:
            log.info("Also moving alias %s of %s with stage %s (both name it; %s)", twin, name, stage, _UNPAIR)
            return stage, twin
    return stage, alias


def warn_unpaired(client, name: str) -> None:
    """Warn where a stage and the alias of its name now point at different versions of ``name``."""
    for place in PAIRED_STAGES:
        in_stage = versions_in_stage(client, name, place)
        holder = alias_target(client, name, place.lower())
        if in_stage and holder is not None and holder not in in_stage:
            log.warning(
                "models:/%s/%s serves version %s while models:/%s@%s serves version %s: move both (promote with "
                "--to-stage %s --to-alias %s, or without --no-pair / -P pair=false) unless you mean them to differ.",
                name,
                place,
                in_stage[-1],
                name,
                place.lower(),
                holder,
                place,
                place.lower(),
            )


def stage_and_alias(
    name: str,
    version: str,
    stage: str | None = None,
    alias: str | None = None,
    archive_existing: bool = True,
    client: Any = None,
    pair: bool = True,
) -> RegisteredVersion:
    """Move ``name`` version ``version`` to ``stage`` (archiving the versions there) and set ``alias`` on it.

    Both or neither: if setting the alias fails after the stage moved, the stages and the alias are put back.
    With ``pair`` (the default) the other name of the same place moves too where it is in use (:func:`paired`);
    without it, a stage and alias of one name left on different versions are warned about.

    Returns:
        The version with the stage and alias that moved (the paired ones included).

    Raises:
        PromotionError: the registry refused the move (after the rollback).
    """
    from mlflow import MlflowClient

    client = client or MlflowClient()
    if pair:
        stage, alias = paired(client, name, stage, alias)
    previous_stages = _stages(client, name) if stage else {}
    previous_alias = alias_target(client, name, alias) if alias else None
    if alias:
        warn_alias_case(client, name, alias)
    with warnings.catch_warnings():
        # Stages are deprecated in MLflow 3 but still resolve models:/name/Stage URIs.
        warnings.simplefilter("ignore", category=FutureWarning)
        try:
            if stage:
                client.transition_model_version_stage(name, version, stage, archive_existing_versions=archive_existing)
                log.info("Model %s version %s moved to stage %s", name, version, stage)
            if alias:
                client.set_registered_model_alias(name, alias, version)
                log.info("Alias %s of model %s now points to version %s", alias, name, version)
        except Exception as e:
            rolled_back = _roll_back(client, name, previous_stages, alias, previous_alias)
            raise PromotionError(
                f"Promotion stopped while moving the stage / alias of {name} v{version}: "
                f"{redact(getattr(e, 'message', None) or str(e))}\n"
                + (
                    "The stages and alias were put back as they were before. "
                    if rolled_back
                    else "Putting the stages and alias back failed as well: check them in the registry. "
                )
                + "Fix the cause and run the same promotion again."
            ) from None
    if not pair:
        warn_unpaired(client, name)
    return RegisteredVersion(name=name, version=str(version), stage=stage, alias=alias)


def _roll_back(client, name: str, stages: dict[str, str], alias: str | None, alias_version: str | None) -> bool:
    try:
        now = _stages(client, name)
        for version, stage in stages.items():
            if now.get(version) != stage:
                client.transition_model_version_stage(name, version, stage, archive_existing_versions=False)
        if alias:
            if alias_version is None:
                with contextlib.suppress(Exception):
                    client.delete_registered_model_alias(name, alias)
            elif alias_target(client, name, alias) != alias_version:
                client.set_registered_model_alias(name, alias, alias_version)
        return True
    except Exception as e:
        log.error("Could not restore the stages / alias of %s: %s", name, redact(str(e)))
        return False


def register_model_version(
    model_uri: str,
    name: str,
    stage: str | None = None,
    alias: str | None = None,
    tags: dict[str, str] | None = None,
    pair: bool = True,
) -> RegisteredVersion:
    """Register ``model_uri`` as a new version of ``name``, then stage and alias it (``pair``: see
    :func:`stage_and_alias`)."""
    import mlflow

    result = mlflow.register_model(model_uri, name, tags=tags)
    log.info("Registered %s as %s version %s", model_uri, name, result.version)
    seal_version(name, str(result.version))
    return stage_and_alias(name, str(result.version), stage, alias, pair=pair)
