"""The ``torch`` backend: Flair's own model, nothing exported, its transformer call run in length buckets.

A ``torch`` bundle is Flair's own state in ``model.pt`` (written without the model card, in a pickle
protocol that reads as plain data), loaded by Flair. The bundle has no section of its own in the manifest.

The speed-up (``RuntimeOptions.length_buckets``): Flair's
``TransformerEmbeddings.forward`` calls ``self.model(input_ids, attention_mask=...)[-1]`` (the tuple of
hidden states) once per batch, padded to the batch's longest subtoken sequence. Here the transformer's
``forward`` is replaced, on that one instance, by one that runs the batch in groups of similar length
(:func:`exporter.runtime.buckets.run_in_groups`) and returns the same tuple. The model's weights, state dict,
``save()`` and every other line of Flair's code stay as they are.
"""

from __future__ import annotations

import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from exporter.backends.kinds import SURFACE, is_flair_jit
from exporter.config import ExportConfig, RuntimeOptions
from exporter.errors import UnsupportedModelError
from exporter.format.modelfile import (
    MODEL_FILE,
    PICKLE_NEEDS_OPT_IN,
    PICKLE_WEIGHTS_ONLY,
    PLAIN_EMBEDDINGS,
    model_embeddings,
    save_plain,
)
from exporter.format.tasks import task_models
from exporter.runtime.buckets import run_in_groups
from exporter.runtime.invariance import mark_canonical

__all__ = [*SURFACE, "add_length_buckets", "has_length_buckets", "is_flair_jit"]

SECTION = None
MODEL_PICKLE_ALWAYS = False
PICKLE_REASON = "Flair TorchScript (JIT) model (a TorchScript program inside the pickle)"
#: the embeddings a torch bundle may rebuild from its model.pt without ``allow_pickle``: any tree of Flair's
#: plain-data embeddings (a transformer, word embeddings, character language models, stacks of them, ...)
DATA_EMBEDDINGS: tuple[str | None, ...] = PLAIN_EMBEDDINGS

_MARK = "_flair_mlflow_length_buckets"


def export(model: Any, directory: Path, config: ExportConfig) -> dict[str, Any]:
    """Flair's own state, as ``model.save`` writes it but in pickle protocol 2 and without the model card.

    The model card (training parameters, which may name optimizer and scheduler classes) is metadata that
    prediction never reads; leaving it out keeps model.pt plain data that loads without ``allow_pickle``.
    Embeddings that are not plain data (a custom class, which Flair could rebuild only by running its code) are
    refused here, before anything is written.
    """
    if is_flair_jit(model):  # a TorchScript program inside the pickle
        torch.save(model._get_state_dict(), directory / MODEL_FILE)
        return {"model_pickle": PICKLE_NEEDS_OPT_IN}
    _check_plain_embeddings(model)
    save_plain(model, directory / MODEL_FILE)
    return {"model_pickle": PICKLE_WEIGHTS_ONLY}


def _check_plain_embeddings(model: Any) -> None:
    """Every embedding in the model's tree is one of Flair's own plain-data classes (not a subclass of one, not a
    class of the user's, which Flair could rebuild only by running its code)."""
    import flair.embeddings

    found = [e for task_model in task_models(model) for e in _embedding_tree(model_embeddings(task_model))]
    unknown = [
        e
        for e in found
        if type(e).__name__ not in PLAIN_EMBEDDINGS or getattr(flair.embeddings, type(e).__name__, None) is not type(e)
    ]
    if unknown:
        names = [f"{type(e).__module__}.{type(e).__name__}" for e in unknown]
        tree = " > ".join(type(e).__name__ for e in found)
        raise UnsupportedModelError(
            f"Cannot bundle a {type(model).__name__} with embeddings {', '.join(names)} (its embeddings: {tree}): "
            "a bundle holds a Flair model as plain data, which Flair rebuilds only for its own embeddings: "
            f"{', '.join(PLAIN_EMBEDDINGS)}."
        )


def _embedding_tree(embeddings: Any) -> Iterator[Any]:
    """``embeddings`` and the embeddings inside it: a stack's members, a document RNN's or pool's stack."""
    if embeddings is None:
        return
    yield embeddings
    members = getattr(embeddings, "embeddings", None)
    for member in members if isinstance(members, (list, tuple)) else [members]:
        if isinstance(member, torch.nn.Module):
            yield from _embedding_tree(member)


def load(
    directory: Path, manifest: Mapping[str, Any], runtime: RuntimeOptions, state: dict[str, Any], model_cls: type
) -> Any:
    """Flair's own model from its state, its transformer run in length buckets unless ``runtime`` says not."""
    model = model_cls.load(state)
    if runtime.length_buckets:
        add_length_buckets(model, invariant=runtime.invariant_batches)
    return model


def _bucketed_forward(self: torch.nn.Module, input_ids: torch.Tensor, attention_mask=None, **kwargs: Any):
    original = type(self).forward
    if attention_mask is None or kwargs:  # language ids, boxes, pixels: Flair's call, unchanged
        return original(self, input_ids, attention_mask=attention_mask, **kwargs)

    def encoder(ids: torch.Tensor, mask: torch.Tensor):
        return original(self, ids, attention_mask=mask)[-1]

    invariant, width_limit, pad_id = getattr(self, _MARK)
    hidden = run_in_groups(
        encoder,
        input_ids,
        attention_mask,
        self.config.hidden_size,
        invariant=invariant,
        width_limit=width_limit,
        pad_id=pad_id,
    )
    return (tuple(hidden),)


def add_length_buckets(model: Any, invariant: bool = True) -> bool:
    """Run every transformer of ``model`` (a tagger's or classifier's embeddings, TARS's, a stack's member, each
    task's of a multitask model) in length buckets, where it is Flair's plain ``TransformerWordEmbeddings`` /
    ``TransformerDocumentEmbeddings``; with ``invariant``, every text at its canonical width
    (``RuntimeOptions.batch_invariant``). Returns whether it did for any; static shapes (``force_max_length``)
    and other embeddings are left alone."""
    from flair.embeddings import TransformerDocumentEmbeddings, TransformerWordEmbeddings

    done = False
    for embeddings in model.modules():
        if type(embeddings) not in (TransformerWordEmbeddings, TransformerDocumentEmbeddings):
            continue
        transformer = getattr(embeddings, "model", None)
        config = getattr(transformer, "config", None)
        # Flair reads ``[-1]`` as the tuple of hidden states only when the config asks for them
        if embeddings.force_max_length or not getattr(config, "hidden_size", None):
            continue
        if not getattr(config, "output_hidden_states", False) or getattr(transformer, _MARK, None):
            continue
        # bound to this instance: deepcopy rebinds it to the copy; the state dict does not see it
        transformer.forward = types.MethodType(_bucketed_forward, transformer)
        tokenizer = embeddings.tokenizer
        setattr(transformer, _MARK, (invariant, int(tokenizer.model_max_length), tokenizer.pad_token_id or 0))
        mark_canonical(transformer, invariant)
        done = True
    return done


def has_length_buckets(model: Any) -> bool:
    """Whether :func:`add_length_buckets` is in force on ``model``'s transformers (any of them)."""
    return any(getattr(m, _MARK, None) for m in model.modules())
