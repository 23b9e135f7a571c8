"""The heads of Flair's transformer taggers and text classifiers in numpy, with Flair's decisions.

- :func:`linear`: ``x @ W.T + b`` (PyTorch's ``nn.Linear``), summed in float64 so that a row's float32 result
  never depends on its neighbours (its last digits may differ from PyTorch's float32 sums);
- :func:`viterbi`: the dynamic programme of Flair's ``ViterbiDecoder.decode`` over CRF scores (emission plus
  transition), its first-maximum choices and its confidence (the softmax of each step's best scores);
- :func:`softmax` (in float64, rounded back);
- :func:`lstm`: PyTorch's ``nn.LSTM`` over packed sentences (Flair's tagger RNN), in float64;
- :func:`spans_from_bio`: Flair's ``get_spans_from_bio`` (BIOES or BIO tags into spans, each scored by the mean of
  its tokens' scores, labelled by the most weighted class).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["linear", "lstm", "sigmoid", "softmax", "spans_from_bio", "viterbi", "viterbi_paths"]


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """``x @ weight.T + bias`` for float32 rows ``x``, summed in float64 and rounded to float32.

    Why float64: numpy's float32 product (OpenBLAS) gives a row other last digits depending on its position among
    the rows of the call (measured: offsets 6-11, 18-23, ... of 64 rows differ from offset 0), so a token's score
    would depend on the other texts of a request. Summed in float64, those differences (about 1e-16) vanish in the
    rounding to float32: a row's result is its own, whatever its neighbours.
    """
    out = x.astype(np.float64) @ weight.T.astype(np.float64, copy=False)
    if bias is not None:
        out += bias
    return out.astype(np.float32)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax along ``axis`` in float64, rounded to ``x``'s type (each position on its own)."""
    wide = x.astype(np.float64)
    shifted = np.exp(wide - wide.max(axis=axis, keepdims=True))
    return (shifted / shifted.sum(axis=axis, keepdims=True)).astype(x.dtype)


def viterbi_paths(
    feats: np.ndarray, lengths: Sequence[int], stop_transitions: np.ndarray, start_tag: int, stop_tag: int
) -> tuple[np.ndarray, np.ndarray]:
    """Flair's Viterbi over ``feats[b, t, i, j]`` (emission of tag i plus the transition j -> i) for rows sorted
    longest first: the best path ``(B, T)`` and each step's best scores ``(B, T, tags)``."""
    batch_size, seq_len, tagset_size = feats.shape[0], feats.shape[1], feats.shape[2]
    scores = np.zeros((batch_size, seq_len + 1, tagset_size), dtype=feats.dtype)
    backpointers = np.full((batch_size, seq_len + 1, tagset_size), stop_tag, dtype=np.int64)
    stop_transitions = stop_transitions[None, :]
    for t in range(seq_len):
        batch_size_t = sum(n > t for n in lengths)
        terminates = [i for i, n in enumerate(lengths) if n == t + 1]
        if t == 0:
            scores[:batch_size_t, t] = feats[:batch_size_t, t, :, start_tag]
            backpointers[:batch_size_t, t, :] = start_tag
        else:
            candidates = feats[:batch_size_t, t] + scores[:batch_size_t, t - 1][:, None, :]
            best = candidates.argmax(axis=2)
            backpointers[:batch_size_t, t] = best
            scores[:batch_size_t, t] = np.take_along_axis(candidates, best[..., None], axis=2)[..., 0]
        if terminates:
            candidates = scores[terminates, t][:, None, :] + stop_transitions
            best = candidates.argmax(axis=2)
            backpointers[terminates, t + 1] = best
            scores[terminates, t + 1] = np.take_along_axis(candidates, best[..., None], axis=2)[..., 0]
    decoded = np.zeros((batch_size, seq_len + 1), dtype=np.int64)
    pointer = np.full(batch_size, stop_tag, dtype=np.int64)
    rows = np.arange(batch_size)
    for t in reversed(range(seq_len + 1)):
        decoded[:, t] = backpointers[rows, t, pointer]
        pointer = decoded[:, t]
    return decoded[:, 1:], scores[:, :-1, :]


