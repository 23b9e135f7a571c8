"""Download a logged flair-mlflow model, verify it, and keep a local cache of verified downloads.

``fetch_model("models:/ner/Production")`` resolves the URI, downloads the small ``MLmodel`` file first,
and downloads the rest only when no verified copy of exactly that ``MLmodel`` is in the cache. Every
download is verified (the bundle's manifest, the digest recorded in ``MLmodel`` and, for registered
versions, the digest tag set at registration) before it is moved into the cache in one rename.

S3 transfers go through MLflow's S3 artifact repository, which uses boto3's managed transfers
(``upload_file`` / ``download_file``: multipart above 8 MB, parallel parts); a server that proxies
artifacts (``mlflow server --artifacts-destination s3://...``) streams them over HTTP.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from exporter.config import cache_dir
from exporter.errors import BundleError, ChecksumError, ConfigError, FlairMlflowError
from exporter.format.manifest import MANIFEST_FILE, read_manifest, sha256_bytes, sha256_file, verify_bundle
from mlflow_flavor.mlmodel import BUNDLE_SUBPATH, FILES_RECORD_KEY, FLAVOR_NAME, MLMODEL
from mlflow_flavor.redact import redact

__all__ = [
    "BUNDLE_DIGEST_TAG",
    "FILES_DIGEST_TAG",
    "check_registered_digests",
    "check_registry_chosen",
    "seal_version",
    "VerifiedModel",
    "download_model",
    "fetch_model",
    "locate_reference",
    "not_a_model_error",
    "model_cache_dir",
    "resolve_version",
    "tree_digest",
    "using_tracking_uri",
    "verify_model_dir",
    "verify_reference",
]

log = logging.getLogger(__name__)

# registry tags set when a version is registered (sealed) or promoted: the sha256 of its bundle.json and one
# sha256 over every file of the model directory (MLmodel, code/, requirements, the bundle). They live in the
# registry's database, apart from the artifact store, so files replaced in a bucket cannot match them.
BUNDLE_DIGEST_TAG = "flair_mlflow.bundle_sha256"
FILES_DIGEST_TAG = "flair_mlflow.files_sha256"
# written by MLflow into every download of a models:/name/version URI; not part of the stored model
DOWNLOAD_ONLY_FILES = frozenset({"registered_model_meta"})
# written by MLflow's Model.log after the flavor saved the model (a list of variable names, read by no loader)
MLFLOW_AFTER_SAVE_FILES = frozenset({"environment_variables.txt"})


@dataclass(frozen=True)
class VerifiedModel:
    """A model directory whose bundle passed verification, with the sha256 of every file in it."""

    path: Path
    bundle_sha256: str
    files: dict[str, str]
    manifest: dict[str, Any]

    @property
    def tree_sha256(self) -> str:
        return tree_digest(self.files)


def model_cache_dir() -> Path:
    """``$FLAIR_MLFLOW_CACHE/models`` (default ``~/.cache/flair-mlflow/models``)."""
    return cache_dir() / "models"


def tree_digest(files: dict[str, str]) -> str:
    """One sha256 over the relative paths and sha256 of every file of a model directory."""
    lines = "".join(f"{name}\0{digest}\n" for name, digest in sorted(files.items()))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def _file_digests(directory: Path, bundle: str, manifest: dict[str, Any]) -> dict[str, str]:
    """sha256 of every file; the bundle's come from its manifest, which ``verify_bundle`` just matched."""
    digests = {f"{bundle}/{name}": entry["sha256"] for name, entry in manifest["files"].items()}
    for p in sorted(directory.rglob("*")):
        name = p.relative_to(directory).as_posix()
        if p.is_file() and name not in digests and name not in DOWNLOAD_ONLY_FILES:
            digests[name] = sha256_file(p)
    return dict(sorted(digests.items()))


def outside_bundle_digests(directory: Path, bundle: str) -> dict[str, str]:
    """sha256 of every file of a model directory outside its bundle: ``code/``, requirements, environments, examples.

    Left out: ``MLmodel`` (which holds this record), the files MLflow adds after saving or on download, and
    ``__pycache__`` folders (Python writes them when it imports ``code/`` in place).
    """
    digests = {}
    for p in sorted(Path(directory).rglob("*")):
        relative = p.relative_to(directory)
        name = relative.as_posix()
        if (
            not p.is_file()
            or name == MLMODEL
            or name in DOWNLOAD_ONLY_FILES
            or name in MLFLOW_AFTER_SAVE_FILES
            or relative.parts[0] == bundle
            or "__pycache__" in relative.parts
        ):
            continue
        digests[name] = sha256_file(p)
    return digests


