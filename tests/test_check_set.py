"""The shipped check set: package data, the variety the gate needs, a deterministic loader, long paragraphs
beyond a 512-subtoken window; and the bootstrap intervals the gate reports over it (no model needed)."""

from __future__ import annotations

import fnmatch
import importlib.resources
import logging
import random
import re
from pathlib import Path

import pytest

from exporter.quality.corpus import CHECK_SENTENCES_FILE, check_sentences
from exporter.quality.parity import bootstrap_intervals, span_counts, span_f1

LINES = check_sentences(long_every=0)


def test_the_check_set_is_package_data():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    text = importlib.resources.files("exporter.quality").joinpath(CHECK_SENTENCES_FILE).read_text(encoding="utf-8")
    assert text.splitlines() == LINES and len(LINES) >= 400
    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["exporter.quality"]
    assert any(fnmatch.fnmatch(CHECK_SENTENCES_FILE, p) for p in patterns)


def test_one_natural_text_per_line():
    assert all(line and line == line.strip() for line in LINES)
    assert len(set(LINES)) == len(LINES), "no sentence twice"
    # natural tokenization, not pre-tokenized: no space before a comma, full stop or question mark
    assert not [line for line in LINES if re.search(r"\w [,.?!;:](\s|$)", line)]


def test_long_multi_clause_sentences():
    words = [len(line.split()) for line in LINES]
    assert sum(n >= 60 for n in words) >= 30
    assert sum(n >= 100 for n in words) >= 3
    assert sum(n <= 12 for n in words) >= 60, "short texts too (headlines, posts)"


def test_names_from_many_languages():
    non_ascii = [line for line in LINES if not line.isascii()]
    assert len(non_ascii) >= 150
    letters = {c for line in LINES for c in line if c.isalpha() and not c.isascii()}
    assert len(letters) >= 60
    # Polish, Turkish, Yoruba, Vietnamese, German, Icelandic, Nordic, Romanian, Croatian, Japanese macrons, Spanish
    for letter in "łśżşğıọẹṣễạưäöüßþðøåșțđōūñç":
        assert any(letter in line for line in LINES), letter


def test_informal_text_and_text_without_entities():
    assert sum(not any(c.isupper() for c in line) for line in LINES) >= 60, "lowercase posts"
    assert sum(bool(re.search(r"(^|\s)#\w", line)) for line in LINES) >= 12, "hashtags"
    assert sum(bool(re.search(r"(^|\s)@\w", line)) for line in LINES) >= 15, "@handles"
    # no capital letter after the first word and no handle: most of these name nothing
    plain = [line for line in LINES if not re.search(r"\s[A-Z@#]", line) and line[0].isupper()]
    assert len(plain) >= 40


def test_headlines_and_lists():
    lists = [line for line in LINES if ":" in line and line.count(",") >= 2]
    headlines = [line for line in LINES if line[-1].isalnum() and sum(w[0].isupper() for w in line.split()) >= 4]
    assert len(lists) >= 15 and len(headlines) >= 15


def test_the_loader_is_deterministic_and_spreads_a_subset_over_the_set():
    assert check_sentences() == check_sentences() and len(check_sentences()) == len(LINES)
    subset = check_sentences(64, long_every=0)
    indexes = [LINES.index(text) for text in subset]
    assert indexes == sorted(indexes) and len(set(indexes)) == 64
    assert indexes[0] == 0 and indexes[-1] >= len(LINES) * 63 // 64  # from the first line to the last


def test_asking_for_more_than_the_set_gives_all_of_it_once(caplog):
    with caplog.at_level(logging.WARNING, logger="exporter.quality.corpus"):
        texts = check_sentences(len(LINES) + 100, long_every=0)
    assert texts == LINES
    assert f"has {len(LINES)} texts, fewer than the {len(LINES) + 100} asked for" in caplog.text


def test_every_sixteenth_text_is_a_long_paragraph():
    texts = check_sentences(64)
    long = [i for i, text in enumerate(texts) if len(text.split()) >= 420]
    assert long == [15, 31, 47, 63]
    plain = check_sentences(64, long_every=0)
    for i in long:
        assert texts[i].startswith(plain[i])  # that line, then the ones after it
    assert [t for i, t in enumerate(texts) if i not in long] == [t for i, t in enumerate(plain) if i not in long]


def test_long_paragraphs_exceed_the_demo_encoders_window():
    from flair.data import Sentence
    from transformers import AutoTokenizer

    from exporter.tools.demo import minilm_path

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()))
    texts = check_sentences()
    lengths = [
        len(tokenizer([t.text for t in Sentence(text)], is_split_into_words=True)["input_ids"]) for text in texts
    ]
    assert sum(n > 512 for n in lengths) == len(texts) // 16
    assert min(n for n, text in zip(lengths, texts) if len(text.split()) >= 420) > 512


