"""Adaptive batching in the pyfunc, documents with their context, and independent texts.

The batcher's own contract is tested with a plain ``run`` function whose progress the test controls
(no timing: a run blocks on an event until the test has queued the requests that must merge).
"""

from __future__ import annotations

import threading
import time

import pytest

from mlflow_flavor.batching import AdaptiveBatcher


def _started(batcher: AdaptiveBatcher, requests: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while batcher.stats().requests < requests:
        assert time.monotonic() < deadline, "requests never reached the batcher"
        time.sleep(0.005)


class _Gate:
    """A ``run`` function that records its calls and blocks the first one until released."""

    def __init__(self, fail_on: object = None) -> None:
        self.calls: list[tuple[object, list]] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        self.fail_on = fail_on
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def __call__(self, key, items):
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.calls.append((key, list(items)))
        try:
            self.entered.set()
            self.release.wait(10)
            if self.fail_on is not None and self.fail_on in items:
                raise ValueError(f"cannot run {self.fail_on!r}")
            return [f"{key}:{x}" for x in items]
        finally:
            with self._lock:
                self.active -= 1


def _submit_all(batcher, gate, requests):
    """Submit ``(key, items)`` requests from threads: the first one alone, the others queued in order
    while its run is held by ``gate``; then release the gate and return each request's result."""
    results: dict[int, object] = {}

    def one(i, key, items):
        try:
            results[i] = batcher.submit(key, items)
        except Exception as e:  # noqa: BLE001 - what the caller would see
            results[i] = e

    threads = [threading.Thread(target=one, args=(i, *r)) for i, r in enumerate(requests)]
    threads[0].start()
    assert gate.entered.wait(10)
    for count, t in enumerate(threads[1:], start=2):
        t.start()
        _started(batcher, count)  # queued in this order
    gate.release.set()
    for t in threads:
        t.join(10)
    return results


def test_requests_arriving_while_busy_merge_and_each_gets_its_own_answers():
    gate = _Gate()
    batcher = AdaptiveBatcher(gate, max_batch_texts=100)
    requests = [("a", [0]), ("a", [1, 2]), ("b", [3]), ("a", [4, 5, 6]), ("b", [7, 8])]
    results = _submit_all(batcher, gate, requests)
    # the idle model ran the first request at once; then the oldest waiting request led a merged run
    # of its key (oldest first), and the other key ran after it
    assert gate.calls == [("a", [0]), ("a", [1, 2, 4, 5, 6]), ("b", [3, 7, 8])]
    assert results == {
        0: ["a:0"],
        1: ["a:1", "a:2"],
        2: ["b:3"],
        3: ["a:4", "a:5", "a:6"],
        4: ["b:7", "b:8"],
    }
    assert gate.max_active == 1  # one run at a time
    stats = batcher.stats()
    assert (stats.requests, stats.runs, stats.merged_runs, stats.max_requests_per_run) == (5, 3, 2, 2)


def test_a_failing_merged_run_is_retried_request_by_request_so_only_the_culprit_fails():
    gate = _Gate(fail_on="bad")
    batcher = AdaptiveBatcher(gate)
    requests = [("k", ["first"]), ("k", ["x", "y"]), ("k", ["bad"]), ("k", ["z"])]
    results = _submit_all(batcher, gate, requests)
    assert results[0] == ["k:first"] and results[1] == ["k:x", "k:y"] and results[3] == ["k:z"]
    assert isinstance(results[2], ValueError) and "bad" in str(results[2])
    assert batcher.stats().retried_runs == 1
    assert [items for _, items in gate.calls] == [["first"], ["x", "y", "bad", "z"], ["x", "y"], ["bad"], ["z"]]


def test_max_batch_texts_and_off_switch():
    gate = _Gate()
    batcher = AdaptiveBatcher(gate, max_batch_texts=4)
    requests = [("k", [0]), ("k", [1, 2]), ("k", [3, 4]), ("k", [5, 6, 7, 8, 9])]
    _submit_all(batcher, gate, requests)
    # at most 4 texts merged; a request larger than that still runs, alone
    assert [items for _, items in gate.calls] == [[0], [1, 2, 3, 4], [5, 6, 7, 8, 9]]

    gate = _Gate()
    batcher = AdaptiveBatcher(gate, enabled=False)
    _submit_all(batcher, gate, requests)
    assert sorted(len(items) for _, items in gate.calls) == [1, 2, 2, 5]
    assert batcher.stats().merged_runs == 0


def test_a_leader_waits_for_more_requests_only_when_told():
    calls = []
    batcher = AdaptiveBatcher(lambda key, items: calls.append(list(items)) or list(items), max_wait_ms=300)
    threads = [threading.Thread(target=batcher.submit, args=("k", [i])) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(calls) == 1 and sorted(calls[0]) == [0, 1, 2]
    # without a wait, an idle model runs a lone request at once
    batcher = AdaptiveBatcher(lambda key, items: list(items))
    started = time.perf_counter()
    assert batcher.submit("k", [1]) == [1]
    assert time.perf_counter() - started < 0.25


# --- through the pyfunc, with real tiny models --------------------------------------------------------

TEXTS = [
    "Angela Merkel met Tim Cook in Paris .",
    "Siemens opened a new office in Munich , Germany .",
    "The weather was fine .",
    "Barack Obama visited Toyota in Tokyo last week and spoke with engineers about batteries .",
    "Maria Garcia works for Nestle in Geneva .",
    "Nothing to see here .",
]

DOCUMENTS = [
    "Angela Merkel met Tim Cook in Paris. They talked about Siemens. Later Maria Garcia arrived from Madrid.",
    "Toyota opened a plant in Kentucky. Barack Obama spoke there. The plant makes batteries for Nestle trucks.",
    "A short one. Berlin is big.",
]


@pytest.fixture(scope="module")
def flert_tagger(tiny_bert):
    from tinymodels import build_tiny_tagger

    return build_tiny_tagger(tiny_bert, use_context=24, seed=3)


def _pyfunc(model, **options):
    from mlflow_flavor.pyfunc import FlairPyfuncModel, ServingOptions

    manifest = getattr(model, "flair_mlflow_manifest", None) or {"task": "sequence-tagging"}
    return FlairPyfuncModel(model, manifest, ServingOptions(**options))


def _loaded(model, tmp_path_factory, backend="onnx"):
    from exporter import load_bundle, save_bundle
    from exporter.config import ExportConfig

    path = save_bundle(model, tmp_path_factory.mktemp("bundle") / backend, ExportConfig(backend=backend)).path
    return load_bundle(path)


@pytest.mark.slow
def test_texts_of_one_request_are_independent_documents_with_context_models(flert_tagger, tmp_path_factory):
    """Flair links the sentences of one predict call as context; each text must stay its own document."""
    bundle = _loaded(flert_tagger, tmp_path_factory)
    for model in (flert_tagger, bundle):
        pyfunc = _pyfunc(model)
        alone = [pyfunc.predict([t])[0] for t in TEXTS]
        assert any(alone), "the random tagger should find some entities"
        _same(pyfunc.predict(TEXTS), alone)
        _same(pyfunc.predict(list(reversed(TEXTS))), list(reversed(alone)))
        # and Flair itself, predicting the texts together, links them (what the pyfunc must not do)
        from conftest import entities_of

        together = entities_of(model, TEXTS)
        single = [entities_of(model, [t])[0] for t in TEXTS]
        assert together != single, "the context model should depend on its neighbours in Flair's own predict"


def test_split_sentences_gives_what_flairs_splitter_and_predict_give(flert_tagger, tmp_path_factory):
    from flair.splitter import SegtokSentenceSplitter

    bundle = _loaded(flert_tagger, tmp_path_factory)
    for model in (flert_tagger, bundle):
        pyfunc = _pyfunc(model)
        expected = []
        for text in DOCUMENTS:
            sentences = SegtokSentenceSplitter().split(text)
            flert_tagger.predict(sentences, mini_batch_size=32)
            entities = []
            for s in sentences:
                for span in s.get_spans("ner"):
                    start = s.start_position + span.start_position
                    end = s.start_position + span.end_position
                    entities.append((text[start:end], span.get_label("ner").value, start, end))
            expected.append(entities)
        assert any(expected)
        answers = pyfunc.predict(DOCUMENTS, params={"split_sentences": True})
        got = [[(e["text"], e["label"], e["start"], e["end"]) for e in answer] for answer in answers]
        assert got == expected
        for answer, text in zip(answers, DOCUMENTS):
            assert all(text[e["start"] : e["end"]] == e["text"] for e in answer)
        # each document alone gives the same entities as together
        alone = [pyfunc.predict([t], params={"split_sentences": True})[0] for t in DOCUMENTS]
        _same(alone, answers)
        # without splitting, a multi-sentence text is one sentence: other entities
        assert pyfunc.predict(DOCUMENTS) != answers
        tokens = pyfunc.predict(DOCUMENTS[:1], params={"split_sentences": True, "return_tokens": True})[0]["tokens"]
        flair_tokens = [t.text for s in SegtokSentenceSplitter().split(DOCUMENTS[0]) for t in s]
        assert [t["text"] for t in tokens] == flair_tokens
        assert [t["start"] for t in tokens] == sorted(t["start"] for t in tokens)


def test_split_sentences_keeps_offsets_right_around_removed_characters(tiny_tagger):
    pyfunc = _pyfunc(tiny_tagger)
    text = "Angela\u200b Merkel met Tim Cook.\ufeff Then Maria Garcia went to Paris\u200c. Siemens paid."
    answer = pyfunc.predict([text], params={"split_sentences": True, "return_tokens": True})[0]
    from flair.splitter import SegtokSentenceSplitter

    sentences = SegtokSentenceSplitter().split(text)
    # the token texts Flair sees (removed characters gone) sit exactly at the offsets we return
    assert [t["text"] for t in answer["tokens"]] == [t.text for s in sentences for t in s]
    assert [(t["start"], t["end"]) for t in answer["tokens"]][:2] == [(0, 6), (8, 14)]
    maria = next(t for t in answer["tokens"] if t["text"] == "Maria")
    assert maria["start"] == text.index("Maria")
    paris = next(t for t in answer["tokens"] if t["text"] == "Paris")
    assert (paris["start"], paris["end"]) == (text.index("Paris"), text.index("Paris") + 5)
    assert answer["tokens"][-2]["start"] == text.index("paid")


def test_a_long_text_is_never_padded_against_the_short_ones_it_is_merged_with(tiny_tagger):
    """Flair pads a mini-batch to its longest sentence after the encoder: a long document goes alone."""
    from exporter.quality.corpus import generate_sentences
    from mlflow_flavor.pyfunc import LONG_SENTENCE_WORDS

    long_text = " ".join(generate_sentences(80, seed=2, long_every=0))
    assert len(long_text.split()) > LONG_SENTENCE_WORDS
    texts = TEXTS[:3] + [long_text] + TEXTS[3:]
    pyfunc = _pyfunc(tiny_tagger)
    calls = []
    original = tiny_tagger.predict

    def recording(sentences, **kwargs):
        calls.append([len(s) for s in sentences])
        return original(sentences, **kwargs)

    tiny_tagger.predict = recording
    try:
        answers = pyfunc.predict(texts)
        alone = [pyfunc.predict([t])[0] for t in texts]
    finally:
        del tiny_tagger.predict
    long_words = len(long_text.split())
    assert calls[0] == [len(t.split()) for t in texts if t != long_text] and calls[1] == [long_words]
    _same(answers, alone)


def test_classifier_refuses_split_sentences(tmp_path_factory, tiny_bert):
    from mlflow.exceptions import MlflowException
    from tinymodels import build_tiny_classifier

    from mlflow_flavor.pyfunc import FlairPyfuncModel

    classifier = build_tiny_classifier(tiny_bert)
    pyfunc = FlairPyfuncModel(classifier, {"task": "text-classification", "tag_type": "topic"})
    with pytest.raises(MlflowException, match="'split_sentences' does not apply to a text classifier"):
        pyfunc.predict(["One. Two."], params={"split_sentences": True})
    assert len(pyfunc.predict(["Markets fell today .", "The team won ."])) == 2


@pytest.mark.slow
def test_concurrent_requests_merge_and_get_the_answers_they_get_alone(tiny_bundle, flert_tagger, tmp_path_factory):
    """Many threads calling predict at once (as MLflow's server does): answers equal each request alone."""
    import random
    from concurrent.futures import ThreadPoolExecutor

    from exporter import load_bundle
    from exporter.quality.corpus import generate_sentences

    texts = generate_sentences(120, seed=5, long_every=7)
    rng = random.Random(1)
    requests = []
    for _ in range(48):
        params = rng.choice([{}, {"min_score": 0.3}, {"return_tokens": True}, {"mini_batch_size": 8}])
        requests.append((rng.sample(texts, rng.randint(1, 12)), params))
    for model in (load_bundle(tiny_bundle), _loaded(flert_tagger, tmp_path_factory)):
        sequential = _pyfunc(model, adaptive_batching=False)
        expected = [sequential.predict(t, params=p) for t, p in requests]
        pyfunc = _pyfunc(model, max_wait_ms=20)
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda r, f=pyfunc: f.predict(r[0], params=r[1]), requests))
        _same(answers, expected)
        stats = pyfunc.batcher.stats()
        assert stats.requests == len(requests) and stats.merged_runs > 0 and stats.runs < len(requests)


def _same(answers, expected):
    """Equal entities (texts, labels, offsets, tokens); scores equal up to float summation order."""
    assert _without_scores(answers) == _without_scores(expected)
    assert _scores(answers) == pytest.approx(_scores(expected), abs=1e-5)


def same_answers(answers, expected) -> bool:
    """:func:`_same` as a truth value."""
    try:
        _same(answers, expected)
    except AssertionError:
        return False
    return True


def _without_scores(answers):
    import json

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k != "score"}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    return json.loads(json.dumps(strip(answers)))


def _scores(answers):
    found = []

    def walk(x):
        if isinstance(x, dict):
            if "score" in x:
                found.append(x["score"])
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(answers)
    return found
