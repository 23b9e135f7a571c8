"""The sentences of a text as Flair makes them, and the parts of Flair's data API that answers are read from.

:func:`documents` is :func:`flair_documents` (its twin beside it, which the Flair path calls) without Flair: one
sentence per text (a document of its own), or,
with ``split_sentences``, Flair's ``SegtokSentenceSplitter`` (segtok's ``split_multi``, each sentence placed at its
first occurrence after the previous one, linked to its neighbours). Words and offsets come from
:func:`exporter.runtime.words.flair_words`. :class:`Sentence`, :class:`Token`, :class:`Span` and :class:`Label`
offer what ``mlflow_flavor.pyfunc`` reads of Flair's (``tokens``, ``start_position``, ``get_spans``, ``get_labels``,
``get_label``, ``idx``), nothing more.
"""

from __future__ import annotations

from typing import Any

from exporter.runtime.words import flair_words

__all__ = ["Label", "Sentence", "Span", "Token", "documents", "flair_documents"]


class Label:
    """A predicted label: its value, score and what it labels (a sentence, span or token)."""

    __slots__ = ("data_point", "score", "value")

    def __init__(self, data_point: Any, value: str, score: float) -> None:
        self.data_point, self.value, self.score = data_point, value, score


class _Labeled:
    __slots__ = ("labels",)

    def __init__(self) -> None:
        self.labels: dict[str, list[Label]] = {}

    def add_label(self, label_type: str, value: str, score: float) -> None:
        self.labels.setdefault(label_type, []).append(Label(self, value, score))

    def get_labels(self, label_type: str) -> list[Label]:
        return list(self.labels.get(label_type, ()))

    def get_label(self, label_type: str) -> Label:
        return self.labels[label_type][0]


class Token(_Labeled):
    """A word: ``idx`` counts from 1 as Flair's; offsets into the sentence's cleaned text."""

    __slots__ = ("end_position", "idx", "start_position", "text")

    def __init__(self, text: str, idx: int, start: int, end: int) -> None:
        super().__init__()
        self.text, self.idx, self.start_position, self.end_position = text, idx, start, end


class Span(_Labeled):
    """Consecutive tokens with a label."""

    __slots__ = ("tokens",)

    def __init__(self, tokens: list[Token]) -> None:
        super().__init__()
        self.tokens = tokens

    @property
    def start_position(self) -> int:
        return self.tokens[0].start_position

    @property
    def end_position(self) -> int:
        return self.tokens[-1].end_position


class Sentence(_Labeled):
    """One sentence: its tokens, where it starts in the caller's text, its neighbours in the document."""

    __slots__ = ("next_sentence", "previous_sentence", "spans", "start_position", "tokens")

    def __init__(self, text: str, start_position: int = 0) -> None:
        super().__init__()
        self.tokens = [Token(word, i + 1, start, end) for i, (word, start, end) in enumerate(flair_words(text))]
        self.start_position = start_position
        self.previous_sentence: Sentence | None = None
        self.next_sentence: Sentence | None = None
        self.spans: dict[str, list[Span]] = {}

    @classmethod
    def from_words(cls, words: list[str]) -> Sentence:
        """A sentence of words as given (Flair's ``Sentence(list_of_words)``): placed one space apart."""
        sentence = cls("")
        position = 0
        for i, word in enumerate(words):
            sentence.tokens.append(Token(word, i + 1, position, position + len(word)))
            position += len(word) + 1
        return sentence

    def __len__(self) -> int:
        return len(self.tokens)

    def add_span(self, label_type: str, first: int, last: int, value: str, score: float) -> None:
        """Label the tokens ``first`` to ``last`` (indexes from 0, inclusive) as a span."""
        span = Span(self.tokens[first : last + 1])
        span.add_label(label_type, value, score)
        self.spans.setdefault(label_type, []).append(span)

    def get_spans(self, label_type: str) -> list[Span]:
        return sorted(self.spans.get(label_type, ()), key=lambda s: (s.tokens[0].idx, s.tokens[-1].idx))

    def get_labels(self, label_type: str) -> list[Label]:
        """The sentence's own labels, then its tokens' (Flair's order for what the pyfunc reads)."""
        own = list(self.labels.get(label_type, ()))
        return own + [label for token in self.tokens for label in token.labels.get(label_type, ())]

    def left_context(self, length: int) -> list[Token]:
        """Flair's ``Sentence.left_context``: the last ``length`` tokens of the sentences before this one."""
        context: list[Token] = []
        sentence: Sentence | None = self
        while len(context) < length:
            sentence = sentence.previous_sentence if sentence else None
            if sentence is None:
                break
            context = sentence.tokens + context
        return context[-length:]

    def right_context(self, length: int) -> list[Token]:
        """Flair's ``Sentence.right_context``: the first ``length`` tokens of the sentences after this one."""
        context: list[Token] = []
        sentence: Sentence | None = self
        while len(context) < length:
            sentence = sentence.next_sentence if sentence else None
            if sentence is None:
                break
            context += sentence.tokens
        return context[:length]


def documents(text: str, split_sentences: bool) -> list[Sentence]:
    """The sentences of one input text, linked as one document (nothing for a blank text)."""
    if not text.strip():
        return []
    if not split_sentences:
        return [Sentence(text)]
    from segtok.segmenter import split_multi

    sentences = []
    offset = 0
    for piece in split_multi(text):
        offset = text.index(piece, offset)
        sentences.append(Sentence(piece, start_position=offset))
        offset += len(piece)
    for before, after in zip(sentences, sentences[1:]):
        before.next_sentence, after.previous_sentence = after, before
    return sentences


def flair_documents(text: str, split_sentences: bool) -> list[Any]:
    """:func:`documents` made by Flair, for the Flair path: the sentences of one input text, linked as one document
    and to nothing else (nothing for a blank text).

    Flair links the sentences of a ``predict`` call whose context is not set (for models with ``use_context``):
    each text's sentences are marked as a document of their own, so that a text's entities never depend on the texts
    it was sent or batched with. Flair is imported here only: the lean path never calls this.
    """
    from flair.data import Sentence as FlairSentence

    if not text.strip():
        return []
    if split_sentences:
        from flair.splitter import SegtokSentenceSplitter

        return SegtokSentenceSplitter().split(text)  # linked in order, start_position into ``text``
    sentence = FlairSentence(text)
    sentence._has_context = True  # a document of one sentence: no neighbours
    return [sentence]
