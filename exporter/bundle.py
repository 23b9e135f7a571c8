"""Write and read bundles: one directory holding a Flair model and its accelerated encoder.

Layout::

    bundle.json        manifest: schema, backend, files with size and sha256, versions, settings, parity
    model.pt           the Flair model (for ONNX without the transformer weights, which the graph holds)
    encoder.onnx       the encoder graph (ONNX backend), plus any external-data files
    tokenizer/         the transformer tokenizer, as saved by ``save_pretrained`` (ONNX backend)

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
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from exporter.config import Backend, ExportConfig, RuntimeOptions
from exporter.errors import BundleError, ConfigError, UnsafeModelFileError, UnsupportedModelError
from exporter.manifest import file_entries, library_versions, list_files, verify_bundle, write_manifest
from exporter.modelfile import (
    ALLOW_PICKLE_ENV,
    PICKLE_NEEDS_OPT_IN,
    PICKLE_WEIGHTS_ONLY,
    allow_pickle_from_env,
    load_state,
)

__all__ = ["BundleInfo", "load_bundle", "save_bundle", "SUPPORTED_MODELS"]

log = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
TOKENIZER_DIR = "tokenizer"
#: Flair model classes a bundle can hold, with the task name the flavor reports.
SUPPORTED_MODELS = {"SequenceTagger": "sequence-tagging", "TextClassifier": "text-classification"}
#: the embeddings a ``torch`` bundle may rebuild from its model.pt without ``allow_pickle``
SAFE_TORCH_EMBEDDINGS = ("TransformerWordEmbeddings", "TransformerDocumentEmbeddings")
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


def _write_torch(model: Any, directory: Path) -> dict[str, Any]:
    """Flair's own state, as ``model.save`` writes it but in pickle protocol 2 and without the model card.

    The model card (training parameters, which may name optimizer and scheduler classes) is metadata that
    prediction never reads; leaving it out keeps model.pt plain data that loads without ``allow_pickle``.
    """
    import torch

    from exporter.flair_onnx import is_flair_jit

    torch.save(model._get_state_dict(), directory / MODEL_FILE)
    if is_flair_jit(model):  # a TorchScript program inside the pickle
        return {"model_pickle": PICKLE_NEEDS_OPT_IN}
    return {"model_pickle": PICKLE_WEIGHTS_ONLY}


def _embeddings_key(state: Mapping[str, Any]) -> str:
    """Where a Flair model's state keeps its embeddings: taggers say ``embeddings``, classifiers ``document_embeddings``."""
    return "document_embeddings" if "document_embeddings" in state else "embeddings"


def _write_accelerated(model: Any, directory: Path, config: ExportConfig) -> dict[str, Any]:
    """Export the encoder with the configured backend; write the tokenizer and the slimmed Flair model."""
    import torch

    from exporter.embeddings import AcceleratedTransformerDocumentEmbeddings, AcceleratedTransformerWordEmbeddings
    from exporter.settings import EmbeddingSettings, find_transformer_embeddings

    embeddings = find_transformer_embeddings(model)
    if isinstance(embeddings, (AcceleratedTransformerWordEmbeddings, AcceleratedTransformerDocumentEmbeddings)):
        raise UnsupportedModelError(
            "This model was loaded from a flair-mlflow bundle and is already accelerated; "
            "log the bundle directory itself instead of exporting it again."
        )
    settings = EmbeddingSettings.from_embeddings(embeddings)
    encoder_dir = directory / "encoder"
    encoder_dir.mkdir()
    if config.backend is Backend.ONNX:
        from exporter.backends import onnx as onnx_backend

        exported = onnx_backend.export_encoder(embeddings, settings, encoder_dir, config)
        backend_info = {
            "onnx": {
                "model_file": onnx_backend.ENCODER_FILE,
                "files": exported["files"],
                "opset": config.onnx.opset,
                "inputs": list(onnx_backend.INPUT_NAMES),
                "outputs": onnx_backend.output_names(settings),
                "providers": list(config.runtime.providers),
                "session_options": config.runtime.session_options_dict(),
                "precision": exported["precision"],
                "optimization": exported["optimization"],
                "quantization": exported["quantization"],
            }
        }
    else:
        from exporter.backends import torchscript

        exported = torchscript.export_encoder(embeddings, settings, encoder_dir, config)
        if config.torchscript.force_max_length:
            settings = replace(settings, force_max_length=True)
        backend_info = {"torchscript": {"model_file": torchscript.ENCODER_FILE, **exported}}
    for name in exported["files"]:
        os.replace(encoder_dir / name, directory / name)
    encoder_dir.rmdir()
    embeddings.tokenizer.save_pretrained(str(directory / TOKENIZER_DIR))

    state = model._get_state_dict()
    state[_embeddings_key(state)] = None
    state["state_dict"] = OrderedDict((k, v) for k, v in state["state_dict"].items() if not k.startswith("embeddings."))
    torch.save(state, directory / MODEL_FILE)  # protocol 2: what torch.load(weights_only=True) reads
    return {"embeddings": settings.to_dict(), "model_pickle": PICKLE_WEIGHTS_ONLY, **backend_info}


