"""The ``torch`` backend's speed-up: length buckets around Flair's own PyTorch transformer call.

A ``torch`` bundle is Flair's own ``.pt``, loaded by Flair; nothing is exported. Flair's
``TransformerEmbeddings.forward`` calls ``self.model(input_ids, attention_mask=...)[-1]`` (the tuple of
hidden states) once per batch, padded to the batch's longest subtoken sequence. Here the transformer's
``forward`` is replaced, on that one instance, by one that runs the batch in groups of similar length
(:func:`exporter.buckets.run_in_groups`) and returns the same tuple. The model's weights, state dict,
``save()`` and every other line of Flair's code stay as they are.
"""

from __future__ import annotations

import types
from typing import Any

import torch

__all__ = ["add_length_buckets", "has_length_buckets"]

_MARK = "_flair_mlflow_length_buckets"


def _bucketed_forward(self: torch.nn.Module, input_ids: torch.Tensor, attention_mask=None, **kwargs: Any):
    original = type(self).forward
    if attention_mask is None or kwargs:  # language ids, boxes, pixels: Flair's call, unchanged
        return original(self, input_ids, attention_mask=attention_mask, **kwargs)
    from exporter.buckets import run_in_groups

    def encoder(ids: torch.Tensor, mask: torch.Tensor):
        return original(self, ids, attention_mask=mask)[-1]

    return (tuple(run_in_groups(encoder, input_ids, attention_mask, self.config.hidden_size)),)


def add_length_buckets(model: Any) -> bool:
    """Run the transformer of ``model`` (a Flair tagger or classifier) in length buckets, when its
    embeddings are Flair's plain ``TransformerWordEmbeddings`` / ``TransformerDocumentEmbeddings``.
    Returns whether it did; static shapes (``force_max_length``) and other embeddings are left alone."""
    from flair.embeddings import TransformerDocumentEmbeddings, TransformerWordEmbeddings

    embeddings = getattr(model, "embeddings", None)
    if type(embeddings) not in (TransformerWordEmbeddings, TransformerDocumentEmbeddings):
        return False
    transformer = getattr(embeddings, "model", None)
    config = getattr(transformer, "config", None)
    # Flair reads ``[-1]`` as the tuple of hidden states only when the config asks for them
    if embeddings.force_max_length or not getattr(config, "hidden_size", None):
        return False
    if not getattr(config, "output_hidden_states", False):
        return False
    # bound to this instance: deepcopy rebinds it to the copy; the state dict does not see it
    transformer.forward = types.MethodType(_bucketed_forward, transformer)
    setattr(transformer, _MARK, True)
    return True


def has_length_buckets(model: Any) -> bool:
    """Whether :func:`add_length_buckets` is in force on ``model``."""
    return bool(getattr(getattr(getattr(model, "embeddings", None), "model", None), _MARK, False))