def _sampled(n: int, seed: int) -> tuple[list[set], list[set]]:
    """``n`` sentences of up to four entities each; the 'export' changes about one sentence in eight."""
    rng = random.Random(seed)
    reference = [set(rng.sample(range(50), rng.randint(0, 4))) for _ in range(n)]
    other = [spans if rng.random() > 0.125 else set(rng.sample(range(50), rng.randint(0, 4))) for spans in reference]
    return reference, other


def test_the_interval_holds_the_point_estimate_and_narrows_with_more_sentences():
    widths = []
    for n in (60, 600):
        reference, other = _sampled(n, seed=n)
        low, high = bootstrap_intervals({"f1": span_counts(reference, other)})["f1"]
        assert low <= span_f1(reference, other) <= high and low < high
        widths.append(high - low)
    assert widths[1] < 0.5 * widths[0]  # about 1 / sqrt(10) of it


def test_the_interval_is_reproducible_and_exact_where_nothing_differs():
    reference, other = _sampled(200, seed=1)
    counts = {"f1": span_counts(reference, other)}
    assert bootstrap_intervals(counts) == bootstrap_intervals(counts)
    assert bootstrap_intervals(counts, seed=2) != bootstrap_intervals(counts)
    assert bootstrap_intervals({"f1": span_counts(reference, reference)})["f1"] == [1.0, 1.0]
    # no sentences: nothing to find, nothing found: 0, as Flair's evaluate reports it
    assert bootstrap_intervals({"f1": span_counts([], [])})["f1"] == [0.0, 0.0]


def test_intervals_share_their_resamples():
    gold, original = _sampled(300, seed=3)
    _, exported = _sampled(300, seed=4)
    counts = {"a": span_counts(gold, original), "b": span_counts(gold, exported)}
    intervals = bootstrap_intervals(counts, [("drop", "a", "b"), ("none", "a", "a")])
    assert intervals["none"] == [0.0, 0.0]  # the same resamples for both sides of a difference
    point = span_f1(gold, original) - span_f1(gold, exported)
    assert intervals["drop"][0] <= point <= intervals["drop"][1]
    assert intervals["a"] == bootstrap_intervals({"a": counts["a"]})["a"]


@pytest.mark.parametrize("confidence", [0.5, 0.95, 0.99])
def test_a_higher_confidence_gives_a_wider_interval(confidence):
    reference, other = _sampled(200, seed=5)
    counts = {"f1": span_counts(reference, other)}
    low, high = bootstrap_intervals(counts, confidence=confidence)["f1"]
    wider = bootstrap_intervals(counts, confidence=(1 + confidence) / 2)["f1"]
    assert wider[0] <= low and high <= wider[1]


def test_one_f1_as_flair_reports_it_in_the_gate_and_in_evaluate():
    """Nothing to find and nothing found scores 0 (Flair's evaluate), the same in the parity gate's span F1 and
    in evaluate's scores; otherwise both agree with scikit-learn's 2 tp / (2 tp + fp + fn) on random cases."""
    import random

    from exporter.config import SEQUENCE_TAGGING
    from exporter.quality.metrics import score
    from exporter.quality.parity import threshold_failures

    assert span_f1([set(), set()], [set(), set()]) == 0.0
    assert score([frozenset(), frozenset()], [frozenset(), frozenset()], SEQUENCE_TAGGING)["f1_micro"] == 0.0
    rng = random.Random(5)
    for _ in range(300):
        spans = [(i, i + 1, rng.choice("AB")) for i in range(6)]
        gold = [set(rng.sample(spans, rng.randint(0, 3))) for _ in range(4)]
        predicted = [set(rng.sample(spans, rng.randint(0, 3))) for _ in range(4)]
        tp = sum(len(g & p) for g, p in zip(gold, predicted))
        fp = sum(len(p - g) for g, p in zip(gold, predicted))
        fn = sum(len(g - p) for g, p in zip(gold, predicted))
        expected = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        frozen = [frozenset(g) for g in gold], [frozenset(p) for p in predicted]
        assert span_f1(gold, predicted) == pytest.approx(expected, abs=1e-12)
        assert score(*frozen, SEQUENCE_TAGGING)["f1_micro"] == pytest.approx(expected, abs=1e-12)
    # the gate: with nothing found on either side the F1 (0) decides nothing; agreement does
    thresholds = {"min_tag_agreement": 1.0, "min_entity_f1": 1.0, "max_gold_f1_drop": 0.005}
    nothing = {"tag_agreement": 1.0, "entity_f1_vs_original": 0.0, "entities_original": 0, "entities_exported": 0}
    assert threshold_failures(nothing, thresholds) == []
    differs = {**nothing, "tag_agreement": 0.5, "entities_exported": 2}
    assert len(threshold_failures(differs, thresholds)) == 2
