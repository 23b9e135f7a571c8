"""Batch-invariant heads: a model's own linear layers give a row the same numbers whatever rows share the call.

The encoder's part is :func:`exporter.runtime.buckets.canonical_width`. After it, Flair's head multiplies the
words (or texts) of the whole batch in one matrix product, and CPU matrix libraries pick their kernel by the
number of rows: measured with PyTorch 2.13 here, a row's output differs between 1, 2-3 and 4 or more rows,
for every layer shape tried (32 x 17 to 4,196 x 4,196). :func:`fix_head_shapes` makes every ``torch.nn.Linear``
outside the model's embeddings multiply in blocks of exactly :data:`ROWS_PER_BLOCK` rows (zeros after the last
row), as one batched product: one shape for every call, so a row's arithmetic is the same alone, in any batch
and at any position (checked by the tests). Measured cost: none for a 384-wide head, 3-10 % for wider ones.

Recurrent layers (a tagger's BiLSTM, character language models, document RNNs) multiply as many rows as the
batch has sentences at each step, and a transformer that pads by batch computes other sums: :func:`invariance_gaps`
names what a model has of these, and such models do not promise this.

With ``wide`` (a bundle that can also serve lean, ``exporter.runtime.lean``), the blocks are summed in float64 and
rounded to float32, as the lean path's numpy head sums them: the two paths of one bundle then give the same
emissions (differences in the order of float64 sums almost always vanish in the rounding), where float32 sums of two
libraries differ in the last digits and, over a long text's CRF path, moved its confidences by up to 6e-5.
"""

from __future__ import annotations

import functools
import types
from typing import Any

import torch

__all__ = ["ROWS_PER_BLOCK", "fix_head_shapes", "invariance_gaps", "mark_canonical"]

#: rows per product of a head's linear layer when answers must not depend on the batch
ROWS_PER_BLOCK = 64
_RECURRENT = (torch.nn.RNNBase,)
_CANONICAL = "_flair_mlflow_canonical_widths"


def _head_modules(model: Any) -> list[torch.nn.Module]:
    """The model's modules that are not inside any of its embeddings (whose encoders batch on their own terms)."""
    from flair.embeddings import Embeddings

    inside: set[int] = set()
    for module in model.modules():
        if isinstance(module, Embeddings):
            inside.update(id(m) for m in module.modules())
    return [m for m in model.modules() if id(m) not in inside]


def mark_canonical(encoder: torch.nn.Module, invariant: bool) -> None:
    """Record on ``encoder`` (what a Flair transformer embedding calls as its ``model``) whether it runs every
    text at its canonical width; :func:`invariance_gaps` reads it."""
    setattr(encoder, _CANONICAL, bool(invariant))


def invariance_gaps(model: Any, providers: tuple[str, ...] = ()) -> list[str]:
    """What keeps ``model``'s answers from being batch-invariant: recurrent layers (in its head or its character
    language models), a transformer that pads by batch (an encoder not marked by :func:`mark_canonical`: Flair's
    own ONNX export, static shapes, an embedding the torch backend does not handle, left padding), an execution
    provider other than the CPU (measured on the CPU only)."""
    from flair.embeddings.transformer import TransformerBaseEmbeddings

    recurrent, transformers = [], []
    for name, m in model.named_modules():
        kind = type(m).__name__
        if isinstance(m, _RECURRENT) or (name and kind in ("CharLMEmbeddings", "FlairEmbeddings")):
            recurrent.append(f"{name} ({kind})")
        elif isinstance(m, TransformerBaseEmbeddings):
            if not getattr(getattr(m, "model", None), _CANONICAL, False):
                transformers.append(f"{name or 'embeddings'} ({kind}: padded by batch)")
            elif getattr(getattr(m, "tokenizer", None), "padding_side", "right") == "left":
                transformers.append(f"{name or 'embeddings'} ({kind}: a left-padding tokenizer)")
    providers_gap = [f"execution provider {p}" for p in providers[:1] if p != "CPUExecutionProvider"]
    return recurrent + transformers + providers_gap


def fix_head_shapes(model: Any, wide: bool = False) -> int:
    """Bind every linear layer of ``model`` outside its embeddings to multiply in blocks of
    :data:`ROWS_PER_BLOCK` rows (summed in float64 with ``wide``); returns how many. On these instances only: state
    dicts and other models stay Flair's. A layer already rebound (for instance to skip padding rows) is left as it
    is."""
    count = 0
    for module in _head_modules(model):
        if type(module) is torch.nn.Linear and "forward" not in vars(module):
            if wide:
                module.forward = functools.partial(_linear_in_wide_blocks, module, *_double(module))
            else:
                module.forward = types.MethodType(_linear_in_blocks, module)
            count += 1
    return count


def _double(module: torch.nn.Linear) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The layer's weights in float64, made once when the layer is bound (a loaded model's weights do not change)."""
    with torch.no_grad():
        return module.weight.double(), None if module.bias is None else module.bias.double()


def _linear_in_wide_blocks(
    self: torch.nn.Linear, weight: torch.Tensor, bias: torch.Tensor | None, x: torch.Tensor
) -> torch.Tensor:
    if x.dtype != torch.float32:
        return _linear_in_blocks(self, x)
    return _blocks(x.double(), weight, bias, self.out_features).float()


def _linear_in_blocks(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return _blocks(x, self.weight, self.bias, self.out_features)


def _blocks(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, out_features: int) -> torch.Tensor:
    flat = x.reshape(-1, x.shape[-1])
    rows = flat.shape[0]
    if rows == 0:
        return torch.nn.functional.linear(x, weight, bias)
    padding = -rows % ROWS_PER_BLOCK
    if padding:
        flat = torch.cat([flat, flat.new_zeros(padding, flat.shape[1])])
    blocks = flat.shape[0] // ROWS_PER_BLOCK
    weight = weight.t().expand(blocks, -1, -1)
    stacked = flat.view(blocks, ROWS_PER_BLOCK, -1)
    if bias is None:
        out = torch.bmm(stacked, weight)
    else:
        out = torch.baddbmm(bias.expand(blocks, ROWS_PER_BLOCK, -1), stacked, weight)
    return out.reshape(-1, out_features)[:rows].view(*x.shape[:-1], out_features)