def viterbi(
    emissions: Sequence[np.ndarray], transitions: np.ndarray, start_tag: int, stop_tag: int
) -> list[tuple[list[int], list[float]]]:
    """Each sentence's best tags and their confidences, from its emissions ``(words, tags)`` and the CRF's
    ``transitions[to, from]``."""
    order = sorted(range(len(emissions)), key=lambda i: -len(emissions[i]))  # Flair's rows: longest first
    lengths = [len(emissions[i]) for i in order]
    tags = transitions.shape[0]
    padded = np.zeros((len(order), max(lengths), tags), dtype=transitions.dtype)
    for row, i in enumerate(order):
        padded[row, : lengths[row]] = emissions[i]
    feats = padded[:, :, :, None] + transitions[None, None, :, :]  # Flair's CRF.forward
    decoded, scores = viterbi_paths(feats, lengths, transitions[stop_tag], start_tag, stop_tag)
    confidences = softmax(scores, axis=2).max(axis=2)
    result: list[tuple[list[int], list[float]]] = [([], [])] * len(emissions)
    for row, i in enumerate(order):
        n = lengths[row]
        result[i] = (decoded[row, :n].tolist(), confidences[row, :n].tolist())
    return result


def spans_from_bio(tags: list[str], scores: list[float]) -> list[tuple[list[int], float, str]]:
    """Flair's ``flair.data.get_spans_from_bio``: ``(token indexes, score, label)`` per span."""
    tags = [*tags, "O"]
    found = []
    weights: dict[str, float] = {}
    previous = "O-"
    span: list[int] = []
    span_scores: list[float] = []
    for idx, tag in enumerate(tags):
        if tag in ("", "O", "_"):
            tag = "O-"
        in_span = tag != "O-"
        starts_new = tag[:2] in {"B-", "S-"} or (
            in_span and previous[2:] != tag[2:] and (tag[:2] == "I-" or previous[2:] == "S-")
        )
        if (starts_new or not in_span) and span:
            found.append((span, sum(span_scores) / len(span_scores), max(weights, key=weights.__getitem__)))
            span, span_scores, weights = [], [], {}
        if in_span:
            span.append(idx)
            span_scores.append(scores[idx])
            weights[tag[2:]] = weights.setdefault(tag[2:], 0.0) + (1.1 if starts_new else 1.0)
        previous = tag
    return found


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function in float64, rounded to ``x``'s type."""
    return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(x.dtype)


def lstm(
    sequences: Sequence[np.ndarray], layers: Sequence[Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]]
) -> list[np.ndarray]:
    """PyTorch's ``nn.LSTM`` (``batch_first``, zero initial states, packed sequences: each sentence runs over its own
    words only, the backward direction from its last word) over each sentence's vectors ``(words, D)``, in float64,
    rounded to float32 as PyTorch's float32 LSTM returns them.

    ``layers[k]`` holds one ``(weight_ih, weight_hh, bias_ih + bias_hh)`` per direction (forward, then backward);
    a layer's input is the previous layer's directions side by side. The gates are PyTorch's: input, forget, cell,
    output, in that order of the weights' rows.
    """
    outputs = [s.astype(np.float64) for s in sequences]
    for directions in layers:
        results = []
        for index, (weight_ih, weight_hh, bias) in enumerate(directions):
            backward = index == 1
            inputs = [o[::-1] for o in outputs] if backward else outputs
            states = _lstm_direction(inputs, weight_ih, weight_hh, bias)
            results.append([s[::-1] for s in states] if backward else states)
        outputs = [np.concatenate(parts, axis=1) for parts in zip(*results)]
    return [o.astype(np.float32) for o in outputs]


def _lstm_direction(
    sequences: Sequence[np.ndarray], weight_ih: np.ndarray, weight_hh: np.ndarray, bias: np.ndarray
) -> list[np.ndarray]:
    """One direction of one LSTM layer over left-aligned sequences of different lengths (float64)."""
    lengths = np.array([len(s) for s in sequences])
    hidden = weight_hh.shape[1]
    steps, rows = int(lengths.max()), len(sequences)
    inputs = np.zeros((rows, steps, sequences[0].shape[1]))
    for row, sequence in enumerate(sequences):
        inputs[row, : len(sequence)] = sequence
    projected = inputs @ weight_ih.T + bias  # every step's input part at once
    h = np.zeros((rows, hidden))
    c = np.zeros((rows, hidden))
    out = np.zeros((rows, steps, hidden))
    for t in range(steps):
        gates = projected[:, t] + h @ weight_hh.T
        i = 1.0 / (1.0 + np.exp(-gates[:, :hidden]))
        f = 1.0 / (1.0 + np.exp(-gates[:, hidden : 2 * hidden]))
        g = np.tanh(gates[:, 2 * hidden : 3 * hidden])
        o = 1.0 / (1.0 + np.exp(-gates[:, 3 * hidden :]))
        active = (lengths > t)[:, None]
        c = np.where(active, f * c + i * g, c)
        h = np.where(active, o * np.tanh(c), h)
        out[:, t] = h
    return [out[row, :n] for row, n in enumerate(lengths)]
