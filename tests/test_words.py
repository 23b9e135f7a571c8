"""Flair's words without Flair (exporter.runtime.words) against Flair's own Sentence, word for word and offset for
offset: on real corpora when they are there, always on text built to be awkward."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from exporter.runtime.words import clean_text, flair_words

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

AWKWARD = [
    "",
    "   ",
    "\n\t \n",
    "Angela Merkel met Tim Cook in Paris .",
    "Dr. Smith's car isn't here; it's in the U.S.A. (probably). He said: \"Don't!\"",
    "I'm sure we'd've gone -- wouldn't you?  Yes... maybe!!! #hashtag @user http://example.com/a?b=c&d=e",
    "mail me at jane.doe@example.org or call +1 (555) 123-4567, ok?",
    "Zero\u200bwidth\u200cjoiners\ufeff and\u2028line\u2029separators \u2764\ufe0f",
    "Windows-1252: \x93quoted\x94 \x85 \x80uro \x81 \x8d \x99 end",
    "Emoji 👩‍👩‍👧 and 🇩🇪 flags, CJK 東京都 and 北京, RTL שלום עולם مرحبا.",
    "Combining e\u0301 vs \u00e9, ligature \ufb01ne, full-width ＡＢＣ１２３.",
    "First sentence. Second one! Third? Fourth\u2026 Fifth.\nSixth on a new line\r\nSeventh.",
    "tabs\tbetween\twords and  double  spaces   triple",
    "numbers 3.14, 1,000,000 and 12:30pm; 5% of $20 is €1.",
    "O'Neill and D'Angelo can't won't shan't y'all ma'am",
    "a" * 300,
    "- bullet\n- another bullet\n* third",
]


def _flair(text: str) -> list[tuple[str, int, int]]:
    from flair.data import Sentence

    return [(t.text, t.start_position, t.end_position) for t in Sentence(text)]


@pytest.mark.parametrize("text", AWKWARD, ids=range(len(AWKWARD)))
def test_words_and_offsets_equal_flairs_on_awkward_text(text):
    assert flair_words(text) == _flair(text)


def test_random_mixtures_of_awkward_pieces_equal_flairs():
    rng = random.Random(0)
    pieces = [p for text in AWKWARD for p in text.split(" ") if p] + ["\x93", "\u200b", ".", "'s", "n't", "\n"]
    for _ in range(300):
        text = "".join(rng.choice(pieces) + rng.choice([" ", "", "  ", "\n"]) for _ in range(rng.randint(1, 25)))
        assert flair_words(text) == _flair(text), text


def test_clean_text_is_flairs():
    from flair.data import Sentence

    text = "a\u200bb\x93c\x81d\ufe0f"
    assert clean_text(text) == Sentence._handle_problem_characters(text) == "ab\u201ccd"


@pytest.mark.skipif(not DATA.is_dir(), reason="the shared corpora are not on this machine")
@pytest.mark.parametrize("corpus", ["wikiann-en", "wnut17"])
def test_real_sentences_equal_flairs(corpus):
    path = DATA / corpus / "test.conll"
    sentences, words = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            words.append(line.split()[0])
        elif words:
            sentences.append(" ".join(words))
            words = []
    for text in sentences[:1500]:
        assert flair_words(text) == _flair(text), text
