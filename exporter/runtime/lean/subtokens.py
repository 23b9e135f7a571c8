"""Each sentence's subtoken rows, as Flair's ``TransformerEmbeddings.prepare_tensors`` makes them, with the
``tokenizers`` package instead of transformers.

Flair hands the tokenizer each sentence's words (``is_split_into_words``) after adding its context: with
``context_length`` (FLERT), up to that many words of the sentences before and after it in its document, each side
closed by the ``[FLERT]`` token where ``use_context_separator`` is set. With ``truncate`` the tokenizer cuts at the
model's maximum length, and with ``allow_long_sentences`` it returns the overflowing parts as further windows that
overlap by ``stride`` subtokens. Each subtoken's word id counts from the sentence's first word (context and special
tokens: -100). transformers' fast tokenizers do exactly this through the Rust tokenizer this module drives itself
(``enable_truncation(max_length, stride, "longest_first", side)``, ``encode_batch(..., is_pretokenized=True)``,
overflowing encodings after their first).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from exporter.errors import BundleError, MissingDependencyError
from exporter.runtime.lean.text import Sentence

__all__ = ["SENTENCE_BOUNDARY_TAG", "Rows", "SubtokenRows"]

#: Flair's context separator token (``flair.embeddings.transformer.SENTENCE_BOUNDARY_TAG``)
SENTENCE_BOUNDARY_TAG = "[FLERT]"
#: the word id of a subtoken that belongs to no word of the sentence (Flair's)
NO_WORD = -100


@dataclass
class Rows:
    """One sentence's encoder rows: ``ids[k]`` and ``word_ids[k]`` per window (lists of equal length)."""

    ids: list[list[int]]
    word_ids: list[list[int]]


class SubtokenRows:
    """Turns sentences into encoder rows; thread-safe (the Rust tokenizer's settings are fixed at construction)."""

    def __init__(self, tokenizer_file: Path, spec: dict[str, Any]) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError as e:
            raise MissingDependencyError("tokenizers", purpose="lean serving") from e
        try:
            self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        except Exception as e:  # the Rust tokenizer's own error types
            raise BundleError(f"The bundle's tokenizer {tokenizer_file.name} cannot be read: {e}") from e
        self.context_length = int(spec["context_length"])
        self.use_context_separator = bool(spec["use_context_separator"])
        self.allow_long_sentences = bool(spec["allow_long_sentences"])
        self.tokenizer.no_padding()
        if spec["truncate"]:
            self.tokenizer.enable_truncation(
                int(spec["model_max_length"]),
                stride=int(spec["stride"]),
                strategy="longest_first",
                direction=spec.get("truncation_side", "right"),
            )
        else:
            self.tokenizer.no_truncation()

    def _words(self, sentence: Sentence) -> tuple[list[str], int]:
        """The words the tokenizer gets for ``sentence`` (its context around it) and how many come before it."""
        left: list[str] = []
        right: list[str] = []
        if self.context_length > 0:
            left = [t.text for t in sentence.left_context(self.context_length)]
            right = [t.text for t in sentence.right_context(self.context_length)]
            if self.use_context_separator:
                left.append(SENTENCE_BOUNDARY_TAG)
                right.insert(0, SENTENCE_BOUNDARY_TAG)
        return [*left, *(t.text for t in sentence.tokens), *right], len(left)

    def rows(self, sentences: Sequence[Sentence]) -> list[Rows]:
        """The rows of each sentence (every sentence holds at least one word)."""
        words, offsets = zip(*(self._words(s) for s in sentences))
        encodings = self.tokenizer.encode_batch(list(words), is_pretokenized=True, add_special_tokens=True)
        result = []
        for encoding, offset, sentence in zip(encodings, offsets, sentences):
            windows = [encoding, *encoding.overflowing] if self.allow_long_sentences else [encoding]
            length = len(sentence)
            result.append(
                Rows(
                    ids=[list(w.ids) for w in windows],
                    word_ids=[
                        [NO_WORD if v is None or v < offset or v >= offset + length else v - offset for v in w.word_ids]
                        for w in windows
                    ],
                )
            )
        return result


def as_array(rows: list[list[int]], width: int, fill: int) -> np.ndarray:
    """Rows of ints as one int64 array ``width`` wide, the rest ``fill``."""
    out = np.full((len(rows), width), fill, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out
