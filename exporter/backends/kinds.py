"""What the backend table needs to know of a model before choosing: whether Flair itself already accelerated its
embeddings (``export_onnx`` or TorchScript), and the surface every backend module defines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from exporter.config import Backend
from exporter.format.modelfile import model_embeddings

__all__ = [
    "CHAR_LMS",
    "ENCODER_BACKENDS",
    "SURFACE",
    "flair_path_reason",
    "has_char_lms",
    "has_one_transformer",
    "is_flair_jit",
    "is_flair_onnx",
]

#: the names every backend module defines (see ``exporter.backends``)
SURFACE = ("DATA_EMBEDDINGS", "MODEL_PICKLE_ALWAYS", "PICKLE_REASON", "SECTION", "export", "load")


#: the key of a backend's manifest section that lists its exported character language models
CHAR_LMS = "char_lms"

#: the backends that export a transformer encoder and keep the rest of the model
ENCODER_BACKENDS = (Backend.ONNX, Backend.TORCHSCRIPT)


def has_one_transformer(model: Any) -> bool:
    """The model is embedded by one Flair transformer embedding, what the encoder backends export."""
    from flair.embeddings import TransformerEmbeddings

    return isinstance(model_embeddings(model), TransformerEmbeddings)


def has_char_lms(model: Any) -> bool:
    """The model holds Flair's contextual string embeddings (``FlairEmbeddings``, Flair's class itself), whose
    character language models the ``onnx`` backend exports."""
    from flair.embeddings import FlairEmbeddings

    modules = getattr(model, "modules", None)
    return modules is not None and any(type(m) is FlairEmbeddings for m in modules())


def is_flair_onnx(model: Any) -> bool:
    """The model's embeddings are Flair's own ``export_onnx`` embeddings (bundled as they are)."""
    from flair.embeddings.transformer import TransformerOnnxEmbeddings

    return isinstance(getattr(model, "embeddings", None), TransformerOnnxEmbeddings)


def is_flair_jit(model: Any) -> bool:
    """Flair's ``TransformerJit*Embeddings`` keep the traced module inside the pickle: Flair's .pt is complete."""
    from flair.embeddings.transformer import TransformerJitEmbeddings

    return isinstance(getattr(model, "embeddings", None), TransformerJitEmbeddings)


def flair_path_reason(manifest: Mapping[str, Any], model_reason: str | None = None) -> str:
    """Why a bundle serves with Flair's code: the reason its manifest records (the lean check's, the model's, or what
    the onnx backend found), else ``model_reason`` (at export: ``exporter.backends.flair_code_reason``), else what its
    backend and files say (bundles written before serving paths were recorded)."""
    if manifest.get("serving_path_reason"):
        return str(manifest["serving_path_reason"])
    if model_reason:
        return model_reason
    if any(isinstance(value, Mapping) and CHAR_LMS in value for value in manifest.values()):
        return "Flair's character language models (lean serving covers one transformer under a tagger or classifier)"
    backend = manifest.get("backend")
    if backend != Backend.ONNX.value:
        return f"a {backend} bundle (lean serving needs onnx: export the model with backend onnx)"
    return "exported before lean serving, or without a lean path (export it again to serve lean where it can)"
