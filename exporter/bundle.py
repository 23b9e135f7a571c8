"""Write and read bundles: one directory holding a Flair model and its accelerated encoder.

Layout::

    bundle.json        manifest: schema, backend, files with size and sha256, versions, settings, parity
    model.pt           the Flair model (for ONNX without the transformer weights, which the graph holds)
    encoder.onnx       the encoder graph (ONNX backend), plus any external-data files
    tokenizer/         the transformer tokenizer, as saved by ``save_pretrained`` (encoder backends)

What each backend writes and how it loads is its module's business (``exporter.backends``): this module
dispatches through the backend table and holds no per-backend branches.

A bundle is written into a temporary sibling directory and renamed into place only when it is complete
and has passed the parity gate: a failed export leaves nothing behind. Loading verifies every checksum
before ``model.pt`` is read, reads it as data (``torch.load(weights_only=True)`` with an allowlist, see
``exporter.modelfile``) unless the caller passes ``allow_pickle=True``, and resolves every path relative to
the bundle directory. The directory gets the permissions the user's umask gives any new folder.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from exporter.backends import backend_module, choose_backend
from exporter.config import Backend, ExportConfig, RuntimeOptions
from exporter.errors import BundleError, ConfigError, UnsafeModelFileError, UnsupportedModelError
from exporter.manifest import file_entries, library_versions, list_files, verify_bundle, write_manifest
from exporter.modelfile import (
    ALLOW_PICKLE_ENV,
    MODEL_FILE,
    PICKLE_NEEDS_OPT_IN,
    SUPPORTED_MODELS,
    allow_pickle_from_env,
    embeddings_key,
    load_state,
    quiet_model_init,
)

__all__ = ["BundleInfo", "load_bundle", "save_bundle", "SUPPORTED_MODELS"]

log = logging.getLogger(__name__)

OPT_IN_HINT = (
    "If you trust where this bundle came from, load it with allow_pickle=True (exporter.load_bundle, "
    f"mlflow_flavor.load_model) or set {ALLOW_PICKLE_ENV}=1 in the environment of the loading process "
    "(mlflow.pyfunc.load_model, mlflow models serve, the flair-mlflow command line)."
)


@dataclass(frozen=True)
class BundleInfo:
    """What :func:`save_bundle` wrote."""

    path: Path
    manifest_sha256: str
    manifest: dict[str, Any]


def _model_class(model: Any) -> str:
    """The model's class name when flair-mlflow supports it exactly (subclasses change predict, so no)."""
    name = type(model).__name__
    if name not in SUPPORTED_MODELS or type(model).__module__.split(".")[0] != "flair":
        embeddings = getattr(model, "embeddings", None) or getattr(model, "document_embeddings", None)
        what = type(embeddings).__name__ if embeddings is not None else "no embeddings"
        raise UnsupportedModelError(
            f"Cannot export a {type(model).__module__}.{name} (embeddings: {what}): flair-mlflow supports "
            f"{' and '.join(SUPPORTED_MODELS)} from Flair itself, whose predict it reproduces. Other models "
            "(and subclasses, which may predict differently) are refused rather than exported into something "
            "that could tag or classify wrongly."
        )
    return name


