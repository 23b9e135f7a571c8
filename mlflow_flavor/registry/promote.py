"""Promote a registered model version: to a stage or alias, or into another bucket and tracking server.

Within one registry, :func:`promote` downloads the version, verifies every checksum of its bundle and then
moves the stage and/or alias. Across environments (another tracking server, another registered model
name or another artifact location), it::

    download source ─► verify ─► (find an earlier copy by its source tags) ─► upload + register
        ─► download from the target ─► compare every byte with the source ─► tag verified
        ─► (quality gate: evaluate it and the champion on labeled data) ─► move alias/stage

With ``eval_conll``, the version and the champion (the version holding the target alias, else the newest in
the target stage, in the target registry) are evaluated on the same labeled data in one run, and the alias /
stage move only when the version passes ``min_f1`` and ``max_f1_drop`` (:mod:`mlflow_flavor.registry.evaluate`).

Each step either completes or raises :class:`PromotionError` before the alias or stage is touched, so a
failure midway leaves the target pointing where it pointed before. Running the same promotion again finds
the copy it made (by its source tags), repairs it if its files do not match, and finishes without a second
version. Credentials never reach tags, logs or messages: URIs are stored without user info.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from exporter.config import check_integer
from exporter.errors import BundleError, ConfigError, FlairMlflowError
from mlflow_flavor.fetch import (
    BUNDLE_DIGEST_TAG,
    FILES_DIGEST_TAG,
    REGISTRY_HINT,
    VerifiedModel,
    check_registered_digests,
    check_registry_chosen,
    download_model,
    using_tracking_uri,
    verify_model_dir,
)
from mlflow_flavor.redact import public_uri, redact
from mlflow_flavor.registry.errors import PromotionError, QualityGateError, SourceVerificationError
from mlflow_flavor.registry.evaluate import EVALUATION_RUN_TAG, EvaluationConfig, evaluate_model
from mlflow_flavor.registry.gate import QualityGate, check_quality
from mlflow_flavor.registry.versions import alias_target, stage_and_alias, versions_in_stage

__all__ = [
    "PromotionConfig",
    "PromotionResult",
    "SOURCE_TAGS",
    "promote",
]

log = logging.getLogger(__name__)

TAG_PREFIX = "flair_mlflow."
SOURCE_TAGS = {
    "tracking_uri": TAG_PREFIX + "source.tracking_uri",
    "name": TAG_PREFIX + "source.name",
    "version": TAG_PREFIX + "source.version",
}
TARGET_LOCATION_TAG = TAG_PREFIX + "target_artifact_location"
VERIFIED_TAG = TAG_PREFIX + "verified"
MODEL_ARTIFACT_PATH = "model"
DEFAULT_EXPERIMENT = "flair-mlflow-promotions"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PromotionConfig:
    """What to promote and where.

    Args:
        name: registered model name in the source registry.
        version: the version number, or ``@alias`` to promote what an alias points at.
        to_alias / to_stage: what to move in the target (at least one).
        tracking_uri: the source tracking server (``None``: the current tracking URI).
        target_tracking_uri: another tracking server; ``None`` keeps the source one.
        target_name: the registered model name in the target (default: ``name``).
        target_artifact_location: where the copy's files go (``s3://bucket/prefix``); the artifact location
            of the target experiment ``target_experiment``, created when missing.
        archive_existing: archive the versions that were in ``to_stage`` before.
        pair: also move the other name of the same place where it is in use (an alias ``production`` alone moves
            the ``Production`` stage too, and the reverse: :func:`mlflow_flavor.registry.versions.paired`), so that
            ``models:/name/Production`` and ``models:/name@production`` never serve different versions unasked;
            ``False`` moves only what is named (and warns where the two then differ).
        allow_untagged: promote a version registered without flair-mlflow's digest tags (registered by
            plain MLflow calls); its files are then checked against its own manifest only.
        eval_conll: a labeled file (CoNLL for taggers, ``__label__x text`` lines for classifiers): evaluate the
            version and the champion on it before anything moves, in one run of the target experiment.
        eval_limit: only the first that many sentences or texts of ``eval_conll`` (None: all of them).
        min_f1: the least entity F1 (micro; label F1 for classifiers) the version must reach.
        max_f1_drop: the most its F1 may fall below the champion's (ignored while there is no champion).
    """

    name: str
    version: str
    to_alias: str | None = None
    to_stage: str | None = None
    tracking_uri: str | None = None
    target_tracking_uri: str | None = None
    target_name: str | None = None
    target_artifact_location: str | None = None
    target_experiment: str = DEFAULT_EXPERIMENT
    archive_existing: bool = True
    pair: bool = True
    allow_untagged: bool = False
    eval_conll: str | None = None
    eval_limit: int | None = None
    min_f1: float | None = None
    max_f1_drop: float | None = None

    def __post_init__(self):
        if not self.name:
            raise ConfigError("Name the registered model to promote (--name).")
        version = str(self.version or "")
        if not (version.isdigit() or (version.startswith("@") and len(version) > 1)):
            raise ConfigError(f"version must be a version number or @alias, got {self.version!r}.")
        object.__setattr__(self, "version", version)
        if not self.to_alias and not self.to_stage:
            raise ConfigError("Say where to promote to: --to-alias and/or --to-stage.")
        if self.to_stage and self.to_stage.lower() not in {"staging", "production", "archived", "none"}:
            raise ConfigError(f"to_stage must be Staging, Production, Archived or None, got {self.to_stage!r}.")
        if self.target_artifact_location and "://" not in self.target_artifact_location:
            raise ConfigError(
                f"target_artifact_location must be a URI such as s3://bucket/prefix, got {self.target_artifact_location!r}."
            )
        gate = self.gate  # checks the thresholds
        if self.eval_conll:
            if not Path(self.eval_conll).is_file():
                raise ConfigError(f"eval_conll {self.eval_conll!r} is not a file: give the labeled set to evaluate on.")
            object.__setattr__(self, "eval_conll", str(self.eval_conll))
        elif gate.active:
            raise ConfigError(
                "min_f1 and max_f1_drop need a labeled set to evaluate on: give eval_conll (--eval-conll)."
            )
        if self.eval_limit is not None:
            check_integer("eval_limit", self.eval_limit, 1, note="or None: all")

    @property
    def gate(self):
        """The quality gate (:class:`mlflow_flavor.registry.gate.QualityGate`) from ``min_f1`` and ``max_f1_drop``."""
        return QualityGate(min_f1=self.min_f1, max_f1_drop=self.max_f1_drop)

    @property
    def source_uri(self) -> str:
        """The source tracking URI, explicit or current, without credentials (as tags record it)."""
        return _normalized(self.tracking_uri or _current_uri())

    @property
    def target_uri(self) -> str:
        return _normalized(self.target_tracking_uri) if self.target_tracking_uri else self.source_uri

    @property
    def copies(self) -> bool:
        """Whether the version is copied (another server, name or artifact location) or promoted in place."""
        return bool(
            self.target_uri != self.source_uri
            or (self.target_name and self.target_name != self.name)
            or self.target_artifact_location
        )


def _normalized(uri: str) -> str:
    return (public_uri(uri) or "").rstrip("/")


@dataclass(frozen=True)
class PromotionResult:
    name: str
    version: str
    source_name: str
    source_version: str
    bundle_sha256: str
    files_sha256: str
    created: bool
    alias: str | None
    stage: str | None
    tracking_uri: str | None = field(default=None)
    evaluation_run_id: str | None = field(default=None)

    @property
    def model_uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def _client(uri: str | None):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _failed(step: str, error: BaseException) -> PromotionError:
    """For failures before the alias / stage move (``stage_and_alias`` has its own message and rollback)."""
    message = getattr(error, "message", None) or str(error)
    return PromotionError(
        f"Promotion stopped while {step}: {redact(message)}\n"
        "The target alias and stage were not changed. Fix the cause and run the same promotion again: "
        "it resumes without creating a second version."
    )


def _resolve_source(config: PromotionConfig):
    if not config.tracking_uri:
        check_registry_chosen(f"{config.name} version {config.version}")
    client = _client(config.tracking_uri)
    try:
        if config.version.startswith("@"):
            return client.get_model_version_by_alias(config.name, config.version[1:])
        return client.get_model_version(config.name, config.version)
    except Exception as e:
        if getattr(e, "error_code", None) in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise PromotionError(
                f"Model {config.name!r} version {config.version} was not found in {config.source_uri}: "
                f"{redact(e.message)}. Is it in another registry? {REGISTRY_HINT}."
            ) from None
        raise _failed(f"looking up {config.name!r} version {config.version} in {config.source_uri}", e) from None


def _download_verified(uri: str, model_uri: str, directory: Path, quiet: bool = False) -> VerifiedModel:
    with using_tracking_uri(uri):
        local = download_model(model_uri, directory, quiet=quiet)
    return verify_model_dir(local)


def _copies_of(client, name: str, match: dict[str, str]) -> list:
    """Earlier copies in the target registry: versions whose tags hold every ``match`` value."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name='{name}'")
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            return []
        raise
    return sorted(
        (v for v in versions if all((v.tags or {}).get(k) == value for k, value in match.items())),
        key=lambda v: int(v.version),
    )


