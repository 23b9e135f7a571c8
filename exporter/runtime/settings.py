"""What we need to know about a Flair transformer embedding to rebuild it around an exported encoder.

:class:`EmbeddingSettings` is plain data (JSON in the bundle manifest): the pooling, layer, context and
long-sentence settings that Flair's ``TransformerEmbeddings`` uses around the transformer call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exporter.errors import UnsupportedModelError
from exporter.format.modelfile import model_embeddings

__all__ = ["EmbeddingSettings", "find_transformer_embeddings"]

SUBTOKEN_POOLINGS = ("first", "last", "first_last", "mean")
CLS_POOLINGS = ("cls", "max", "mean")
#: The plain field types of :class:`EmbeddingSettings` (annotations are strings here), as converters.
_FIELD_TYPES = {"bool": bool, "int": int, "float": float, "str": str}


@dataclass(frozen=True)
class EmbeddingSettings:
    """The settings of one Flair transformer embedding, as plain data."""

    embeddings_class: str
    name: str
    base_model_name: str
    model_type: str
    num_hidden_layers: int
    hidden_size: int
    layer_indexes: tuple[int, ...]
    layer_mean: bool
    subtoken_pooling: str
    cls_pooling: str
    is_token_embedding: bool
    is_document_embedding: bool
    allow_long_sentences: bool
    stride: int
    truncate: bool
    force_max_length: bool
    model_max_length: int
    context_length: int
    context_dropout: float
    respect_document_boundaries: bool
    use_context_separator: bool
    embedding_length: int
    fine_tune: bool

    @property
    def hidden_state_layers(self) -> tuple[int, ...]:
        """The hidden-state indexes (0 = embedding output) the encoder must return, sorted and unique."""
        count = self.num_hidden_layers + 1
        return tuple(sorted({i % count for i in self.layer_indexes}))

    @property
    def layer_positions(self) -> list[int]:
        """``layer_indexes`` translated to positions in :attr:`hidden_state_layers`."""
        count = self.num_hidden_layers + 1
        layers = self.hidden_state_layers
        return [layers.index(i % count) for i in self.layer_indexes]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["layer_indexes"] = list(self.layer_indexes)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EmbeddingSettings:
        values = {f.name: data[f.name] for f in dataclasses.fields(cls)}
        values["layer_indexes"] = tuple(values["layer_indexes"])
        return cls(**values)

    @classmethod
    def from_embeddings(cls, embeddings: Any) -> EmbeddingSettings:
        """Read the settings of a live Flair ``TransformerEmbeddings``, refusing what we cannot reproduce."""
        _check_supported(embeddings)
        config = embeddings.model.config
        derived = {
            "embeddings_class": type(embeddings).__name__,
            "name": _without_local_paths(embeddings.name),
            "base_model_name": _without_local_paths(str(getattr(embeddings, "base_model_name", ""))),
            "model_type": str(getattr(config, "model_type", "")),
            "num_hidden_layers": int(config.num_hidden_layers),
            "hidden_size": int(config.hidden_size),
            "layer_indexes": tuple(int(i) for i in embeddings.layer_indexes),
            "is_token_embedding": bool(embeddings.token_embedding),
            "is_document_embedding": bool(embeddings.document_embedding),
            "model_max_length": int(embeddings.tokenizer.model_max_length),
        }
        # every other setting is the embedding's attribute of the same name, as the field's type
        copied = {
            f.name: _FIELD_TYPES[f.type](getattr(embeddings, f.name))
            for f in dataclasses.fields(cls)
            if f.name not in derived
        }
        return cls(**derived, **copied)


def _without_local_paths(name: str) -> str:
    """A model loaded from a local directory is named after its path; keep only the folder's name."""
    import re

    return re.sub(r"(/[^/\s]+)+/([^/\s]+)/?", r"\2", name)


def find_transformer_embeddings(model: Any) -> Any:
    """Return the transformer embeddings of a Flair model, or raise :class:`UnsupportedModelError`."""
    from flair.embeddings import TransformerEmbeddings

    embeddings = model_embeddings(model)  # a TARS model's are its tars_embeddings
    if isinstance(embeddings, TransformerEmbeddings):
        return embeddings
    model_cls = type(model).__name__
    emb_cls = type(embeddings).__name__ if embeddings is not None else "no embeddings"
    members = getattr(embeddings, "embeddings", None)  # a stack's list, or a document RNN's one stack
    members = members if isinstance(members, (list, tuple)) else [members] if members is not None else []
    inner = f" (over {', '.join(type(e).__name__ for e in members)})" if members else ""
    raise UnsupportedModelError(
        f"Cannot export a {model_cls} whose embeddings are {emb_cls}{inner} to an encoder backend: onnx and "
        "torchscript export one TransformerWordEmbeddings or TransformerDocumentEmbeddings. Such a model is bundled "
        "as Flair's own model (backend torch), which save_bundle and save_model choose for it."
    )


def _check_supported(embeddings: Any) -> None:
    cls_name = type(embeddings).__name__
    problems = []
    if getattr(embeddings, "feature_extractor", None) is not None:
        problems.append("it needs images (a feature extractor)")
    if getattr(embeddings, "needs_manual_ocr", False) or getattr(embeddings, "tokenizer_needs_ocr_boxes", False):
        problems.append("it needs OCR bounding boxes")
    if getattr(embeddings, "use_lang_emb", False):
        problems.append("it needs language ids (XLM language embeddings)")
    model = getattr(embeddings, "model", None)
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "num_hidden_layers") or not hasattr(config, "hidden_size"):
        problems.append("its transformer has no standard config (num_hidden_layers, hidden_size)")
    if getattr(embeddings, "subtoken_pooling", "first") not in SUBTOKEN_POOLINGS:
        problems.append(f"unknown subtoken pooling {embeddings.subtoken_pooling!r}")
    if getattr(embeddings, "cls_pooling", "cls") not in CLS_POOLINGS:
        problems.append(f"unknown cls pooling {embeddings.cls_pooling!r}")
    if "attention_mask" not in getattr(getattr(embeddings, "tokenizer", None), "model_input_names", ["attention_mask"]):
        problems.append("its tokenizer produces no attention mask")
    if problems:
        model_cls = type(model).__name__ if model is not None else "unknown"
        raise UnsupportedModelError(
            f"Cannot export {cls_name} over {model_cls}: " + "; ".join(problems) + ". "
            "Use backend='torch' to log it without conversion."
        )
