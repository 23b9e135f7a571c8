"""Tracing a Hugging Face encoder, shared by the backends that export it (``onnx``, ``torchscript``) and the
benchmark: a wrapper that returns only the hidden states Flair uses, and a padded batch to trace with."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import torch

__all__ = ["HiddenStates", "quiet_tracing", "trace_inputs"]


class HiddenStates(torch.nn.Module):
    """Wraps a Hugging Face encoder so that it returns only the selected hidden states."""

    def __init__(self, model: torch.nn.Module, layers: tuple[int, ...]) -> None:
        super().__init__()
        self.model = model
        self.layers = layers

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(input_ids, attention_mask=attention_mask, output_hidden_states=True, return_dict=True)
        return tuple(out.hidden_states[i] for i in self.layers)


def trace_inputs(embeddings: Any, sentences: list[str], pad_to: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenize tracing sentences into a padded batch (padding matters: the mask path must be traced)."""
    texts = list(sentences) or ["A short one .", "A somewhat longer example sentence , with more words in it ."]
    if len(texts) == 1:
        texts.append(texts[0] + " " + texts[0])
    padding = "max_length" if pad_to else True
    batch = embeddings.tokenizer(texts, padding=padding, max_length=pad_to, truncation=True, return_tensors="pt")
    return batch["input_ids"], batch["attention_mask"]


@contextlib.contextmanager
def quiet_tracing() -> Iterator[None]:
    """Within the block, tracing keeps its TracerWarnings to itself: Hugging Face models raise several on every
    export (Python values of tensors taken as constants), and the parity gate checks what the trace computes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        yield
