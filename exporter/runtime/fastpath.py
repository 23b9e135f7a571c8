"""A leaner path around the accelerated encoder: the same arithmetic as Flair, less Python.

Once the encoder is fast, Flair's code around it decides the speed-up. Two places dominate:

- ``TransformerEmbeddings.forward`` recombines strided windows into a tensor padded to the model's
  maximum length (512 for most models) for every batch, even when no sentence was split, and pools
  subtokens with a Python loop per sentence. :func:`pool_token_embeddings` skips the recombination when
  no sentence overflowed and scatters first/last subtokens to their words in one indexing operation.
- ``ViterbiDecoder.decode`` turns every tag and confidence into Python values one tensor element at a
  time. :class:`FastViterbiDecoder` runs the identical dynamic programme and converts with ``tolist``.

Both produce bit-identical results to Flair's code (the parity tests compare them on every pooling mode
and on sentences beyond the maximum length); anything else falls back to Flair's own implementation.
"""

from __future__ import annotations

import types
from typing import Any

import torch
from flair.embeddings.transformer import fill_mean_token_embeddings
from flair.models.sequence_tagger_utils.viterbi import ViterbiDecoder

from exporter.runtime.lean.heads import viterbi_paths

__all__ = ["FastViterbiDecoder", "combine_windows", "pool_token_embeddings", "skip_padding_rows"]


def _scatter_words(out: torch.Tensor, hidden: torch.Tensor, mask: torch.Tensor, word_ids: torch.Tensor) -> None:
    rows, cols = mask.nonzero(as_tuple=True)
    out[rows, word_ids[rows, cols]] = hidden[rows, cols]


def combine_windows(
    hidden_states: torch.Tensor,
    overflow_to_sample_mapping: torch.Tensor,
    half_stride: int,
    max_length: int,
    default_value: int,
) -> torch.Tensor:
    """Flair's ``combine_strided_tensors`` (a long sentence's overflow windows back into one sequence),
    writing each window's part straight into the result: the same values, without Flair's intermediate
    copies (a boolean-indexed copy of every window, a reshape and a concatenation per sentence), which
    took most of the memory for long documents (about 500 MB for one text of 50,000 words on MiniLM)."""
    mapping = overflow_to_sample_mapping.tolist()
    sentence_count = int(max(mapping)) + 1
    windows: list[list[int]] = [[] for _ in range(sentence_count)]
    for row, sentence in enumerate(mapping):
        windows[int(sentence)].append(row)
    token_count = max_length + (max_length - 2) * (max(len(w) for w in windows) - 1)
    shape = (sentence_count, token_count, *hidden_states.shape[2:])
    combined = torch.full(shape, default_value, dtype=hidden_states.dtype)
    start_end = half_stride + 1
    mid_end = max_length - 1 - half_stride
    for sentence, rows in enumerate(windows):
        target = combined[sentence]
        if len(rows) == 1:
            target[: hidden_states.size(1)] = hidden_states[rows[0]]
            continue
        target[:start_end] = hidden_states[rows[0], :start_end]
        position = start_end
        for row in rows:
            part = hidden_states[row, start_end:mid_end]
            target[position : position + part.size(0)] = part
            position += part.size(0)
        end = hidden_states[rows[-1], max_length - half_stride - 1 :]
        target[position : position + end.size(0)] = end
    return combined


