"""Flair's contextual string embeddings (``FlairEmbeddings``) on an exported character language model.

Flair's ``FlairEmbeddings`` turns each sentence into a string (the tokenized string, words joined by one
space, or the plain string; lower-cased for ``is_lower`` models), reverses it for a backward model, puts the
language model's start marker (its ``document_delimiter``, ``"\\n"``) before it and one space after it, pads
every string of the batch with spaces to the longest, and runs the character LSTM over the batch in chunks of
``chars_per_chunk`` characters, the hidden state carried from chunk to chunk. A word's embedding is the LSTM
output after its last character (``with_whitespace``: after the space that follows it), read at offsets that
follow each token's text and its whitespace.

:class:`CharLMEmbeddings` keeps those rules exactly and changes three things around them:

- the LSTM is a :data:`CharLM` (an ONNX Runtime session, a TorchScript module): ``(chars, state) -> (outputs,
  state)`` on numpy arrays, ``chars`` of shape ``[steps, rows]``;
- **length buckets over characters**: the strings are run in groups of similar length, each padded (with
  Flair's padding character, after the end marker) to its own longest string. A step of an LSTM reads all its
  weights whatever the number of rows, so a group costs its width times a fixed cost per step plus its rows
  (:func:`exporter.runtime.buckets.plan_groups` with that cost). The padding comes after every position Flair
  reads, and an LSTM runs left to right, so no row's outputs change;
- **bounded memory**: of each chunk's outputs only the rows at word offsets are kept (Flair keeps the LSTM
  output of every character of every sentence until the batch is done: 8 KB a character for a 2048-wide
  model, 1 GB for a text of 20,000 words).

A bundle's ``model.pt`` names this class (:data:`EMBEDDINGS_NAME`) where Flair's names ``FlairEmbeddings``,
with Flair's own parameters (the character dictionary, the flags) and the file of the exported language model;
Flair's loader builds it through its registry of embedding classes, inside :func:`char_lms_bound`, which gives
it the loaded language models by file name.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from flair.data import Sentence
from flair.embeddings import TokenEmbeddings
from flair.embeddings.base import EMBEDDING_CLASSES

from exporter.errors import BundleError
from exporter.runtime.buckets import plan_groups

__all__ = [
    "EMBEDDINGS_NAME",
    "CharLM",
    "CharLMEmbeddings",
    "char_lms_bound",
    "lm_params",
]

#: the class name a bundle's model.pt gives the embeddings (Flair's registry of embedding classes knows it)
EMBEDDINGS_NAME = "FlairMlflowCharLMEmbeddings"

#: ``(chars [steps, rows] int64, state or None) -> (outputs [steps, rows, width] float32, state)``; ``None``
#: starts from Flair's zero state; the state returned is passed back with the next chunk of the same rows.
CharLM = Callable[[np.ndarray, Any], tuple[np.ndarray, Any]]

#: the language models of the bundle being loaded, by file name (set by :func:`char_lms_bound`)
_BOUND: contextvars.ContextVar[Mapping[str, CharLM] | None] = contextvars.ContextVar("char_lms", default=None)


@contextlib.contextmanager
def char_lms_bound(lms: Mapping[str, CharLM]) -> Iterator[None]:
    """Within the block, Flair's loader builds :class:`CharLMEmbeddings` around ``lms`` (by file name)."""
    token = _BOUND.set(lms)
    try:
        yield
    finally:
        _BOUND.reset(token)


def lm_params(embeddings: Any) -> dict[str, Any]:
    """What the runtime needs of a Flair ``FlairEmbeddings`` besides its language model's weights: Flair's own
    parameters (``to_params``) and the flag Flair does not save (``with_whitespace``)."""
    params = embeddings.to_params()
    params["with_whitespace"] = bool(embeddings.with_whitespace)
    return params