def _check_recorded_files(directory: Path, bundle: str, recorded: Any) -> None:
    """Compare every file outside the bundle with the record ``save_model`` wrote into ``MLmodel``."""

    if not isinstance(recorded, dict):
        raise ChecksumError(f"{directory}/{MLMODEL}: its {FILES_RECORD_KEY} record is damaged.")
    actual = outside_bundle_digests(directory, bundle)
    problems = [f"{name}: missing" for name in sorted(set(recorded) - set(actual))]
    problems += [f"{name}: not recorded when the model was saved" for name in sorted(set(actual) - set(recorded))]
    problems += [
        f"{name}: sha256 {actual[name]}, recorded {recorded[name]}"
        for name in sorted(set(actual) & set(recorded))
        if actual[name] != recorded[name]
    ]
    if problems:
        raise ChecksumError(
            f"The model directory {directory} failed verification; its files outside the bundle (code/ that runs "
            "on load, requirements, environments) differ from what was saved:\n  "
            + "\n  ".join(problems)
            + "\nFetch the model again from its source."
        )


def verify_model_dir(directory: Path) -> VerifiedModel:
    """Verify an MLflow model directory of this flavor: the bundle against its manifest and the digest in
    ``MLmodel``, every other file (``MLmodel`` aside) against the record ``save_model`` wrote into ``MLmodel``.
    Models saved before that record existed get their bundle checked only, with a warning.

    Raises:
        BundleError: not a flair-mlflow model, or (as ChecksumError) a bundle file differs from the manifest or
            the manifest from the digest recorded in ``MLmodel``.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.utils.model_utils import _get_flavor_configuration

    directory = Path(directory)
    if (directory / MANIFEST_FILE).is_file() and not (directory / MLMODEL).is_file():
        raise BundleError(
            f"{directory.absolute()} is a bundle, not an MLflow model (it holds {MANIFEST_FILE}, no {MLMODEL} file): "
            f"flair-mlflow predict, verify and evaluate and exporter.load_bundle take it as it is; "
            f"`flair-mlflow log --model {directory}` logs it as an MLflow model."
        )
    if not (directory / MLMODEL).is_file():
        raise BundleError(
            f"{directory.absolute()} holds no MLmodel file: it is not an MLflow model (or it was only partly copied)."
        )
    try:
        conf = _get_flavor_configuration(str(directory), FLAVOR_NAME)
    except MlflowException as e:
        raise BundleError(f"{directory} is not a flair-mlflow model: {e.message}") from None
    recorded = conf.get("manifest_sha256")
    bundle = Path(conf.get("bundle", BUNDLE_SUBPATH)).as_posix()
    manifest = verify_bundle(directory / bundle, recorded)
    if FILES_RECORD_KEY in conf:
        _check_recorded_files(directory, bundle, conf[FILES_RECORD_KEY])
    else:
        log.warning(
            "%s was saved without a record of its files outside the bundle (by an earlier flair-mlflow): only the "
            "bundle was verified; a registered version is also checked against its registry digest.",
            directory,
        )
    return VerifiedModel(
        path=directory, bundle_sha256=recorded, files=_file_digests(directory, bundle, manifest), manifest=manifest
    )


#: where a copy that differs from its registered digests was changed, by default
CHANGED_IN_STORE = "in the artifact store after registration"


def check_registered_digests(
    verified: VerifiedModel, tags: dict[str, str] | None, what: str, changed_in: str = CHANGED_IN_STORE
) -> None:
    """Compare a verified download with the digests the registry recorded for it (when it recorded them).

    ``changed_in`` says where the files must have been changed (the artifact store, or a local cache).

    Raises:
        ChecksumError: the files differ from what was registered.
    """

    tags = tags or {}
    problems = []
    if tags.get(BUNDLE_DIGEST_TAG) and tags[BUNDLE_DIGEST_TAG] != verified.bundle_sha256:
        problems.append(f"bundle sha256 {verified.bundle_sha256}, registered {tags[BUNDLE_DIGEST_TAG]}")
    if tags.get(FILES_DIGEST_TAG) and tags[FILES_DIGEST_TAG] != verified.tree_sha256:
        problems.append(f"files sha256 {verified.tree_sha256}, registered {tags[FILES_DIGEST_TAG]}")
    if problems:
        raise ChecksumError(
            f"{what} differs from what was registered ({'; '.join(problems)}): its files (MLmodel, code/, "
            f"requirements or the bundle) were changed {changed_in}."
        )


def seal_version(name: str, version: str, client: Any = None) -> VerifiedModel:
    """Download a newly registered version, verify it, and tag it with its bundle and files digests."""
    from mlflow import MlflowClient

    client = client or MlflowClient()
    with tempfile.TemporaryDirectory(prefix="flair-mlflow-seal-") as tmp:
        verified = verify_model_dir(download_model(f"models:/{name}/{version}", Path(tmp) / "model", quiet=True))
    client.set_model_version_tag(name, version, BUNDLE_DIGEST_TAG, verified.bundle_sha256)
    client.set_model_version_tag(name, version, FILES_DIGEST_TAG, verified.tree_sha256)
    log.info(
        "Sealed %s version %s: %d files, files sha256 %s", name, version, len(verified.files), verified.tree_sha256
    )
    return verified


@contextlib.contextmanager
def using_tracking_uri(uri: str | None) -> Iterator[None]:
    """Use ``uri`` as tracking and registry URI inside the block (no change when ``None``).

    Restores exactly what was there: MLflow's module settings and the ``MLFLOW_TRACKING_URI`` /
    ``MLFLOW_REGISTRY_URI`` variables (``set_tracking_uri`` exports them for subprocesses).
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    if not uri:
        yield
        return
    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    saved = (tracking_utils._tracking_uri, registry_utils._registry_uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        tracking_utils._tracking_uri, registry_utils._registry_uri = saved
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def resolve_version(model_uri: str):
    """The registry's ModelVersion behind a ``models:/name/version|stage|@alias`` URI (None for other URIs)."""
    from mlflow import MlflowClient
    from mlflow.store.artifact.utils.models import get_model_name_and_version, is_models_uri

    if not is_models_uri(model_uri) or model_uri.startswith("models:/m-"):
        return None
    client = MlflowClient()
    name, version = get_model_name_and_version(client, model_uri)
    return client.get_model_version(name, version)


#: MLflow's switch for its "Downloading artifacts" progress bar (read each time a download starts)
PROGRESS_BAR_VARIABLE = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


@contextlib.contextmanager
def _progress_bar(shown: bool) -> Iterator[None]:
    """MLflow's download progress bar off inside the block unless ``shown``; the variable is put back after."""
    if shown:
        yield
        return
    saved = os.environ.get(PROGRESS_BAR_VARIABLE)
    os.environ[PROGRESS_BAR_VARIABLE] = "false"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(PROGRESS_BAR_VARIABLE, None)
        else:
            os.environ[PROGRESS_BAR_VARIABLE] = saved


def _on_a_terminal() -> bool:
    import sys

    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def download_model(model_uri: str, destination: Path, *, quiet: bool = False) -> Path:
    """Download every artifact of ``model_uri`` into ``destination`` (a new directory); return it.

    ``quiet``: no progress bar (for internal steps, such as checking what was just uploaded). Otherwise MLflow's
    bar shows only on a terminal: in a log (a served model's, a pipeline's) it is one line per file.
    """
    import mlflow

    destination.mkdir(parents=True, exist_ok=True)
    with _progress_bar(shown=not quiet and _on_a_terminal()):
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(destination)))