def umask_mode() -> int:
    """The permissions the process's umask gives a new folder (``0o755`` under the usual ``022``)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o777 & ~mask


def _resolve_model_class(name: str) -> type:
    import flair.models

    if name not in SUPPORTED_MODELS:
        raise BundleError(f"The bundle holds a {name!r}, which this flair-mlflow cannot load.")
    return getattr(flair.models, name)


def _labels(model: Any) -> list[str]:
    dictionary = getattr(model, "label_dictionary", None)
    return list(dictionary.get_items()) if dictionary is not None else []


def _parity_sentences(config: ExportConfig) -> tuple[list, list | None]:
    """Check sentences: the labeled set, the user's sentences, or ``num_sentences`` texts of the shipped check
    set (``exporter.corpus.check_sentences``: natural text, every 16th a paragraph beyond 512 subtokens)."""
    from exporter.corpus import check_sentences, read_conll
    from exporter.parity import gold_spans

    if config.parity.gold_conll:
        labeled = list(read_conll(config.parity.gold_conll, limit=config.parity.gold_limit))
        return [[w for w, _ in s] for s in labeled], [gold_spans([t for _, t in s]) for s in labeled]
    if config.parity_sentences:
        return list(config.parity_sentences), None
    return check_sentences(config.parity.num_sentences), None


def _checked_config(model: Any, config: ExportConfig | None) -> ExportConfig:
    """The export settings, with the backend the model needs (see ``exporter.backends.choose_backend``)."""
    config = config or ExportConfig()
    if not isinstance(config, ExportConfig):
        raise ConfigError(f"config must be an ExportConfig, got {type(config).__name__}.")
    return replace(config, backend=choose_backend(model, config.backend))


def _work_dir(path: Path) -> Path:
    """A new, empty sibling of ``path`` to write the bundle into before it is renamed into place."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise BundleError(f"{path} already exists and is not an empty directory; choose a new path.")
    path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-", dir=path.parent))
    os.chmod(work, umask_mode())  # mkdtemp makes it private (0700): give it what any new folder gets
    return work


def _write_contents(model: Any, model_class: str, work: Path, config: ExportConfig) -> dict[str, Any]:
    """The backend's files and manifest additions, and what every manifest records."""
    content = backend_module(config.backend).export(model, work, config)
    content.setdefault("runtime", config.runtime.to_dict())
    content.update(
        {
            "backend": config.backend.value,
            "model_class": model_class,
            "task": SUPPORTED_MODELS[model_class],
            "tag_type": getattr(model, "label_type", None),
            "labels": _labels(model),
            "export_config": config.to_dict(),
            "versions": library_versions(),
            "parity": None,
        }
    )
    return content


def _gate(model: Any, work: Path, content: dict[str, Any], digest: str, config: ExportConfig) -> dict[str, Any]:
    """Load the bundle just written and compare it with ``model`` (raises ParityError when it fails)."""
    from exporter.backends import flavor_metadata
    from exporter.parity import check_parity

    # Flair's own ONNX / JIT models need their pickle (see exporter.modelfile): this process wrote it
    trusted = content.get("model_pickle") == PICKLE_NEEDS_OPT_IN
    exported = load_bundle(work, expected_manifest_sha256=digest, allow_pickle=trusted)
    texts, gold = _parity_sentences(config)
    recipe = (flavor_metadata(content)["quantization"] or {}).get("recipe")  # int8 exports only
    return check_parity(model, exported, texts, config.parity, lossy=config.lossy, gold=gold, recipe=recipe)


def save_bundle(model: Any, path: str | Path, config: ExportConfig | None = None) -> BundleInfo:
    """Export ``model`` into a new bundle directory at ``path``.

    Args:
        model: a Flair ``SequenceTagger`` or ``TextClassifier`` (on transformer embeddings for the encoder backends).
        path: the bundle directory; must not exist, or be empty.
        config: how to export; defaults to ONNX fp32 with the parity gate.

    Returns:
        The bundle's path, the manifest and its sha256.
    """
    config = _checked_config(model, config)
    path = Path(path).absolute()
    model_class = _model_class(model)
    model.eval()
    work = _work_dir(path)
    started = time.perf_counter()
    try:
        log.info("Exporting %s as a %s bundle to %s", model_class, config.backend.value, path)
        content = _write_contents(model, model_class, work, config)
        entries = file_entries(work, list_files(work))
        digest = write_manifest(work, content, entries)
        if config.parity.enabled:
            content["parity"] = _gate(model, work, content, digest, config)
            digest = write_manifest(work, content, entries)
        if path.exists():
            path.rmdir()
        os.replace(work, path)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    manifest = verify_bundle(path, digest)
    log.info(
        "Bundle written to %s in %.1f s (%d files, %.1f MB)",
        path,
        time.perf_counter() - started,
        len(entries),
        sum(e["size"] for e in entries.values()) / 1e6,
    )
    return BundleInfo(path=path, manifest_sha256=digest, manifest=manifest)


