"""Hidden states back into the vectors Flair's embeddings give, in numpy: the arithmetic of
``TransformerEmbeddings.forward`` for one sentence (and of ``exporter.runtime.fastpath``, which is Flair's).

- layers: the exported outputs in ``layer_indexes`` order, averaged (``layer_mean``) or concatenated;
- windows: a long sentence's overflow windows joined as Flair's ``combine_strided_tensors`` joins them;
- words: ``first``, ``last``, ``first_last`` or ``mean`` of each word's subtokens (a word without a subtoken: zeros);
- documents: ``cls`` (the first subtoken, or the last where the tokenizer puts no class token first), ``mean``,
  ``max`` over the subtokens that are not padding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["combine_windows", "document_vector", "select_layers", "word_vectors"]


def select_layers(outputs: Sequence[np.ndarray], positions: Sequence[int], layer_mean: bool) -> np.ndarray:
    """One row's states ``(length, E)`` from the exported layers: Flair's layer selection."""
    if len(positions) == 1:
        return outputs[positions[0]]
    chosen = np.stack([outputs[p] for p in positions])
    if layer_mean:
        return chosen.mean(axis=0, dtype=chosen.dtype)
    return np.concatenate(list(chosen), axis=-1)


def combine_windows(
    states: Sequence[np.ndarray], values: Sequence[np.ndarray], half_stride: int, max_length: int, fill: int
) -> tuple[np.ndarray, np.ndarray]:
    """A sentence's windows (states ``(len_k, E)``, per-position ``values`` such as word ids) joined into one
    sequence: the first window's start, every window's middle, the last window's end (positions past a window's
    length are padding: zeros, ``fill``)."""
    if len(states) == 1:
        return states[0], values[0]

    def padded(array: np.ndarray, value: float | int) -> np.ndarray:
        out = np.full((max_length, *array.shape[1:]), value, dtype=array.dtype)
        out[: len(array)] = array
        return out

    full_states = [padded(s, 0) for s in states]
    full_values = [padded(v, fill) for v in values]
    start, middle, end = (
        slice(0, half_stride + 1),
        slice(half_stride + 1, max_length - 1 - half_stride),
        slice(max_length - half_stride - 1, None),
    )
    joined_states = [full_states[0][start], *(s[middle] for s in full_states), full_states[-1][end]]
    joined_values = [full_values[0][start], *(v[middle] for v in full_values), full_values[-1][end]]
    return np.concatenate(joined_states), np.concatenate(joined_values)


def word_vectors(states: np.ndarray, word_ids: np.ndarray, words: int, pooling: str) -> np.ndarray:
    """Each word's vector ``(words, E)`` (``2E`` for ``first_last``) from its subtokens' states."""
    width = states.shape[1]
    valid = word_ids >= 0
    if pooling == "mean":
        sums = np.zeros((words, width), dtype=states.dtype)
        np.add.at(sums, word_ids[valid], states[valid])
        counts = np.zeros(words, dtype=states.dtype)
        np.add.at(counts, word_ids[valid], np.ones(int(valid.sum()), dtype=states.dtype))
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(counts[:, None] > 0, sums / counts[:, None], np.zeros_like(sums))
        return np.nan_to_num(means)
    gain = word_ids[1:] != word_ids[:-1]
    first = np.concatenate([[True], gain]) & valid
    last = np.concatenate([gain, [True]]) & valid
    out = np.zeros((words, width * (2 if pooling == "first_last" else 1)), dtype=states.dtype)
    if pooling in ("first", "first_last"):
        out[word_ids[first], :width] = states[first]
    if pooling == "last":
        out[word_ids[last]] = states[last]
    if pooling == "first_last":
        out[word_ids[last], width:] = states[last]
    return out


def document_vector(states: np.ndarray, length: int, pooling: str, initial_cls_token: bool) -> np.ndarray:
    """A document's vector from its states ``(positions, E)`` and its subtoken count ``length``."""
    if pooling == "cls":
        return states[0] if initial_cls_token else states[length - 1]
    if pooling == "mean":
        return states[:length].mean(axis=0, dtype=states.dtype)
    return states[:length].max(axis=0)
