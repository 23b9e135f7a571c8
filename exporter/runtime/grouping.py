"""How a batch's rows are cut into encoder calls: plain Python, no tensors (the lean serving path imports it
without torch; ``exporter.runtime.buckets`` runs the calls on tensors).

- :func:`canonical_width` / :func:`canonical_groups`: the widths that make a row's answer independent of its batch;
- :func:`plan_groups`: groups of similar length under a cost model (one call's fixed cost, linear layers,
  attention);
- :func:`split_for_workers`, :func:`cap_positions`: parts for concurrent calls, and calls of bounded size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = [
    "CALL_OVERHEAD_TOKENS",
    "MAX_CALL_ATTENTION",
    "MAX_CALL_POSITIONS",
    "MIN_WIDTH_STEP",
    "call_overhead",
    "canonical_groups",
    "canonical_width",
    "cap_positions",
    "plan_groups",
    "split_for_workers",
]

#: The fixed cost of one encoder call, in padded positions, for an encoder of hidden size 384. Measured
#: on MiniLM (384) at 2 threads: 100 to 300 positions all give nearly the same total (fp32 and int8),
#: far better than 0 (many tiny calls) or 1000 (too little splitting). A position costs about hidden²
#: while a call's fixed cost does not grow with it, so for bigger encoders the default scales with
#: (384 / hidden)²: 50 for a BERT-base shape (768), where 25 to 100 measured best and 200 was 25 % slower.
CALL_OVERHEAD_TOKENS = 200.0
REFERENCE_HIDDEN_SIZE = 384
#: The most padded positions (rows x width) in one encoder call.
MAX_CALL_POSITIONS = 8192
#: The most attention cells (rows x width²) in one encoder call: two full windows of 512 subtokens.
#: Attention is what grows fastest; measured on MiniLM with one text of 50,000 words (about 150
#: overflow windows): all windows in one call took 7.8 GB, eight per call 979 MB above the warmed-up
#: model, two per call ~700 MB. A batch of 32 sentences of up to 128 subtokens stays one call; wider
#: batches are cut into calls of fewer rows (same hidden states, some per-call cost).
MAX_CALL_ATTENTION = 2 * 512 * 512


#: canonical widths grow in steps of at least this many positions ...
MIN_WIDTH_STEP = 8


def canonical_width(length: int, limit: int = 0) -> int:
    """The width a row of ``length`` positions is padded to when answers must not depend on the batch: its
    length rounded up to a multiple of a step that grows with it (8 up to 63 positions, then a quarter of
    the largest power of two not above it: 16 up to 127, 32 up to 255, 64 up to 511, ...), so that padding
    adds at most 7 positions to a short row and at most a quarter to a long one, and rows of similar length
    share a width. Never above
    ``limit`` when it is set (the encoder's maximum length), nor below ``length``.

    Why a width of its own: an encoder's arithmetic for a row depends on the width it is padded to (the
    attention and its softmax sum over the padded positions, in blocks whose split depends on the width;
    PyTorch's kernels change at 16 positions on MiniLM), but on this project's encoders not on the number
    of rows in the call (measured: bit-identical rows for 1 to 40 rows, PyTorch and ONNX Runtime; the
    tests check it on every backend).
    """
    step = max(MIN_WIDTH_STEP, (1 << max(length, 1).bit_length() - 1) // 4)
    width = -(-length // step) * step
    if limit > 0:
        width = min(width, max(limit, length))
    return width


def call_overhead(hidden_size: int) -> float:
    """The fixed cost of one encoder call, in padded positions, for an encoder of ``hidden_size``."""
    # smaller encoders keep the measured value (only bigger ones were measured to want less)
    return CALL_OVERHEAD_TOKENS * min(1.0, (REFERENCE_HIDDEN_SIZE / max(hidden_size, 1)) ** 2)


def plan_groups(
    lengths: Sequence[int],
    hidden_size: int,
    overhead: float | None = None,
    group_cost: Callable[[int, int], float] | None = None,
) -> list[list[int]]:
    """Cut a batch into groups of rows (indexes into ``lengths``) minimising the modelled encoder cost.

    Rows are taken longest first; each group is a run of consecutive rows in that order, padded to the
    length of its first row. Returns the groups longest first; one group holding every row means
    splitting does not pay. ``overhead`` defaults to :func:`call_overhead` of ``hidden_size``.
    ``group_cost(rows, width)``, when given, replaces the transformer's cost model (a recurrent network's
    cost, for instance, grows with the width times a fixed cost per step plus the rows).
    """
    if overhead is None:
        overhead = call_overhead(hidden_size)
    scale = 1.0 / (3.0 * max(hidden_size, 1))
    if group_cost is None:

        def group_cost(rows: int, width: int) -> float:
            return overhead + rows * width * (1.0 + width * scale)

    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    # distinct lengths, longest first, with the number of rows of each: cuts only fall between them
    distinct: list[int] = []
    counts: list[int] = []
    for i in order:
        if distinct and distinct[-1] == lengths[i]:
            counts[-1] += 1
        else:
            distinct.append(lengths[i])
            counts.append(1)
    n = len(distinct)
    rows_before = [0] * (n + 1)
    for k, c in enumerate(counts):
        rows_before[k + 1] = rows_before[k] + c
    best = [0.0] + [float("inf")] * n
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j):
            cost = best[i] + group_cost(rows_before[j] - rows_before[i], distinct[i])
            if cost < best[j]:
                best[j], cut[j] = cost, i
    bounds = []
    j = n
    while j > 0:
        bounds.append((rows_before[cut[j]], rows_before[j]))
        j = cut[j]
    return [order[a:b] for a, b in reversed(bounds)]


def split_for_workers(groups: list[list[int]], workers: int) -> list[list[int]]:
    """Cut every group into ``workers`` runs of consecutive rows of near-equal size (longest first), so
    that concurrent calls share the work evenly; each run is padded to its own first row."""
    chunks = []
    for group in groups:
        parts = max(1, min(workers, len(group)))
        size, extra = divmod(len(group), parts)
        start = 0
        for k in range(parts):
            end = start + size + (1 if k < extra else 0)
            chunks.append(group[start:end])
            start = end
    return chunks


def cap_positions(
    groups: list[list[int]],
    widths: Sequence[int],
    max_positions: int = MAX_CALL_POSITIONS,
    max_attention: int = MAX_CALL_ATTENTION,
    max_rows: int = 0,
) -> list[list[int]]:
    """Cut every group whose rows x width exceed ``max_positions`` (or whose rows x width² exceed
    ``max_attention``, or whose rows exceed ``max_rows`` when it is above 0) into runs that do not (one
    row at least).

    ``widths[k]`` is the padded width of ``groups[k]``. This bounds the memory of one encoder call (its
    attention grows with rows x width²) whatever the input: a long document's overflow windows, or a
    merged batch of many requests, go through in calls of bounded size.
    """
    capped = []
    for group, width in zip(groups, widths):
        width = max(width, 1)
        step = max(1, min(max_positions // width, max_attention // (width * width)))
        if max_rows > 0:
            step = min(step, max_rows)
        capped.extend(group[i : i + step] for i in range(0, len(group), step))
    return capped


def canonical_groups(lengths: Sequence[int], width_limit: int = 0) -> list[tuple[int, list[int]]]:
    """``(width, rows)`` for each :func:`canonical_width` of ``lengths`` (indexes into it), widest first."""
    by_width: dict[int, list[int]] = {}
    for row, length in enumerate(lengths):
        by_width.setdefault(canonical_width(length, width_limit), []).append(row)
    return sorted(by_width.items(), key=lambda item: -item[0])