def load_bundle(
    path: str | Path,
    runtime: RuntimeOptions | Mapping[str, Any] | None = None,
    expected_manifest_sha256: str | None = None,
    *,
    allow_pickle: bool | None = None,
) -> Any:
    """Verify and load a bundle; return the Flair model, accelerated as the bundle says.

    Args:
        path: the bundle directory (any working directory, any absolute or relative path).
        runtime: session overrides (providers, thread counts, strict providers) for the ONNX backend.
        expected_manifest_sha256: the manifest digest recorded elsewhere (the MLmodel file); checked when given.
        allow_pickle: unpickle ``model.pt`` fully, running whatever code it names. Needed only for bundles of
            schema 1 and 2 and for ``flair-onnx`` / Flair JIT bundles; pass it only for bundles you trust.
            ``None`` (default): ``True`` only where the process's environment sets ``FLAIR_MLFLOW_ALLOW_PICKLE=1``.

    Raises:
        UnsafeModelFileError: ``model.pt`` is more than plain data and ``allow_pickle`` was not given.
    """
    path = Path(path).absolute()
    if allow_pickle is None:
        allow_pickle = allow_pickle_from_env()
    manifest = verify_bundle(path, expected_manifest_sha256)
    module = backend_module(Backend.parse(manifest["backend"]))
    model_cls = _resolve_model_class(manifest["model_class"])
    options = RuntimeOptions.for_loading(manifest["runtime"], runtime)
    state = _read_state(path, manifest, module, allow_pickle)
    with quiet_model_init():
        model = module.load(path, manifest, options, state, model_cls)
    model.eval()
    model.flair_mlflow_manifest = manifest
    return model


def _opt_in_hint(manifest: Mapping[str, Any]) -> str:
    schema = manifest.get("schema_version")
    if schema == 3:
        return OPT_IN_HINT
    return (
        f"This bundle has schema version {schema}, written before flair-mlflow stored model.pt as plain data: "
        f"export the model again, or: {OPT_IN_HINT}"
    )


def _read_state(path: Path, manifest: Mapping[str, Any], module: ModuleType, allow_pickle: bool) -> dict[str, Any]:
    """``model.pt`` as data, refused (naming the opt-in) where it needs code; checked against the manifest."""
    if not allow_pickle and (module.MODEL_PICKLE_ALWAYS or manifest.get("model_pickle") == PICKLE_NEEDS_OPT_IN):
        raise UnsafeModelFileError(
            f"{path} holds a {module.PICKLE_REASON or 'model whose model.pt needs code'}: loading its model.pt "
            f"needs full unpickling, which runs code the file names. Refused by default. {OPT_IN_HINT}"
        )
    hint = _opt_in_hint(manifest)
    state = load_state(path / MODEL_FILE, allow_pickle=allow_pickle, opt_in_hint=hint)
    recorded = state.get("__cls__", manifest["model_class"])
    if recorded != manifest["model_class"]:
        raise BundleError(f"{path}/{MODEL_FILE} holds a {recorded!r}, the manifest says {manifest['model_class']!r}.")
    if not allow_pickle:
        embeddings = state.get(embeddings_key(state))
        name = embeddings.get("__cls__") if isinstance(embeddings, Mapping) else embeddings
        if name not in module.DATA_EMBEDDINGS:
            raise UnsafeModelFileError(
                f"{path}/{MODEL_FILE} names embeddings {name!r}; a {manifest['backend']} bundle loaded without "
                f"allow_pickle may hold only {' or '.join(map(str, module.DATA_EMBEDDINGS))}. {hint}"
            )
    return state