def _download_mlmodel(model_uri: str, destination: Path) -> bytes:
    """The ``MLmodel`` file of ``model_uri`` alone (one small file: no progress bar)."""
    import mlflow
    from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository

    uri = ModelsArtifactRepository.get_underlying_uri(model_uri) if model_uri.startswith("models:/") else model_uri
    with _progress_bar(shown=False):
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{uri.rstrip('/')}/{MLMODEL}", dst_path=str(destination)
        )
    return Path(path).read_bytes()


def fetch_model(
    model_uri: str, *, tracking_uri: str | None = None, cache_dir: Path | None = None, use_cache: bool = True
) -> Path:
    """A verified local copy of ``model_uri``: from the cache when it holds this exact model, else downloaded.

    A ``models:/name/stage|@alias`` URI is resolved once to its version number, so that a stage moving
    during the download cannot mix two versions. A local directory is verified in place and returned.

    Raises:
        BundleError: the model is not a flair-mlflow model or failed verification (ChecksumError).
    """
    from mlflow.exceptions import MlflowException

    path = Path(model_uri)
    if path.is_dir() and ((path / MLMODEL).is_file() or (path / MANIFEST_FILE).is_file()):
        return verify_model_dir(path).path  # a bundle is refused there, with what to do with it
    if path.exists() or not is_model_uri(model_uri):
        raise not_a_model_error(model_uri, accepted=MLFLOW_MODEL_REFERENCES)
    with using_tracking_uri(tracking_uri):
        check_registry_chosen(model_uri)
        try:
            return _fetch_uri(model_uri, Path(cache_dir) if cache_dir else model_cache_dir(), use_cache)
        except MlflowException as e:
            elsewhere = f". Is it in another registry? {REGISTRY_HINT}." if e.error_code == NOT_FOUND else ""
            raise FlairMlflowError(
                f"Could not fetch {redact(model_uri)} from {_registry_uri()}: {redact(e.message)}{elsewhere}"
            ) from None


