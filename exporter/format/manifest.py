"""The bundle manifest (``bundle.json``): what a bundle holds and how to check it.

The manifest lists every file of the bundle with its size and sha256. :func:`verify_bundle` checks all of
them, and the manifest's own digest where the caller knows it, before anything in the bundle is
read: a Flair ``.pt`` is a pickle (read as data, see ``exporter.format.modelfile``).
"""

from __future__ import annotations

import json
import logging
import platform
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from exporter.digests import sha256_bytes, sha256_file
from exporter.errors import BundleError, ChecksumError
from exporter.format.modelfile import MODEL_FILE

__all__ = [
    "MANIFEST_FILE",
    "SCHEMA_VERSION",
    "file_entries",
    "file_entry",
    "list_files",
    "library_versions",
    "read_manifest",
    "sha256_file",
    "verify_bundle",
    "write_manifest",
]

log = logging.getLogger(__name__)

MANIFEST_FILE = "bundle.json"
#: 2 added the runtime's ``allow_spinning``, ``length_buckets`` and ``encoder_workers``; version 1
#: manifests load with their defaults. 3: ``model.pt`` is plain data (pickle protocol 2, read with
#: ``torch.load(weights_only=True)``), and ``model_pickle`` says whether loading it needs ``allow_pickle``
#: (``flair-onnx`` and Flair JIT models); bundles of versions 1 and 2 load only with ``allow_pickle=True``
#: (their protocol-4 pickles are beyond the safe reader), see ``exporter.format.modelfile``.
SCHEMA_VERSION = 3
READABLE_SCHEMA_VERSIONS = (1, 2, 3)
FORMAT_NAME = "flair-mlflow-bundle"
_VERSIONED_PACKAGES = (
    "flair",
    "torch",
    "transformers",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "mlflow",
    "flair-mlflow",
)


def file_entry(directory: Path, name: str) -> dict[str, Any]:
    path = directory / name
    return {"size": path.stat().st_size, "sha256": sha256_file(path)}


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in _VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def list_files(directory: Path) -> list[str]:
    """Every file under ``directory`` as a POSIX path relative to it, the manifest excluded."""
    return sorted(
        p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST_FILE
    )


def file_entries(directory: Path, files: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Size and sha256 of each of ``files`` (relative to ``directory``)."""
    return {name: file_entry(directory, name) for name in sorted(files)}


def write_manifest(directory: Path, content: Mapping[str, Any], entries: Mapping[str, Mapping[str, Any]]) -> str:
    """Write ``bundle.json`` from ``content`` and the file ``entries``; return the manifest's own sha256."""
    manifest = {
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **content,
        "files": dict(sorted(entries.items())),
    }
    data = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")
    (directory / MANIFEST_FILE).write_bytes(data)
    return sha256_bytes(data)


def _not_a_bundle(directory: Path) -> str:
    """Why ``directory`` is no bundle, and what to do instead."""
    if not directory.exists():
        return f"{directory.absolute()} does not exist: give the directory a flair-mlflow export wrote."
    if (directory / "MLmodel").is_file():
        inner = next((d for d in sorted(directory.iterdir()) if (d / MANIFEST_FILE).is_file()), None)
        where = f"its bundle is {inner}" if inner else "it holds no bundle"
        return (
            f"{directory} is an MLflow model directory, not a bundle ({where}). Load it with "
            f"mlflow_flavor.load_model({str(directory)!r}) or `flair-mlflow predict {directory}`."
        )
    return (
        f"No {MANIFEST_FILE} in {directory}: this is not a flair-mlflow bundle (or it was only partly copied). "
        "A bundle is the directory `flair-mlflow export` (or exporter.save_bundle) writes."
    )


def read_manifest(directory: Path) -> tuple[dict[str, Any], str]:
    """Read ``bundle.json``; return it and its sha256. Refuses unknown formats and schema versions."""
    path = Path(directory) / MANIFEST_FILE
    if not path.is_file():
        raise BundleError(_not_a_bundle(Path(directory)))
    data = path.read_bytes()
    try:
        manifest = json.loads(data)
    except json.JSONDecodeError as e:
        raise BundleError(f"{path} is not valid JSON ({e}); the bundle is damaged. Export it again.") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise BundleError(f"{path} is not a flair-mlflow manifest (format {manifest.get('format')!r}).")
    version = manifest.get("schema_version")
    if version not in READABLE_SCHEMA_VERSIONS:
        raise BundleError(
            f"{path} has schema version {version!r}; this flair-mlflow reads versions "
            f"{', '.join(map(str, READABLE_SCHEMA_VERSIONS))}. "
            "Upgrade flair-mlflow, or export the model again with this version."
        )
    return manifest, sha256_bytes(data)


def verify_bundle(directory: Path, expected_manifest_sha256: str | None = None) -> dict[str, Any]:
    """Check the manifest digest (when known) and every file's size and sha256. Returns the manifest.

    Raises:
        ChecksumError: listing every file that is missing or differs.
    """
    directory = Path(directory)
    manifest, digest = read_manifest(directory)
    problems = []
    if expected_manifest_sha256 and digest != expected_manifest_sha256:
        problems.append(f"{MANIFEST_FILE}: sha256 {digest}, expected {expected_manifest_sha256}")
    files = manifest.get("files")
    if not isinstance(files, dict) or MODEL_FILE not in files:
        problems.append(f"{MANIFEST_FILE}: lists no {MODEL_FILE}")
        files = files if isinstance(files, dict) else {}
    for section, details in manifest.items():  # the backend's section names its model file
        model_file = details.get("model_file") if isinstance(details, dict) else None
        if model_file and model_file not in files:
            problems.append(f"{MANIFEST_FILE}: does not list its {section} model file {model_file}")
    for name in sorted(set(list_files(directory)) - set(files)):
        problems.append(f"{name}: not listed in the manifest")
    for name, entry in sorted(files.items()):
        path = directory / name
        if ".." in Path(name).parts or Path(name).is_absolute():
            problems.append(f"{name}: path escapes the bundle")
            continue
        if not path.is_file():
            problems.append(f"{name}: missing")
            continue
        size = path.stat().st_size
        if size != entry.get("size"):
            problems.append(f"{name}: {size} bytes, expected {entry.get('size')}")
            continue
        actual = sha256_file(path)
        if actual != entry.get("sha256"):
            problems.append(f"{name}: sha256 {actual}, expected {entry.get('sha256')}")
    if problems:
        raise ChecksumError(
            f"The bundle in {directory} failed verification; nothing was loaded from it:\n  "
            + "\n  ".join(problems)
            + "\nThe files were changed or damaged after export. Fetch the model again from its source."
        )
    log.debug("Verified %d file(s) in %s", len(files), directory)
    return manifest
