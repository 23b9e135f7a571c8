"""Backends: one module each, the same surface, found through one table keyed by :class:`Backend`.

Every backend module (``torch``, ``onnx``, ``torchscript``, ``flair_onnx``) defines:

- ``export(model, directory, config) -> dict``: write the backend's files (``model.pt`` included) into
  ``directory`` and return what it adds to the manifest: ``model_pickle``, its own section (``SECTION``),
  and for the encoder backends ``embeddings``; a ``runtime`` entry where the backend records its own session
  settings.
- ``load(directory, manifest, runtime, state, model_cls) -> model``: the Flair model, accelerated, from a
  verified bundle whose ``model.pt`` has been read into ``state`` (see ``exporter.bundle.save``).
- ``SECTION``: the manifest key of its details (``None``: none), ``MODEL_PICKLE_ALWAYS``: whether its
  ``model.pt`` always needs full unpickling (and ``PICKLE_REASON``, said when that is refused), and
  ``DATA_EMBEDDINGS``: the embeddings a ``model.pt`` read as plain data may name.

Adding a backend means one module and one entry in :data:`MODULES`; adding an int8 recipe, one function in
``onnx_quantize`` and one entry in its table. Helpers by role: ``tracing`` (the wrapper and inputs the
encoder backends trace with), ``encoder_bundle`` (what the encoder backends share: the slimmed Flair model,
the tokenizer, rebuilding the model around an encoder), ``onnx_graph`` (offline graph rewrites),
``onnx_quantize`` (quantization recipes).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from exporter.backends.kinds import (
    ENCODER_BACKENDS,
    SURFACE,
    has_char_lms,
    has_one_transformer,
    is_flair_jit,
    is_flair_onnx,
)
from exporter.config import Backend
from exporter.format.modelfile import model_embeddings
from exporter.format.tasks import is_multitask

__all__ = ["MODULES", "SURFACE", "backend_module", "choose_backend", "flavor_metadata", "flair_code_reason"]

log = logging.getLogger(__name__)

#: the module of each backend
MODULES: Mapping[Backend, str] = {
    Backend.TORCH: "exporter.backends.torch",
    Backend.ONNX: "exporter.backends.onnx",
    Backend.TORCHSCRIPT: "exporter.backends.torchscript",
    Backend.FLAIR_ONNX: "exporter.backends.flair_onnx",
}


def backend_module(backend: Backend | str) -> ModuleType:
    """The module that exports and loads ``backend`` (imported on first use: each pulls in heavy packages)."""
    return importlib.import_module(MODULES[Backend.parse(backend)])  # lazy: each imports torch at its top


def choose_backend(model: Any, requested: Backend) -> Backend:
    """The backend a model is bundled with: the requested one, except for models Flair already accelerated
    (its ``export_onnx`` graph is bundled as it is; its TorchScript embeddings sit in Flair's own ``.pt``) and
    for models without one transformer embedding to export (word embeddings, Flair's character language
    models, stacks): those run as Flair's own model, the ``torch`` backend, unless the model has Flair's character
    language models (``FlairEmbeddings``), which the encoder backends export."""
    if is_multitask(model):
        if requested is not Backend.TORCH:
            log.info("A MultitaskModel is bundled as Flair's own model (backend torch): its tasks run as Flair's code")
        return Backend.TORCH
    if is_flair_onnx(model) and requested is not Backend.FLAIR_ONNX:
        log.info("The model's embeddings were exported with Flair's export_onnx: bundling that graph as it is")
        return Backend.FLAIR_ONNX
    if is_flair_jit(model) and requested is not Backend.TORCH:
        log.info(
            "The model's embeddings are Flair's TorchScript embeddings (self-contained): bundling the .pt as it is"
        )
        return Backend.TORCH
    if requested in ENCODER_BACKENDS and not has_one_transformer(model) and has_char_lms(model):
        log.info(
            "Exporting the model's character language models (FlairEmbeddings) to %s; the rest runs in Flair",
            "ONNX" if requested is Backend.ONNX else "TorchScript",
        )
        return requested
    if requested in ENCODER_BACKENDS and not has_one_transformer(model):
        embeddings = model_embeddings(model)
        log.info(
            "The model's embeddings (%s) hold no single transformer to export to %s: bundling Flair's own model "
            "(backend torch)",
            type(embeddings).__name__,
            requested.value,
        )
        return Backend.TORCH
    return requested


def flair_code_reason(model: Any) -> str | None:
    """Why ``model`` serves with Flair's code whatever backend is asked for (None: a model of one transformer,
    which the onnx backend can serve lean): the cases of :func:`choose_backend`, said for the manifest."""
    if is_multitask(model):
        return "a MultitaskModel (its tasks run as Flair's code; lean serving covers one tagger or classifier)"
    if is_flair_onnx(model):
        return "embeddings from Flair's own export_onnx (bundled as they are)"
    if is_flair_jit(model):
        return "Flair's TorchScript embeddings (bundled as they are)"
    if has_one_transformer(model):
        return None
    if has_char_lms(model):
        return "Flair's character language models (lean serving covers one transformer under a tagger or classifier)"
    return f"its embeddings ({type(model_embeddings(model)).__name__}) hold no single transformer to export"


#: the manifest details a model's MLmodel flavor section repeats (None where a backend has no such detail)
_FLAVOR_KEYS = ("providers", "session_options", "opset", "precision", "quantization")


def flavor_metadata(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Execution providers, session options, opset, precision, optimization level and quantization, as the
    bundle's backend section records them, for the ``MLmodel`` flavor section."""
    section_key = backend_module(manifest["backend"]).SECTION
    section = manifest.get(section_key) or {} if section_key else {}
    metadata = {key: section.get(key) for key in _FLAVOR_KEYS}
    metadata["optimization"] = (section.get("optimization") or {}).get("level")
    return metadata