#: MLflow's error code for a registered model, version, alias or run that is not there
NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"
#: how to say which registry to use, in every message about one
REGISTRY_HINT = (
    "Name the registry with --tracking-uri URI (flair-mlflow) or MLFLOW_TRACKING_URI=URI in the environment "
    "(mlflow.set_tracking_uri in Python), e.g. sqlite:////path/to/mlflow.db or http://mlflow-server:5000"
)


def _registry_uri() -> str:
    """The registry ``models:/`` URIs resolve against now, without credentials."""
    import mlflow

    return redact(mlflow.get_registry_uri())


def check_registry_chosen(what: str) -> None:
    """Refuse to look ``what`` (a model URI, a version) up in MLflow's default store when no tracking or registry URI was chosen and
    that store does not exist: the lookup would create an empty ``mlflow.db`` in the current directory.

    Raises:
        ConfigError: naming the store it would have searched and how to choose one.
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils

    if mlflow.is_tracking_uri_set() or registry_utils._registry_uri or os.environ.get("MLFLOW_REGISTRY_URI"):
        return
    uri = mlflow.get_tracking_uri()  # MLflow's default: sqlite:///mlflow.db, made absolute
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or Path(unquote(uri[len(prefix) :])).exists():
        return

    raise ConfigError(
        f"Cannot look up {redact(what)}: no tracking URI is set, and MLflow's default store {uri} does not "
        f"exist (it would have been created empty here). {REGISTRY_HINT}."
    )


def _fetch_uri(model_uri: str, root: Path, use_cache: bool) -> Path:
    """:func:`fetch_model` for a URI: the cached copy of its exact ``MLmodel``, else a verified download."""
    version = resolve_version(model_uri)
    tags = dict(version.tags or {}) if version is not None else {}
    if version is not None:
        model_uri = f"models:/{version.name}/{version.version}"
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
        head = sha256_bytes(_download_mlmodel(model_uri, Path(tmp) / "head"))
        cached = root / head[:32]
        hit = _cached_copy(cached, head, tags, model_uri) if use_cache else None
        if hit is not None:
            return hit
        log.info("Downloading %s", model_uri)
        local = download_model(model_uri, Path(tmp) / "model")
        verified = verify_model_dir(local)
        check_registered_digests(verified, tags, model_uri)
        if verified.files.get(MLMODEL) != head:
            raise ChecksumError(f"{model_uri} changed while it was being downloaded; fetch it again.")
        if not use_cache:
            return Path(shutil.move(str(local), Path(tempfile.mkdtemp(prefix="flair-mlflow-model-")) / "model"))
        return _move_into_cache(local, cached, model_uri)


def _cached_copy(cached: Path, head: str, tags: dict[str, str], model_uri: str) -> Path | None:
    """The cached copy of exactly the ``MLmodel`` whose sha256 is ``head``, verified; None where there is none.

    A cached copy that fails verification (or holds another ``MLmodel``) is removed, to be downloaded again.
    """

    if not cached.is_dir():
        return None
    try:
        verified = verify_model_dir(cached)
        changed_in = f"in the local cache ({cached}) after download"
        check_registered_digests(verified, tags, f"The cached copy of {model_uri}", changed_in=changed_in)
        if verified.files.get(MLMODEL) == head:
            log.info("Using the verified cached copy of %s in %s", model_uri, cached)
            return verified.path
    except BundleError as e:
        log.warning("Cached copy %s failed verification (%s); downloading again", cached, redact(str(e)))
    shutil.rmtree(cached, ignore_errors=True)
    return None


def _move_into_cache(local: Path, cached: Path, model_uri: str) -> Path:
    """Rename a verified download into the cache in one step (another process may have done it first)."""
    try:
        os.rename(local, cached)
    except OSError:
        if not cached.is_dir():  # another process won the race when the entry exists now
            raise
    log.info("Cached %s in %s", model_uri, cached)
    return cached


#: what an MLflow model reference is (what fetch_model takes), for the messages that refuse one
MLFLOW_MODEL_REFERENCES = (
    "a models:/ URI (models:/ner/3, models:/ner@production, models:/ner/Production) or an MLflow model directory"
)
#: what a model reference is (what predict, verify and evaluate take)
MODEL_REFERENCES = (
    "a models:/ URI (models:/ner/3, models:/ner@production, models:/ner/Production), an MLflow model directory, "
    "or a bundle directory written by flair-mlflow export"
)


def is_model_uri(reference: str) -> bool:
    """A URI MLflow downloads from (``models:/``, ``runs:/``, ``s3://``, ...), not a path (nor a drive letter)."""
    return re.match(r"[A-Za-z][A-Za-z0-9+.-]+:/", reference) is not None


def locate_reference(reference: str, *, tracking_uri: str | None = None) -> Path:
    """The local directory of a model reference: a bundle directory as it is (its loader verifies it), an MLflow
    model directory verified in place, a URI fetched (verified, cached).

    Raises:
        ConfigError: the reference is none of these (saying what it is and what to give instead).
        BundleError: verification failed.
    """
    path = Path(reference).expanduser()
    if path.is_dir() and (path / MANIFEST_FILE).is_file():
        return path
    if path.is_dir() and (path / MLMODEL).is_file():
        return fetch_model(str(path))
    if is_model_uri(reference) and not path.exists():
        return fetch_model(reference, tracking_uri=tracking_uri)
    raise not_a_model_error(reference)


def not_a_model_error(reference: str, accepted: str = MODEL_REFERENCES) -> ConfigError:
    """The refusal of a reference that is no model: what it is, and what to give instead (``accepted``)."""

    path = Path(reference).expanduser().absolute()
    if not path.exists():
        what = f"{path} does not exist"
    elif path.is_file():
        what = (
            f"{path} is a file; a Flair .pt file becomes a bundle with `flair-mlflow export {reference} OUT_DIR` "
            f"or an MLflow model with `flair-mlflow log --model {reference}`"
        )
    else:
        inner = [p for p in sorted(path.iterdir()) if (p / MANIFEST_FILE).is_file() or (p / MLMODEL).is_file()]
        hint = f" (did you mean {inner[0]}?)" if inner else ""
        what = f"{path} holds neither {MANIFEST_FILE} (a bundle) nor {MLMODEL} (an MLflow model){hint}"
    return ConfigError(f"{redact(reference)} is not a model reference: {what}. Give {accepted}.")


def verify_reference(reference: str, *, tracking_uri: str | None = None) -> tuple[str, dict[str, Any]]:
    """Verify every checksum of a model reference; return where it was verified and its bundle's manifest.

    A bundle directory against its manifest, an MLflow model directory file by file (:func:`verify_model_dir`), a
    URI downloaded afresh (not from the cache) into a temporary directory and also checked against the digests the
    registry recorded.

    Raises:
        ConfigError: the reference is no model.
        BundleError: verification failed (ChecksumError).
    """

    path = Path(reference).expanduser()
    if (path / MANIFEST_FILE).is_file():
        return str(path), verify_bundle(path)
    if (path / MLMODEL).is_file():
        return str(path), verify_model_dir(path).manifest
    if not is_model_uri(reference) or path.exists():
        raise not_a_model_error(reference)
    fetched = fetch_model(reference, tracking_uri=tracking_uri, use_cache=False)  # a temporary copy of its own
    try:
        return redact(reference), read_manifest(fetched / BUNDLE_SUBPATH)[0]
    finally:
        shutil.rmtree(fetched.parent, ignore_errors=True)
