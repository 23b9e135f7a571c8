"""The sentences of one input text, made twice (the Flair path's and the lean path's twin, side by side in
exporter.runtime.lean.text): the same words and offsets, split or not."""

from __future__ import annotations

import pytest

from exporter.runtime.lean.text import documents, flair_documents

TEXTS = [
    "Angela Merkel met Tim Cook in Paris . Then she flew to Berlin. Dr. Smith stayed.",
    "  leading blanks and a trailing one ",
    "One sentence only",
    "Zoë Ångström flew to Łódź ! Was it cold ? Yes .",
    "",
    "   ",
]


@pytest.mark.parametrize("split", [False, True], ids=["whole", "split"])
def test_both_twins_make_the_same_documents(split):
    for text in TEXTS:
        flair, lean = flair_documents(text, split), documents(text, split)
        assert [(s.start_position or 0, [t.text for t in s.tokens]) for s in flair] == [
            (s.start_position or 0, [t.text for t in s.tokens]) for s in lean
        ], text
        assert [[(t.start_position, t.end_position) for t in s.tokens] for s in flair] == [
            [(t.start_position, t.end_position) for t in s.tokens] for s in lean
        ], text
