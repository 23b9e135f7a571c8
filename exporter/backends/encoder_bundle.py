"""What the encoder backends (``onnx``, ``torchscript``) share: they export the transformer encoder alone and
keep the rest of the Flair model (its head, dictionaries, embedding settings) in a slimmed ``model.pt``.

Writing: :func:`export_bundle_files` finds the transformer embeddings (refusing an already accelerated
model), has the backend export the encoder, and writes the tokenizer and the slimmed model;
:func:`manifest_entries` is what the backend adds to the manifest. Loading: :func:`assemble_model`
rebuilds the Flair model around an encoder with Flair's own embedding logic reproduced by
``exporter.runtime.embeddings``.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from exporter.config import RuntimeOptions
from exporter.errors import UnsupportedModelError
from exporter.format.modelfile import MODEL_FILE, PICKLE_WEIGHTS_ONLY, embeddings_key, model_state
from exporter.runtime.buckets import Batching
from exporter.runtime.embeddings import (
    AcceleratedTransformerDocumentEmbeddings,
    AcceleratedTransformerWordEmbeddings,
    build_accelerated_embeddings,
)
from exporter.runtime.fastpath import FastViterbiDecoder
from exporter.runtime.settings import EmbeddingSettings, find_transformer_embeddings

__all__ = [
    "TOKENIZER_DIR",
    "assemble_model",
    "export_bundle_files",
    "exported_embeddings",
    "manifest_entries",
]

TOKENIZER_DIR = "tokenizer"


def exported_embeddings(model: Any) -> tuple[Any, Any]:
    """The model's transformer embeddings and their settings; refuses a model loaded from a bundle."""
    embeddings = find_transformer_embeddings(model)
    if isinstance(embeddings, (AcceleratedTransformerWordEmbeddings, AcceleratedTransformerDocumentEmbeddings)):
        raise UnsupportedModelError(
            "This model was loaded from a flair-mlflow bundle and is already accelerated; "
            "log the bundle directory itself instead of exporting it again."
        )
    return embeddings, EmbeddingSettings.from_embeddings(embeddings)


def export_bundle_files(
    model: Any, directory: Path, config: Any, export_encoder: Callable[..., dict[str, Any]]
) -> tuple[Any, dict[str, Any]]:
    """Write an encoder backend's files: the encoder (``export_encoder(embeddings, settings, folder, config)``
    returns ``{"files": [...], ...}``), the tokenizer and the slimmed Flair model.

    Returns:
        The embedding settings, and what the encoder export returned with ``model_pickle`` added.
    """
    embeddings, settings = exported_embeddings(model)
    scratch = directory / "encoder"
    scratch.mkdir()
    exported = export_encoder(embeddings, settings, scratch, config)
    for name in exported["files"]:
        os.replace(scratch / name, directory / name)
    scratch.rmdir()
    _write_model_files(model, embeddings, directory)
    return settings, exported


def _write_model_files(model: Any, embeddings: Any, directory: Path) -> None:
    """Write the tokenizer and the Flair model without its transformer weights (the encoder holds them)."""
    import torch

    embeddings.tokenizer.save_pretrained(str(directory / TOKENIZER_DIR))
    state = model_state(model)
    state[embeddings_key(state)] = None
    # the transformer's weights, wherever the model keeps its embeddings (a TARS model: in its inner classifier)
    prefix = next(name for name, module in model.named_modules() if module is embeddings) + "."
    state["state_dict"] = OrderedDict((k, v) for k, v in state["state_dict"].items() if not k.startswith(prefix))
    torch.save(state, directory / MODEL_FILE)  # protocol 2: what torch.load(weights_only=True) reads


def manifest_entries(settings: Any, section_key: str, section: dict[str, Any]) -> dict[str, Any]:
    """What an encoder backend adds to the manifest: the embedding settings, the model file's kind, its section."""
    return {"embeddings": settings.to_dict(), "model_pickle": PICKLE_WEIGHTS_ONLY, section_key: section}


def assemble_model(
    directory: Path,
    manifest: Mapping[str, Any],
    runtime: RuntimeOptions,
    state: dict[str, Any],
    model_cls: type,
    encoder: Callable[..., Any],
) -> Any:
    """The Flair model of ``state`` with accelerated embeddings around ``encoder`` (CRF decoding in numpy)."""
    from transformers import AutoTokenizer

    settings = EmbeddingSettings.from_dict(manifest["embeddings"])
    tokenizer = AutoTokenizer.from_pretrained(str(directory / TOKENIZER_DIR))
    batching = Batching(
        runtime.length_buckets,
        runtime.encoder_workers,
        runtime.max_call_rows,
        invariant=runtime.invariant_batches,
        width_limit=settings.model_max_length,
        pad_id=tokenizer.pad_token_id or 0,
    )
    embeddings = build_accelerated_embeddings(settings, tokenizer, encoder, batching)
    state.pop("__cls__", None)
    state[embeddings_key(state)] = embeddings
    model = model_cls._init_model_with_state_dict(state)
    if getattr(model, "use_crf", False) and hasattr(model, "viterbi_decoder"):
        model.viterbi_decoder = FastViterbiDecoder.replacing(model.viterbi_decoder)
    _restore_pair_separator(model, embeddings)
    return model


def _restore_pair_separator(model: Any, embeddings: Any) -> None:
    """Flair's models of text pairs (embedded together) join the two texts with the tokenizer's separator token
    when their embeddings are a ``TransformerDocumentEmbeddings``, else with a space: an ``isinstance`` check that
    ours (built without the transformer) do not pass. The model gets the separator Flair gave it."""
    if (
        getattr(model, "embed_separately", True)
        or not hasattr(model, "sep")
        or not embeddings.settings.is_document_embedding
    ):
        return
    sep_token = embeddings.tokenizer.sep_token
    model.sep = f" {sep_token} " if sep_token else " [SEP] "
