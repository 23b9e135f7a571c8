"""Taggers of the shapes of Flair's published classic models, built offline with random weights, for the
benchmark (speed does not depend on the weights; fidelity is measured on a trained model, see the docs).

- ``ner-english``: 100-d word embeddings, forward and backward 1-layer character LMs of hidden size 2048 over
  100-d character embeddings, BiLSTM (256) + CRF, BIOES span tags (PER, LOC, ORG, MISC);
- ``ner-english-fast``: the same with character LMs of hidden size 1024.

The character dictionary is the 275 most frequent characters of Flair's news LMs' shape: printable ASCII,
Latin-1 letters and common punctuation; the word vocabulary is the words of the given sentences.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from exporter.errors import ConfigError

__all__ = ["SHAPES", "build_shape"]

#: shape name -> character LM hidden size
SHAPES: Mapping[str, int] = {"ner-english": 2048, "ner-english-fast": 1024}

_WORD_DIM = 100
_CHAR_DIM = 100
_TAGGER_HIDDEN = 256


def _characters() -> Any:
    from flair.data import Dictionary

    chars = Dictionary(add_unk=True)
    for code in [*range(32, 127), *range(160, 384)]:
        chars.add_item(chr(code))
        if len(chars) >= 275:
            break
    return chars


def build_shape(shape: str, texts: Iterable[str], seed: int = 0) -> Any:
    """A random ``SequenceTagger`` of the published model ``shape`` (one of :data:`SHAPES`), its word
    vocabulary the words of ``texts``."""
    import flair
    import torch
    from flair.data import Dictionary
    from flair.embeddings import FlairEmbeddings, StackedEmbeddings, WordEmbeddings
    from flair.models import LanguageModel, SequenceTagger

    if shape not in SHAPES:
        raise ConfigError(f"Unknown model shape {shape!r}; choose one of {', '.join(SHAPES)}.", option="shape")
    flair.set_seed(seed)
    vocab: dict[str, int] = {}
    for text in texts:
        for word in text.split():
            vocab.setdefault(word, len(vocab))
            vocab.setdefault(word.lower(), len(vocab))
    words = WordEmbeddings(None, vocab=vocab, embedding_length=_WORD_DIM, name="words")
    with torch.no_grad():
        words.embedding.weight.normal_(std=0.3)
    hidden = SHAPES[shape]
    lms = [
        FlairEmbeddings(
            LanguageModel(_characters(), is_forward_lm=forward, hidden_size=hidden, nlayers=1, embedding_size=_CHAR_DIM)
        )
        for forward in (True, False)
    ]
    tags = Dictionary(add_unk=False)
    for label in ("PER", "LOC", "ORG", "MISC"):
        tags.add_item(label)
    tags.span_labels = True
    tagger = SequenceTagger(
        embeddings=StackedEmbeddings([words, *lms]),
        tag_dictionary=tags,
        tag_type="ner",
        hidden_size=_TAGGER_HIDDEN,
        use_crf=True,
        use_rnn=True,
    )
    with torch.no_grad():  # a random model that still predicts some entities
        for p in tagger.linear.parameters():
            p.mul_(8.0)
    return tagger.eval()
