"""Flair's words of a text, without Flair: the first piece of lean serving (issue 25).

A Flair ``Sentence`` made from a string (its default tokenizer) does three things, reproduced here step by step
so that a model can be served without importing Flair (4-6 s of imports, and torch with it):

1. cleans the text (``Sentence._handle_problem_characters``): zero-width characters, U+FE0F, U+FEFF and the
   line and paragraph separators are removed; characters U+0080-U+0099 are read as the Windows-1252 bytes they
   usually are (``\\x93`` becomes a quotation mark), or removed where Windows-1252 has none;
2. splits it into words with segtok (``SegtokTokenizer.run_tokenize``): ``split_single`` into sentences, then
   ``split_contractions(word_tokenizer(sentence))``, empty words dropped;
3. places each word at its first occurrence at or after the end of the previous one (``text.index``), in the
   cleaned text.

:func:`flair_words` returns ``(word, start, end)`` per word, offsets in the cleaned text (as Flair's
``Token.start_position`` / ``end_position``); ``tests/test_words.py`` compares it with Flair's own ``Sentence``
on real corpora and on text built to be awkward.
"""

from __future__ import annotations

import re

__all__ = ["REMOVED_CHARACTERS", "clean_text", "flair_words"]

_REMOVED = ("\u200c", "\u200b", "\ufe0f", "\ufeff", "\u2028", "\u2029")
_WINDOWS_1252_RANGE = re.compile(r"[\u0080-\u0099]")
#: every character :func:`clean_text` deletes (the others it touches become one character each, so offsets into the
#: cleaned text map back by skipping these): the zero-width ones and the C1 controls Windows-1252 has no character for
REMOVED_CHARACTERS = frozenset(_REMOVED) | frozenset(
    chr(c) for c in range(0x80, 0x9A) if not bytes([c]).decode("windows-1252", errors="ignore")
)


def _from_windows_1252(match: re.Match) -> str:
    try:
        return bytes([ord(match.group(0))]).decode("windows-1252")
    except UnicodeDecodeError:  # no character at that code point: removed, as Flair does
        return ""


def clean_text(text: str) -> str:
    """``text`` as Flair's ``Sentence`` keeps it (step 1 of the module docstring)."""
    for character in _REMOVED:
        text = text.replace(character, "")
    return _WINDOWS_1252_RANGE.sub(_from_windows_1252, text)


def flair_words(text: str) -> list[tuple[str, int, int]]:
    """The words Flair's ``Sentence(text)`` holds, each with its start and end in :func:`clean_text`'s text."""
    from segtok.segmenter import split_single
    from segtok.tokenizer import split_contractions, word_tokenizer

    text = clean_text(text)
    words = [w for sentence in split_single(text) for w in split_contractions(word_tokenizer(sentence)) if w]
    placed = []
    offset = 0
    for word in words:
        start = text.index(word, offset)
        offset = start + len(word)
        placed.append((word, start, offset))
    return placed