def _load_encoder(path: Path, manifest: Mapping[str, Any], backend: Backend, runtime: RuntimeOptions):
    if backend is Backend.ONNX:
        from exporter.backends.onnx import OrtEncoder

        return OrtEncoder(path / manifest["onnx"]["model_file"], runtime)
    from exporter.backends.torchscript import TorchScriptEncoder

    return TorchScriptEncoder(path / manifest["torchscript"]["model_file"])


def _recorded_runtime(config: ExportConfig, content: Mapping[str, Any]) -> RuntimeOptions:
    """The session settings a bundle loads with: the user's, or for Flair's own ONNX model its providers."""
    flair_onnx = content.get("flair_onnx")
    if flair_onnx and config.runtime.providers == RuntimeOptions().providers:
        return replace(config.runtime, providers=tuple(flair_onnx["providers"]))
    return config.runtime


def _parity_sentences(config: ExportConfig) -> tuple[list, list | None]:
    """Check sentences: the labeled set, the user's sentences, or generated ones (long ones included)."""
    from exporter.corpus import generate_sentences, read_conll
    from exporter.parity import gold_spans

    if config.parity.gold_conll:
        labeled = list(read_conll(config.parity.gold_conll, limit=config.parity.gold_limit))
        return [[w for w, _ in s] for s in labeled], [gold_spans([t for _, t in s]) for s in labeled]
    if config.parity_sentences:
        return list(config.parity_sentences), None
    return generate_sentences(config.parity.num_sentences, seed=7), None


