"""Run a batch through the encoder in groups of similar length: less padding, same hidden states.

Flair's ``predict`` sorts sentences by their number of words and pads every mini-batch to the longest
*subtoken* sequence in it. Word and subtoken counts disagree often enough that one long sentence
(a list of names, a URL, a table row) pads the other 31 of its batch to its own length: on the first 384
WikiANN English test sentences of at least 8 words, 61 % of the encoder's input positions were padding,
and one batch of 32 was padded to 282 subtokens for a sentence whose neighbours had at most 49.

A transformer encoder with a right-padded attention mask computes the same hidden states for a
sentence whatever the padding after it (up to floating-point summation order; an int8 graph with
dynamic quantization differs a little more, as each call takes its activation scale from its own values,
which is why the parity gate runs with the bundle's recorded runtime settings), so the batch can be cut
into groups, each padded only to its own longest sentence, and the results put back in place. The groups
are chosen by a small dynamic programme over a cost model: per group, a fixed cost per encoder call
(:func:`call_overhead`) plus, per padded position, the linear layers (proportional to the sequence
length) and attention (proportional to its square, relative to ``3 * hidden_size``).

Padding positions hold other values than in one padded call (zeros beyond a group's width); Flair
never reads them (subtoken pooling skips ``word_ids == -100``, document pooling stops at each sentence's
length).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import torch

from exporter.runtime.grouping import (
    CALL_OVERHEAD_TOKENS,
    MAX_CALL_ATTENTION,
    MAX_CALL_POSITIONS,
    call_overhead,
    canonical_groups,
    canonical_width,
    cap_positions,
    plan_groups,
    split_for_workers,
)

__all__ = [
    "AS_PADDED",
    "BUCKETED",
    "CALL_OVERHEAD_TOKENS",
    "Batching",
    "MAX_CALL_ATTENTION",
    "MAX_CALL_POSITIONS",
    "Encoder",
    "call_overhead",
    "canonical_groups",
    "canonical_width",
    "cap_positions",
    "plan_groups",
    "run_in_groups",
    "split_for_workers",
]


@dataclass(frozen=True)
class Batching:
    """How :func:`run_in_groups` cuts each batch into encoder calls (``RuntimeOptions``' ``length_buckets``,
    ``encoder_workers``, ``max_call_rows`` and ``batch_invariant``).

    ``invariant``: every row runs padded to its :func:`canonical_width`, in calls of rows of that same width,
    so that a row's hidden states never depend on the other rows of the batch (``width_limit``: the widest a
    call may be, the encoder's maximum length; ``pad_id``: the tokenizer's padding token, for positions a
    call adds beyond the batch's own padding)."""

    buckets: bool = True
    workers: int = 1
    max_rows: int = 0
    invariant: bool = False
    width_limit: int = 0
    pad_id: int = 0


#: the default: groups of similar length, one call at a time, no row cap
BUCKETED = Batching()
#: static shapes (``force_max_length``): every batch reaches the encoder as Flair padded it
AS_PADDED = Batching(buckets=False, workers=1, max_rows=0)

#: ``(input_ids, attention_mask) -> hidden states`` for the layers the embedding needs.
Encoder = Callable[[torch.Tensor, torch.Tensor], Sequence[torch.Tensor]]


def _right_padded_lengths(attention_mask: torch.Tensor) -> list[int] | None:
    """Each row's length when the mask is ones followed by zeros in every row, else None."""
    if attention_mask.dim() != 2:
        return None
    lengths = attention_mask.sum(dim=1).long()
    positions = torch.arange(attention_mask.size(1), device=attention_mask.device)
    if not torch.equal(attention_mask.bool(), positions.unsqueeze(0) < lengths.unsqueeze(1)):
        return None
    return lengths.tolist()