class CharLMEmbeddings(TokenEmbeddings):
    """``FlairEmbeddings`` whose character language model is a :data:`CharLM` (no torch parameters)."""

    embeddings_name = EMBEDDINGS_NAME

    def __init__(
        self,
        params: Mapping[str, Any],
        lm: CharLM,
        *,
        step_cost: float = 8.0,
        buckets: bool = True,
        max_rows: int = 0,
    ) -> None:
        super().__init__()
        model_params = params["model_params"]
        dictionary = model_params["dictionary"]
        self.params = dict(params)
        self.lm = lm
        self.name = params["name"]
        self.is_forward_lm = bool(model_params["is_forward_lm"])
        self.with_whitespace = bool(params.get("with_whitespace", True))
        self.tokenized_lm = bool(params.get("tokenized_lm", True))
        self.is_lower = bool(params.get("is_lower", False))
        self.chars_per_chunk = int(params.get("chars_per_chunk", 512))
        self.start_marker = model_params.get("document_delimiter") or "\n"
        self.end_marker = " "
        self.static_embeddings = True
        self.fine_tune = False
        self.step_cost = float(step_cost)
        self.buckets = buckets
        self.max_rows = int(max_rows)
        # Flair's Dictionary.get_idx_for_items: an unknown character reads as index 0
        self._index = {item.decode("utf-8"): i for i, item in enumerate(dictionary.idx2item)}
        self._padding = self._index.get(" ", 0)
        self._length = int(model_params.get("nout") or model_params["hidden_size"])
        self.eval()

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> CharLMEmbeddings:
        bound = _BOUND.get()
        lm_file = params.get("lm_file")
        if bound is None or lm_file not in bound:
            raise BundleError(
                f"The embeddings {params.get('name')!r} run a language model exported by flair-mlflow "
                f"({lm_file}): load the bundle with exporter.load_bundle or mlflow_flavor.load_model, "
                "not with Flair's own loader."
            )
        lm = bound[lm_file]
        return cls(
            params,
            lm,
            step_cost=getattr(lm, "step_cost", 8.0),
            buckets=getattr(lm, "buckets", True),
            max_rows=getattr(lm, "max_rows", 0),
        )

    def to_params(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def embedding_length(self) -> int:
        return self._length

    def __str__(self) -> str:
        return self.name

    def strings(self, sentences: Sequence[Sentence]) -> list[str]:
        """The text Flair's ``FlairEmbeddings`` reads of each sentence."""
        texts = [s.to_tokenized_string() if self.tokenized_lm else s.to_plain_string() for s in sentences]
        return [t.lower() for t in texts] if self.is_lower else texts

    def offsets(self, sentence: Sentence, text: str) -> np.ndarray:
        """Where Flair reads each token's embedding in the sentence's marked (and, backward, reversed) string."""
        start = len(self.start_marker)
        forward, backward = start, len(text) + start
        shift = 0 if self.with_whitespace else 1
        positions = []
        for token in sentence.tokens:
            forward += len(token.text)
            positions.append((forward if self.is_forward_lm else backward) - shift)
            if self.tokenized_lm or token.whitespace_after > 0:
                forward += 1
                backward -= 1
            backward -= len(token.text)
        return np.asarray(positions, dtype=np.int64)

    def char_ids(self, text: str) -> np.ndarray:
        """The marked string's character indexes (reversed text for a backward model)."""
        body = text if self.is_forward_lm else text[::-1]
        marked = f"{self.start_marker}{body}{self.end_marker}"
        index = self._index
        return np.fromiter((index.get(c, 0) for c in marked), dtype=np.int64, count=len(marked))

    def groups(self, lengths: Sequence[int]) -> list[list[int]]:
        """Rows in groups of similar length: a group costs its width times (``step_cost`` + its rows); groups of
        at most ``max_rows`` rows when it is above 0 (with 1, every sentence runs alone, so an int8 language
        model, which takes its activation scales per call, gives it the same numbers in any batch)."""
        if not self.buckets or len(lengths) < 2:
            groups = [sorted(range(len(lengths)), key=lambda i: -lengths[i])]
        else:
            step_cost = self.step_cost
            groups = plan_groups(lengths, 1, group_cost=lambda rows, width: width * (step_cost + rows))
        if self.max_rows > 0:
            groups = [g[i : i + self.max_rows] for g in groups for i in range(0, len(g), self.max_rows)]
        return groups

    def _add_embeddings_internal(self, sentences: list[Sentence]) -> list[Sentence]:
        texts = self.strings(sentences)
        ids = [self.char_ids(t) for t in texts]
        offsets = [self.offsets(s, t) for s, t in zip(sentences, texts)]
        vectors = [np.empty((len(o), self._length), dtype=np.float32) for o in offsets]
        for group in self.groups([len(i) for i in ids]):
            self._run_group(group, ids, offsets, vectors)
        for sentence, rows in zip(sentences, vectors):
            table = torch.from_numpy(rows)
            for token, vector in zip(sentence.tokens, table):
                token.set_embedding(self.name, vector)
        return sentences

    def _run_group(
        self, group: list[int], ids: list[np.ndarray], offsets: list[np.ndarray], vectors: list[np.ndarray]
    ) -> None:
        """One padded matrix of the group's strings, run chunk by chunk; keeps only the outputs at offsets."""
        width = max(len(ids[i]) for i in group)
        chars = np.full((width, len(group)), self._padding, dtype=np.int64)
        for column, i in enumerate(group):
            chars[: len(ids[i]), column] = ids[i]
        state = None
        for begin in range(0, width, self.chars_per_chunk):
            end = min(begin + self.chars_per_chunk, width)
            outputs, state = self.lm(np.ascontiguousarray(chars[begin:end]), state)
            for column, i in enumerate(group):
                inside = (offsets[i] >= begin) & (offsets[i] < end)
                if inside.any():
                    vectors[i][inside] = outputs[offsets[i][inside] - begin, column]


# Flair's loader finds embedding classes by name in this registry (``flair.embeddings.base.load_embeddings``)
EMBEDDING_CLASSES[EMBEDDINGS_NAME] = CharLMEmbeddings
