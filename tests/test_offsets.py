"""Character offsets stay right for awkward text: zero-width characters, emoji, RTL, control characters."""

from __future__ import annotations

import pytest

from mlflow_flavor.pyfunc import FlairPyfuncModel

AWKWARD = [
    "Angela\u200bMerkel met Tim\u200d Cook in Paris .",
    "\ufeffSiemens opened an office in Munich\u2028 , Germany .",
    "Tim 🎉 Cook ❤\ufe0f went to Paris\x07 with John Smith .",
    "\u202eمرحبا بالعالم John Smith visited Cairo .",
    "  leading spaces , John Smith in Berlin \t tab .",
    "x\x00y Paris a\u00a0b London",
    "\x81John Smith met\x8d Anna\x90 Miller in\x8f Rome .",
]


@pytest.fixture(scope="module")
def pyfunc(tiny_bundle):
    from exporter import load_bundle

    model = load_bundle(tiny_bundle)
    return FlairPyfuncModel(model, model.flair_mlflow_manifest)


@pytest.mark.parametrize("text", AWKWARD)
def test_offsets_point_at_the_tokens_in_the_original_text(pyfunc, text):
    (result,) = pyfunc.predict([text], params={"return_tokens": True})
    removed = "\u200c\u200b\ufe0f\ufeff\u2028\u2029\x81\x8d\x8f\x90"
    for token in result["tokens"]:
        assert token["text"] == text[token["start"] : token["end"]]
        assert token["text"] == token["text"].strip()
        assert token["text"].strip(removed), token
    for entity in result["entities"]:
        assert entity["text"] == text[entity["start"] : entity["end"]]
        assert not entity["text"].startswith((" ", "\u200b")) and not entity["text"].endswith(" ")
    words = [t["text"].translate({ord(c): None for c in removed}) for t in result["tokens"]]
    assert {"Paris", "London", "Cairo", "Berlin", "Munich", "Rome"} & set(words)


def test_very_long_text_is_tagged_completely(pyfunc):
    text = " ".join(["John Smith visited Paris and met Anna Miller ."] * 120)  # far beyond 64 subtokens
    (result,) = pyfunc.predict([text], params={"return_tokens": True})
    assert len(result["tokens"]) == len(text.split())
    assert result["tokens"][-1]["end"] == len(text)
