"""Models exported with Flair's own ``export_onnx`` (the workflow of Flair's production tutorial).

Such a model's embeddings are ``TransformerOnnxWordEmbeddings`` whose ``.pt`` only stores the *path* of the
``.onnx`` file (and the graph may have external-data files beside it, after ``optimize_model`` or
``quantize_model`` with ``use_external_data_format=True``). Loading that ``.pt`` from another directory
crashes. A ``flair-onnx`` bundle holds the graph and every external-data file under ``flair_onnx/`` and
rewrites the path to the bundle's location on load.

Flair 0.15's ``export_onnx`` calls ``torch.onnx.export`` without ``dynamo=False``; on torch 2.9 and newer
that selects the dynamo exporter, which fails on Flair's embeddings. :func:`legacy_onnx_export` makes
Flair's call use the TorchScript-based exporter::

    from exporter.backends.flair_onnx import legacy_onnx_export

    with legacy_onnx_export():
        onnx_embeddings = tagger.embeddings.export_onnx("flair.onnx", sentences, providers=["CPUExecutionProvider"])
    tagger.embeddings = onnx_embeddings
"""

from __future__ import annotations

import contextlib
import functools
import logging
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from exporter.backends.kinds import SURFACE, is_flair_onnx
from exporter.backends.onnx import check_session_providers, provider_name, resolve_providers, session_options
from exporter.backends.onnx_graph import graph_files
from exporter.config import CPU_PROVIDER, ExportConfig, RuntimeOptions
from exporter.errors import BundleError, UnsupportedModelError
from exporter.format.modelfile import MODEL_FILE, PICKLE_NEEDS_OPT_IN, embeddings_key

__all__ = [*SURFACE, "FLAIR_ONNX_DIR", "apply_runtime", "is_flair_onnx", "legacy_onnx_export"]

log = logging.getLogger(__name__)

FLAIR_ONNX_DIR = "flair_onnx"
SECTION = "flair_onnx"
#: Flair builds the embeddings' ONNX Runtime session from attributes stored in the pickle
MODEL_PICKLE_ALWAYS = True
PICKLE_REASON = "Flair's own export_onnx model (its embeddings build their ONNX Runtime session from the pickle)"
DATA_EMBEDDINGS: tuple[str | None, ...] = ()


@contextlib.contextmanager
def legacy_onnx_export() -> Iterator[None]:
    """Within the block, ``torch.onnx.export`` defaults to ``dynamo=False`` (as Flair's export needs)."""
    import torch.onnx

    original = torch.onnx.export
    torch.onnx.export = functools.partial(original, dynamo=False)
    try:
        yield
    finally:
        torch.onnx.export = original


def export(model: Any, directory: Path, config: ExportConfig) -> dict[str, Any]:
    """Copy the model's ONNX graph and external data into ``directory/flair_onnx``; save the ``.pt`` with a
    relative path. The bundle's runtime records the model's own providers unless ``config`` names others."""
    import torch

    if not is_flair_onnx(model):
        raise UnsupportedModelError("backend='flair-onnx' is for models whose embeddings Flair's export_onnx made.")
    embeddings = model.embeddings
    onnx_path = Path(embeddings.onnx_model)
    if not onnx_path.is_file():
        raise UnsupportedModelError(
            f"The model's TransformerOnnxEmbeddings point to {embeddings.onnx_model!r}, which does not exist "
            "(relative paths resolve against the current directory). Run from the directory the model was "
            "exported in, or set model.embeddings.onnx_model to the .onnx file's absolute path."
        )
    files = graph_files(onnx_path)
    target = directory / FLAIR_ONNX_DIR
    for name in files:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        source = onnx_path.parent / name
        if not source.is_file():
            raise UnsupportedModelError(f"{onnx_path} refers to external data {name!r}, which is missing.")
        shutil.copy2(source, target / name)
    state = model._get_state_dict()
    params = state[embeddings_key(state)]
    params["onnx_model"] = f"{FLAIR_ONNX_DIR}/{onnx_path.name}"
    params["__bundle_relative__"] = True
    torch.save(state, directory / MODEL_FILE)
    providers = [provider_name(p) for p in (embeddings.providers or [CPU_PROVIDER])]
    log.info("Bundled Flair's own ONNX model %s with %d file(s)", onnx_path, len(files))
    runtime = config.runtime
    if runtime.providers == RuntimeOptions().providers:  # not chosen by the user: the model's own
        runtime = replace(runtime, providers=tuple(providers))
    return {
        "model_pickle": PICKLE_NEEDS_OPT_IN,
        "runtime": runtime.to_dict(),
        SECTION: {
            "model_file": f"{FLAIR_ONNX_DIR}/{onnx_path.name}",
            "files": [f"{FLAIR_ONNX_DIR}/{f}" for f in files],
            "embeddings_class": type(embeddings).__name__,
            "providers": providers,
            "session_options": dict(embeddings.session_options or {}),
        },
    }


def load(
    directory: Path, manifest: Mapping[str, Any], runtime: RuntimeOptions, state: dict[str, Any], model_cls: type
) -> Any:
    """Load a ``flair-onnx`` bundle (already verified) with the graph path pointing into the bundle.

    ``state`` is the bundle's model.pt, read by ``bundle.load_bundle`` (only with ``allow_pickle``).
    ``runtime`` holds the bundle's runtime settings as loading resolves them (``RuntimeOptions.for_loading``);
    the manifest's runtime section records this model's own providers (see :func:`export`).
    """
    params = state.get(embeddings_key(state))
    if not isinstance(params, dict) or not params.pop("__bundle_relative__", False):
        raise BundleError(f"{directory}/{MODEL_FILE} is not a flair-onnx bundle model.")
    params["onnx_model"] = str(directory / manifest[SECTION]["model_file"])
    params["providers"] = resolve_providers(runtime.providers, runtime.strict_providers)
    state.pop("__cls__", None)
    model = model_cls.load(state)
    # Flair builds its session from plain attributes; rebuild it with the bundle's runtime settings
    # (threads, graph optimization level, spinning), which Flair's own session_options cannot express
    apply_runtime(model.embeddings, runtime)
    return model


def apply_runtime(embeddings: Any, runtime: RuntimeOptions) -> None:
    """Replace the ONNX Runtime session of Flair's ``TransformerOnnx*Embeddings`` by one built from ``runtime``."""
    import onnxruntime as ort

    embeddings.session = ort.InferenceSession(
        str(embeddings.onnx_model), session_options(runtime), providers=list(embeddings.providers)
    )
    check_session_providers(embeddings.session, list(embeddings.providers), runtime.strict_providers)