def save_bundle(model: Any, path: str | Path, config: ExportConfig | None = None) -> BundleInfo:
    """Export ``model`` into a new bundle directory at ``path``.

    Args:
        model: a Flair ``SequenceTagger`` (on transformer embeddings for the ONNX backend).
        path: the bundle directory; must not exist, or be empty.
        config: how to export; defaults to ONNX fp32 with the parity gate.

    Returns:
        The bundle's path, the manifest and its sha256.
    """
    from exporter.flair_onnx import is_flair_jit, is_flair_onnx
    from exporter.parity import check_parity

    config = config or ExportConfig()
    if not isinstance(config, ExportConfig):
        raise ConfigError(f"config must be an ExportConfig, got {type(config).__name__}.")
    if is_flair_onnx(model) and config.backend is not Backend.FLAIR_ONNX:
        log.info("The model's embeddings were exported with Flair's export_onnx: bundling that graph as it is")
        config = replace(config, backend=Backend.FLAIR_ONNX)
    elif is_flair_jit(model) and config.backend is not Backend.TORCH:
        log.info(
            "The model's embeddings are Flair's TorchScript embeddings (self-contained): bundling the .pt as it is"
        )
        config = replace(config, backend=Backend.TORCH)
    path = Path(path).absolute()
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise BundleError(f"{path} already exists and is not an empty directory; choose a new path.")
    model_class = _model_class(model)
    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-", dir=path.parent))
    os.chmod(work, umask_mode())  # mkdtemp makes it private (0700): give it what any new folder gets
    started = time.perf_counter()
    try:
        log.info("Exporting %s to a %s bundle at %s", model_class, config.backend.value, path)
        if config.backend is Backend.TORCH:
            content = _write_torch(model, work)
        elif config.backend is Backend.FLAIR_ONNX:
            from exporter.flair_onnx import write_flair_onnx

            if not is_flair_onnx(model):
                raise UnsupportedModelError(
                    "backend='flair-onnx' is for models whose embeddings Flair's export_onnx made."
                )
            content = write_flair_onnx(model, work)
        else:
            content = _write_accelerated(model, work, config)
        content.update(
            {
                "backend": config.backend.value,
                "model_class": model_class,
                "task": SUPPORTED_MODELS[model_class],
                "tag_type": getattr(model, "label_type", None),
                "labels": _labels(model),
                "runtime": _recorded_runtime(config, content).to_dict(),
                "export_config": config.to_dict(),
                "versions": library_versions(),
                "parity": None,
            }
        )
        entries = file_entries(work, list_files(work))
        digest = write_manifest(work, content, entries)
        if config.parity.enabled:
            # the bundle written just now; Flair's own ONNX / JIT models need their pickle (see exporter.modelfile)
            trusted = content.get("model_pickle") == PICKLE_NEEDS_OPT_IN
            exported = load_bundle(work, expected_manifest_sha256=digest, allow_pickle=trusted)
            texts, gold = _parity_sentences(config)
            content["parity"] = check_parity(model, exported, texts, config.parity, lossy=config.lossy, gold=gold)
            del exported
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
    backend = Backend.parse(manifest["backend"])
    model_cls = _resolve_model_class(manifest["model_class"])
    options = RuntimeOptions.for_loading(manifest["runtime"], runtime)
    state = _read_state(path, manifest, backend, allow_pickle)
    if backend is Backend.TORCH:
        model = model_cls.load(state)
        if options.length_buckets:
            from exporter.backends.torch_buckets import add_length_buckets

            add_length_buckets(model)
    elif backend is Backend.FLAIR_ONNX:
        from exporter.flair_onnx import load_flair_onnx

        model = load_flair_onnx(path, manifest, model_cls, options, state)
    else:
        from transformers import AutoTokenizer

        from exporter.embeddings import build_accelerated_embeddings
        from exporter.settings import EmbeddingSettings

        settings = EmbeddingSettings.from_dict(manifest["embeddings"])
        if options.encoder_workers > 1 and backend is Backend.ONNX and options.intra_op_num_threads != 1:
            log.warning(
                "encoder_workers=%d runs that many encoder calls at once, each on intra_op_num_threads=%d "
                "threads (0: one per core): set intra_op_num_threads=1 so that they do not fight for the cores.",
                options.encoder_workers,
                options.intra_op_num_threads,
            )
        encoder = _load_encoder(path, manifest, backend, options)
        tokenizer = AutoTokenizer.from_pretrained(str(path / TOKENIZER_DIR))
        embeddings = build_accelerated_embeddings(
            settings, tokenizer, encoder, options.length_buckets, options.encoder_workers
        )
        state.pop("__cls__", None)
        state[_embeddings_key(state)] = embeddings
        model = model_cls._init_model_with_state_dict(state)
        if getattr(model, "use_crf", False) and hasattr(model, "viterbi_decoder"):
            from exporter.fastpath import FastViterbiDecoder

            model.viterbi_decoder = FastViterbiDecoder.replacing(model.viterbi_decoder)
    model.eval()
    model.flair_mlflow_manifest = manifest
    return model


def _read_state(path: Path, manifest: Mapping[str, Any], backend: Backend, allow_pickle: bool) -> dict[str, Any]:
    """``model.pt`` as data, refused (naming the opt-in) where it needs code; checked against the manifest."""
    schema = manifest.get("schema_version")
    if not allow_pickle and (backend is Backend.FLAIR_ONNX or manifest.get("model_pickle") == PICKLE_NEEDS_OPT_IN):
        what = (
            "Flair's own export_onnx model (its embeddings build their ONNX Runtime session from the pickle)"
            if backend is Backend.FLAIR_ONNX
            else "Flair TorchScript (JIT) model (a TorchScript program inside the pickle)"
        )
        raise UnsafeModelFileError(
            f"{path} holds a {what}: loading its model.pt needs full unpickling, which runs code the file names. "
            f"Refused by default. {OPT_IN_HINT}"
        )
    hint = OPT_IN_HINT
    if schema != 3:
        hint = (
            f"This bundle has schema version {schema}, written before flair-mlflow stored model.pt as plain data: "
            f"export the model again, or: {OPT_IN_HINT}"
        )
    state = load_state(path / MODEL_FILE, allow_pickle=allow_pickle, opt_in_hint=hint)
    recorded = state.get("__cls__", manifest["model_class"])
    if recorded != manifest["model_class"]:
        raise BundleError(f"{path}/{MODEL_FILE} holds a {recorded!r}, the manifest says {manifest['model_class']!r}.")
    if not allow_pickle:
        key = _embeddings_key(state)
        embeddings = state.get(key)
        name = embeddings.get("__cls__") if isinstance(embeddings, Mapping) else embeddings
        allowed = SAFE_TORCH_EMBEDDINGS if backend is Backend.TORCH else (None,)
        if name not in allowed:
            raise UnsafeModelFileError(
                f"{path}/{MODEL_FILE} names embeddings {name!r}; a {backend.value} bundle loaded without "
                f"allow_pickle may hold only {' or '.join(map(str, allowed))}. {hint}"
            )
    return state