def _target_experiment(client, config: PromotionConfig) -> str:
    experiment = client.get_experiment_by_name(config.target_experiment)
    if experiment is None:
        return client.create_experiment(config.target_experiment, artifact_location=config.target_artifact_location)
    wanted = (config.target_artifact_location or "").rstrip("/")
    if (
        wanted
        and experiment.artifact_location.rstrip("/") != wanted
        and not experiment.artifact_location.startswith(wanted + "/")
    ):
        raise ConfigError(
            f"The target experiment {config.target_experiment!r} keeps its artifacts in "
            f"{public_uri(experiment.artifact_location)}, not {public_uri(config.target_artifact_location)}. "
            "Choose another --target-experiment for this location."
        )
    return experiment.experiment_id


def _upload(client, run_id: str, source: VerifiedModel, progress: Progress) -> None:
    """Upload every file of the verified source directory under the run's ``model/`` path."""
    from tqdm.auto import tqdm

    files = sorted(source.files)
    total = sum((source.path / f).stat().st_size for f in files)
    with tqdm(total=total, unit="B", unit_scale=True, desc="upload", disable=None) as bar:
        for name in files:
            parent = Path(name).parent.as_posix()
            artifact_path = MODEL_ARTIFACT_PATH if parent == "." else f"{MODEL_ARTIFACT_PATH}/{parent}"
            client.log_artifact(run_id, str(source.path / name), artifact_path)
            bar.update((source.path / name).stat().st_size)
            progress(f"uploaded {name}")