def run_in_groups(
    encoder: Encoder,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    hidden_size: int,
    *,
    buckets: bool = True,
    executor: Executor | None = None,
    workers: int = 1,
    max_positions: int = MAX_CALL_POSITIONS,
    max_attention: int = MAX_CALL_ATTENTION,
    max_rows: int = 0,
    invariant: bool = False,
    width_limit: int = 0,
    pad_id: int = 0,
) -> list[torch.Tensor]:
    """``encoder(input_ids, attention_mask)``, run group by group as :func:`plan_groups` decides.

    With ``buckets`` off, the batch stays one group padded as it came. With an ``executor`` and
    ``workers`` above 1, each group is cut into ``workers`` parts and the parts run concurrently (for
    ONNX Runtime sessions with one intra-op thread: coarse parallelism beats splitting small matrix
    products across cores). No call gets more than ``max_positions`` padded positions (rows x width)
    or ``max_attention`` attention cells (rows x width²) unless one row alone has more
    (:func:`cap_positions`), and none more than ``max_rows`` rows when it is above 0, each such call
    padded only to its own longest row even with ``buckets`` off: with ``max_rows=1`` every row runs
    alone, at its own length, so its hidden states cannot depend on the other rows (an int8 graph that
    takes activation scales per call gives a text the same numbers in any batch). Falls back to one call
    (or calls of whole rows at full width) when the batch has one row, the mask is not right-padded
    (left-padding tokenizers), or splitting would not pay.

    With ``invariant``, every row is padded to its :func:`canonical_width` (at most ``width_limit``; added
    positions hold ``pad_id``, masked) and runs only with rows of that same width, in calls of at most
    ``max_rows`` rows (and the position caps): its hidden states are then the same whatever else is in the
    batch (left-padded masks and empty rows excepted: they run as they came).
    """
    parallel = executor is not None and workers > 1
    if invariant:
        lengths = _right_padded_lengths(attention_mask)
        if lengths and min(lengths) >= 1:
            calls = []
            for width, group in canonical_groups(lengths, width_limit):
                parts = (
                    split_for_workers([group], workers) if parallel else [group]
                )  # rows never change a row's numbers
                capped_parts = cap_positions(parts, [width] * len(parts), max_positions, max_attention, max_rows)
                calls += [(width, part) for part in capped_parts]
            return _run_calls(encoder, input_ids, attention_mask, calls, executor if parallel else None, pad_id)
    rows, full_width = input_ids.size(0), input_ids.size(1)
    capped = 0 < max_rows < rows
    lengths = _right_padded_lengths(attention_mask) if rows > 1 and (buckets or parallel or capped) else None
    if lengths is None or min(lengths) < 1:
        lengths, buckets, parallel = None, False, False
        groups = [list(range(rows))]
    else:
        # longest first: with buckets each group (and each part of one) is padded to its first row
        groups = plan_groups(lengths, hidden_size) if buckets else [sorted(range(rows), key=lambda i: -lengths[i])]
        if parallel:
            groups = split_for_workers(groups, workers)

    def width_of(group: list[int]) -> int:
        return lengths[group[0]] if (buckets or capped) and lengths is not None else full_width

    groups = cap_positions(groups, [width_of(g) for g in groups], max_positions, max_attention, max_rows)
    if len(groups) == 1 and not parallel and width_of(groups[0]) == full_width:
        return list(encoder(input_ids, attention_mask))

    calls = [(width_of(group), group) for group in groups]
    return _run_calls(encoder, input_ids, attention_mask, calls, executor if parallel else None)


def _run_calls(
    encoder: Encoder,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    calls: list[tuple[int, list[int]]],
    executor: Executor | None,
    pad_id: int = 0,
) -> list[torch.Tensor]:
    """One encoder call per ``(width, rows)``, concurrently on ``executor`` when given, each cut or padded to its
    width; the outputs put back in their rows of tensors as wide as the batch (zeros beyond each call's width:
    positions Flair never reads)."""
    rows, full_width = input_ids.size(0), input_ids.size(1)

    def call(item: tuple[int, list[int]]) -> tuple[torch.Tensor, int, Sequence[torch.Tensor]]:
        width, group = item
        index = torch.tensor(group, dtype=torch.long)
        ids, mask = input_ids[index, : min(width, full_width)], attention_mask[index, : min(width, full_width)]
        if width > full_width:  # the padding the batch did not have (canonical widths): masked, and the tokenizer's
            # own pad id (an int8 graph that takes its activation scale per call sees these positions too)
            ids = torch.nn.functional.pad(ids, (0, width - full_width), value=pad_id)
            mask = torch.nn.functional.pad(mask, (0, width - full_width), value=0)
        return index, min(width, full_width), encoder(ids, mask)

    full: list[torch.Tensor] | None = None
    for index, width, outputs in executor.map(call, calls) if executor is not None else map(call, calls):
        if full is None:
            full = [o.new_zeros((rows, full_width, *o.shape[2:])) for o in outputs]
        for target, output in zip(full, outputs):
            target[index, :width] = output[:, :width]
    assert full is not None
    return full