def pool_token_embeddings(
    embedding: Any, hidden_states: torch.Tensor, overflow_to_sample_mapping, word_ids, token_lengths
):
    """Flair's long-sentence recombination and subtoken pooling for token embeddings, without the waste."""
    overflowed = (
        embedding.allow_long_sentences
        and overflow_to_sample_mapping is not None
        and overflow_to_sample_mapping.numel() > 0
        and int(overflow_to_sample_mapping[-1]) + 1 != overflow_to_sample_mapping.numel()
    )
    if overflowed:
        max_length = embedding.tokenizer.model_max_length
        hidden_states = combine_windows(hidden_states, overflow_to_sample_mapping, embedding.stride // 2, max_length, 0)
        word_ids = combine_windows(word_ids, overflow_to_sample_mapping, embedding.stride // 2, max_length, -100)
    out = torch.zeros(
        word_ids.shape[0],
        int(token_lengths.max()),
        embedding.embedding_length_internal,
        dtype=hidden_states.dtype,
    )
    pooling = embedding.subtoken_pooling
    if pooling == "mean":
        return fill_mean_token_embeddings(out, hidden_states, word_ids, token_lengths)
    valid = word_ids >= 0
    true_column = torch.ones_like(word_ids[:, :1], dtype=torch.bool)
    gain = word_ids[:, 1:] != word_ids[:, :-1]
    first = torch.cat([true_column, gain], dim=1) & valid
    last = torch.cat([gain, true_column], dim=1) & valid
    width = hidden_states.shape[2]
    if pooling == "first":
        _scatter_words(out, hidden_states, first, word_ids)
    elif pooling == "last":
        _scatter_words(out, hidden_states, last, word_ids)
    else:  # first_last
        _scatter_words(out[:, :, :width], hidden_states, first, word_ids)
        _scatter_words(out[:, :, width:], hidden_states, last, word_ids)
    return out


class FastViterbiDecoder(ViterbiDecoder):
    """Flair's Viterbi decoding, with the per-element Python conversions done in bulk."""

    @classmethod
    def replacing(cls, decoder: ViterbiDecoder) -> FastViterbiDecoder:
        return cls(decoder.tag_dictionary)

    def decode(self, features_tuple: tuple, probabilities_for_all_classes: bool, sentences: list) -> tuple:
        if probabilities_for_all_classes:
            return super().decode(features_tuple, probabilities_for_all_classes, sentences)
        features, lengths, transitions = features_tuple
        lengths_list = [int(n) for n in lengths]
        # numpy for the per-step work: the same float32 sums and first-maximum choices as torch.max,
        # without torch's per-call dispatch cost on these tiny arrays (a fixed cost per batch)
        decoded, scores = viterbi_paths(
            features.detach().cpu().numpy(),
            lengths_list,
            transitions[self.stop_tag].detach().cpu().numpy(),
            self.start_tag,
            self.stop_tag,
        )
        confidences = torch.max(torch.softmax(torch.from_numpy(scores), dim=2), dim=2).values
        items = [self.tag_dictionary.get_item_for_index(i) for i in range(self.tagset_size)]
        tags = [
            [(items[tag], conf) for tag, conf in zip(tag_seq[:n], conf_seq[:n])]
            for tag_seq, conf_seq, n in zip(decoded.tolist(), confidences.tolist(), lengths_list)
        ]
        return tags, []


def skip_padding_rows(linear: torch.nn.Linear) -> None:
    """Make ``linear`` (a tagger's ``embedding2nn``) multiply only the rows that hold a token.

    Flair pads every sentence of a batch with rows of zeros up to the batch's longest sentence in tokens and
    reprojects all of them; a row of zeros comes out of the layer as its bias, which is what the padding rows get
    here without the product. For the classic taggers (a 4,196-wide stack of word and character-LM embeddings,
    reprojected by a 4,196 x 4,196 layer) that product cost as much as the int8 language models themselves.
    Bound to this instance only: the module, its state dict and every other tagger stay Flair's.
    """
    linear.forward = types.MethodType(_linear_on_real_rows, linear)


def _linear_on_real_rows(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    if x.dim() < 2:
        return torch.nn.functional.linear(x, self.weight, self.bias)
    flat = x.reshape(-1, x.shape[-1])
    real = flat.any(dim=1)
    count = int(real.sum())
    if count == flat.shape[0]:
        return torch.nn.functional.linear(x, self.weight, self.bias)
    if self.bias is not None:
        out = self.bias.expand(flat.shape[0], -1).clone()
    else:
        out = flat.new_zeros((flat.shape[0], self.out_features))
    if count:
        out[real] = torch.nn.functional.linear(flat[real], self.weight, self.bias)
    return out.view(*x.shape[:-1], self.out_features)