def _register_copy(client, config: PromotionConfig, source: VerifiedModel, tags: dict[str, str], progress: Progress):
    from mlflow.entities import RunStatus
    from mlflow.exceptions import MlflowException

    name = config.target_name or config.name
    experiment_id = _target_experiment(client, config)
    run = client.create_run(
        experiment_id, tags={**tags, "mlflow.runName": f"promote-{config.name}-v{tags[SOURCE_TAGS['version']]}"}
    )
    try:
        _upload(client, run.info.run_id, source, progress)
    except Exception:
        with contextlib.suppress(Exception):  # the store may be down too: keep the upload's own error
            client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FAILED))
        raise
    client.set_terminated(run.info.run_id)
    try:
        client.create_registered_model(name)
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = client.create_model_version(
        name, f"{run.info.artifact_uri}/{MODEL_ARTIFACT_PATH}", run_id=run.info.run_id, tags=tags
    )
    progress(f"registered {name} version {version.version}")
    return version


def _repair(client, version, source: VerifiedModel, progress: Progress) -> None:
    """Upload the source files again into an earlier copy whose files do not match."""
    log.warning("Version %s of %s does not match its source; uploading its files again", version.version, version.name)
    _upload(client, version.run_id, source, progress)


def _check_same(copy: VerifiedModel, source: VerifiedModel) -> None:
    if copy.files != source.files:
        differ = sorted(n for n in set(copy.files) | set(source.files) if copy.files.get(n) != source.files.get(n))
        raise BundleError("The copy differs from the source in: " + ", ".join(differ[:20]))


def promote(config: PromotionConfig, progress: Progress | None = None) -> PromotionResult:
    """Verify ``config.name`` version ``config.version`` and promote it as configured.

    ``progress`` is called with a short description after each step (the CLI prints them).

    Raises:
        QualityGateError: the version scored below ``min_f1``, or more than ``max_f1_drop`` below the champion.
        SourceVerificationError: the source's files differ from its manifest or from the digests recorded at
            registration (tampered or damaged), or it carries no digests (unless ``allow_untagged``): refused.
        PromotionError: a step failed; the target alias and stage are as they were, re-run to resume.
    """
    say = progress or (lambda message: None)
    source_version = _resolve_source(config)
    work = Path(tempfile.mkdtemp(prefix="flair-mlflow-promote-"))
    try:
        source = _verified_source(config, source_version, work)
        say(f"verified source {config.name} v{source_version.version} ({len(source.files)} files)")
        name = config.target_name or config.name
        client = _client(config.target_tracking_uri or config.tracking_uri)
        version, created = _target_version(config, client, source_version, source, work, say)
        evaluation_run_id = None
        if config.eval_conll:
            evaluation_run_id = _quality_gate(config, client, name, version, source, work, say)
        moved = stage_and_alias(
            name, version, config.to_stage, config.to_alias, config.archive_existing, client=client, pair=config.pair
        )
        if evaluation_run_id:
            client.set_model_version_tag(name, version, EVALUATION_RUN_TAG, evaluation_run_id)
        say(f"promoted {name} v{version}")
        return PromotionResult(
            name=name,
            version=version,
            source_name=config.name,
            source_version=str(source_version.version),
            bundle_sha256=source.bundle_sha256,
            files_sha256=source.tree_sha256,
            created=created,
            alias=moved.alias,
            stage=moved.stage,
            tracking_uri=config.target_uri,
            evaluation_run_id=evaluation_run_id,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _verified_source(config: PromotionConfig, source_version, work: Path) -> VerifiedModel:
    """The source version downloaded into ``work`` and checked against its manifest and registered digests."""
    source_tags = dict(source_version.tags or {})
    source_uri = f"models:/{config.name}/{source_version.version}"
    if not source_tags.get(FILES_DIGEST_TAG) and not config.allow_untagged:
        raise SourceVerificationError(
            f"Refused to promote {config.name} version {source_version.version}: the registry holds no "
            f"{FILES_DIGEST_TAG} for it, so its files cannot be checked against what was registered. Versions "
            "registered through flair-mlflow carry it. Use --allow-untagged to promote it on its own manifest."
        )
    try:
        source = _download_verified(config.tracking_uri, source_uri, work / "source")
        check_registered_digests(source, source_tags, f"{config.name} version {source_version.version}")
    except BundleError as e:
        raise SourceVerificationError(
            f"Refused to promote {config.name} version {source_version.version}: {redact(str(e))}"
        ) from None
    except Exception as e:
        raise _failed(f"downloading {source_uri} from the source", e) from None
    return source


def _target_version(config: PromotionConfig, client, source_version, source: VerifiedModel, work: Path, say):
    """The version the alias / stage move to, and whether this promotion created it: the source version itself,
    or its copy in the target (an earlier one found by its source tags, else a new one), verified byte for byte."""
    if not config.copies:
        return str(source_version.version), False
    name = config.target_name or config.name
    tags = {
        SOURCE_TAGS["tracking_uri"]: config.source_uri,
        SOURCE_TAGS["name"]: config.name,
        SOURCE_TAGS["version"]: str(source_version.version),
        TARGET_LOCATION_TAG: _normalized(config.target_artifact_location or "") or "default",
        BUNDLE_DIGEST_TAG: source.bundle_sha256,
        FILES_DIGEST_TAG: source.tree_sha256,
    }
    # the same source version with the same bundle, copied to the same location
    match = {k: tags[k] for k in (*SOURCE_TAGS.values(), TARGET_LOCATION_TAG, BUNDLE_DIGEST_TAG)}
    try:
        copies = _copies_of(client, name, match)
        if copies:
            say(f"found earlier copy {name} v{copies[0].version}")
        copy = copies[0] if copies else _register_copy(client, config, source, tags, say)
    except FlairMlflowError:
        raise
    except Exception as e:  # S3, HTTP and registry errors alike: wrapped, redacted, alias untouched
        raise _failed(f"copying to {config.target_uri}", e) from None
    try:
        _verify_copy(config.target_tracking_uri or config.tracking_uri, name, copy, source, work, client, say)
    except FlairMlflowError:
        raise
    except Exception as e:
        raise _failed(f"verifying the copy {name} v{copy.version} in the target", e) from None
    return str(copy.version), not copies


def _current_uri() -> str:
    import mlflow

    return mlflow.get_tracking_uri()


def _verify_copy(target_uri, name, copy, source: VerifiedModel, work: Path, client, say: Progress) -> None:
    """Download the copy from the target and compare every file; repair once if it differs."""
    for attempt in (1, 2):
        destination = work / f"target-{attempt}"
        try:
            landed = _download_verified(target_uri, f"models:/{name}/{copy.version}", destination, quiet=True)
            _check_same(landed, source)
        except BundleError as e:
            if attempt == 2:
                raise PromotionError(
                    f"The copy {name} v{copy.version} still differs from the source after uploading it again: "
                    f"{redact(str(e))}. The target alias and stage were not changed."
                ) from None
            say(f"copy {name} v{copy.version} differs from the source ({redact(str(e))}); uploading it again")
            _repair(client, copy, source, say)
            continue
        client.set_model_version_tag(name, copy.version, VERIFIED_TAG, "true")
        say(f"verified copy {name} v{copy.version} in the target ({len(landed.files)} files, byte for byte)")
        return


def _champion(client, name: str, config: PromotionConfig) -> str | None:
    """The version that holds the target alias (else the newest in the target stage), or None."""
    holder = alias_target(client, name, config.to_alias) if config.to_alias else None
    if holder is None and config.to_stage:
        in_stage = versions_in_stage(client, name, config.to_stage)
        holder = in_stage[-1] if in_stage else None
    return holder


def _quality_gate(config: PromotionConfig, client, name: str, version: str, source: VerifiedModel, work: Path, say):
    """Evaluate the verified version (and the champion) in one run of the target; raise when the gate fails."""
    target_uri = config.target_tracking_uri or config.tracking_uri
    try:
        champion = _champion(client, name, config)
        champion_dir = None
        if champion == version:
            say(f"{name} v{version} already holds the target: no champion to compare with")
        elif champion is not None:
            verified = _download_verified(target_uri, f"models:/{name}/{champion}", work / "champion", quiet=True)
            check_registered_digests(verified, client.get_model_version(name, champion).tags, f"{name} v{champion}")
            champion_dir = verified.path
        evaluation = EvaluationConfig(
            data=config.eval_conll,
            limit=config.eval_limit,
            experiment_id=_target_experiment(client, config),
            run_name=f"evaluate-{name}-v{version}",
        )
        with using_tracking_uri(target_uri):
            report = evaluate_model(
                str(source.path),
                evaluation,
                champion=str(champion_dir) if champion_dir else None,
                names=(f"{name} v{version}", f"{name} v{champion}" if champion_dir else None),
            )
    except FlairMlflowError:
        raise
    except Exception as e:
        raise _failed(f"evaluating {name} v{version} on {Path(config.eval_conll).name}", e) from None
    # the scores: mlflow_flavor.registry.evaluate's own line ("Evaluated ner v3 on 38 sentences: F1 micro ...")
    failures = check_quality(report, config.gate)
    if failures:
        raise QualityGateError(
            f"Refused to promote {name} v{version}: it fails the quality gate on {Path(config.eval_conll).name}: "
            + "; ".join(failures)
            + f". The target alias and stage were not changed. The evaluation is in run {report.run_id}.",
            failures=failures,
            run_id=report.run_id,
        )
    if config.gate.active:
        say(f"{name} v{version} passed the quality gate")
    return report.run_id
