"""Flair's classic model families (issue 20, first step): taggers on word embeddings, Flair's character language
models, character and one-hot embeddings in a stack, and classifiers on document RNN and pool embeddings go
through save_model, the bundle and the pyfunc (as Flair's own model, backend torch, or with their character
language models exported, backend onnx: tests/test_charlm.py), answer as Flair's own predict on the original,
and load as plain data without allow_pickle."""

from __future__ import annotations

import logging

import mlflow
import pytest
from conftest import entities_of
from flair.data import Sentence
from test_safe_loading import _plant_payload
from tinymodels import build_classic_classifier, build_classic_tagger, build_pos_tagger, build_tiny_word_embeddings

import mlflow_flavor
from exporter import ExportConfig, ParityConfig, UnsafeModelFileError, UnsupportedModelError, load_bundle, save_bundle
from exporter.backends.kinds import has_char_lms
from exporter.quality.corpus import generate_sentences

TEXTS = generate_sentences(24, seed=21, long_every=0) + ["", "   ", "Zoë Ångström flew to Łódź ."]
TAGGERS = {
    "word+flair-lms, BiLSTM-CRF": dict(kind="flair"),
    "word+chars+one-hot, linear": dict(kind="chars", use_rnn=False, use_crf=False),
    "words, BiLSTM": dict(kind="words", use_crf=False),
    "two transformers, linear": dict(kind="transformers", use_rnn=False, use_crf=False),
}
CLASSIFIERS = ("rnn", "pool", "lm")
#: the parity gate on 16 check texts (one of them a paragraph of 420+ words): Flair's character LMs are slow
GATE = ParityConfig(num_sentences=16)


#: the fast set builds the ner-english shape and the lone word embeddings; the full suite every shape
FAST_TAGGERS = ("word+flair-lms, BiLSTM-CRF", "words, BiLSTM")


@pytest.fixture(
    scope="module",
    params=[name if name in FAST_TAGGERS else pytest.param(name, marks=pytest.mark.slow) for name in TAGGERS],
)
def tagger(request):
    return build_classic_tagger(**TAGGERS[request.param])


@pytest.fixture(scope="module", params=CLASSIFIERS)
def classifier(request):
    return build_classic_classifier(request.param)


def _flair_entities(model, texts):
    """What Flair's own predict gives, as the pyfunc reports it: text, label, character offsets, score."""
    out = []
    for text in texts:
        sentence = Sentence(text)
        model.predict(sentence)
        spans = sentence.get_spans(model.label_type)
        out.append([(s.text, s.tag, s.start_position, s.end_position, round(s.score, 5)) for s in spans])
    return out


def _flair_labels(model, texts):
    sentences = [Sentence(t) for t in texts if t.strip()]
    model.predict(sentences)
    return [[(label.value, round(label.score, 5)) for label in s.get_labels(model.label_type)] for s in sentences]


def _keeps_flair(model_dir) -> None:
    """A family the lean path does not serve (issue 25): the Flair path, and Flair and torch in its requirements."""
    conf = mlflow.models.Model.load(str(model_dir)).flavors["flair_mlflow"]
    requirements = (model_dir / "requirements.txt").read_text()
    assert conf["serving_path"] == "flair" and "flair==" in requirements and "torch==" in requirements


def test_a_classic_tagger_is_saved_served_and_answers_as_flair(tagger, tmp_path, caplog):
    expected = _flair_entities(tagger, TEXTS)
    assert any(expected), "the random tagger should find something"
    with caplog.at_level(logging.INFO, logger="exporter.backends"):
        mlflow_flavor.save_model(tagger, tmp_path / "model", parity=GATE)  # the default backend, onnx, asked
    conf = mlflow.models.Model.load(str(tmp_path / "model")).flavors["flair_mlflow"]
    # Flair's character language models are exported to ONNX; a model without them runs as Flair's own
    if has_char_lms(tagger):
        assert "character language models (FlairEmbeddings) to ONNX" in caplog.text and conf["backend"] == "onnx"
    else:
        assert "no single transformer to export to onnx" in caplog.text and conf["backend"] == "torch"
    assert conf["parity"]["identical_sentences"] == conf["parity"]["sentences"]
    _keeps_flair(tmp_path / "model")
    pyfunc = mlflow.pyfunc.load_model(str(tmp_path / "model"))  # no allow_pickle anywhere
    answers = pyfunc.predict(TEXTS)
    # the same spans and labels; scores to float precision (the pyfunc batches the texts, the reference ran
    # them one at a time, and torch's products round differently by batch shape)
    got = [[(e["text"], e["label"], e["start"], e["end"]) for e in ents] for ents in answers]
    assert got == [[entity[:4] for entity in ents] for ents in expected]
    scores = [e["score"] for ents in answers for e in ents]
    assert scores == pytest.approx([entity[4] for ents in expected for entity in ents], abs=1e-4)
    assert entities_of(pyfunc.get_raw_model(), TEXTS) == entities_of(tagger, TEXTS)


def test_a_part_of_speech_tagger_answers_each_tokens_tag(tmp_path):
    """pos-english's kind labels tokens, not spans: one record per token, its tag, offsets and score (the pyfunc
    answered no entities at all for such a tagger)."""
    tagger = build_pos_tagger()
    texts = [t for t in TEXTS if t.strip()][:10]
    expected = []
    for text in texts:
        sentence = Sentence(text)
        tagger.predict(sentence)
        labels = sentence.get_labels("pos")
        expected.append([(x.data_point.text, x.value, x.data_point.start_position, round(x.score, 5)) for x in labels])
    assert all(len(e) == len(Sentence(t)) for e, t in zip(expected, texts))  # every token tagged
    # the parity gate compares every token's tag (it compared nothing for such a tagger)
    parity = save_bundle(tagger, tmp_path / "bundle", ExportConfig(parity=GATE)).manifest["parity"]
    assert parity["entities_original"] >= parity["sentences"] and parity["tag_agreement"] == 1.0
    mlflow_flavor.save_model(tagger, tmp_path / "model", parity=GATE)
    pyfunc = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    got = [[(e["text"], e["label"], e["start"], round(e["score"], 5)) for e in ents] for ents in pyfunc.predict(texts)]
    assert got == expected
    (first,) = pyfunc.predict(texts[:1], params={"return_tokens": True})
    assert [t["tag"] for t in first["tokens"]] == [label for _, label, _, _ in expected[0]]


def test_a_classic_classifier_is_saved_served_and_answers_as_flair(classifier, tmp_path, caplog):
    texts = [t for t in TEXTS if t.strip()]
    expected = _flair_labels(classifier, texts)
    assert len({labels[0][0] for labels in expected}) > 1, "the random classifier should tell texts apart"
    with caplog.at_level(logging.INFO, logger="exporter.quality.parity"):
        mlflow_flavor.save_model(classifier, tmp_path / "model", parity=GATE)
    conf = mlflow.models.Model.load(str(tmp_path / "model")).flavors["flair_mlflow"]
    # the gate's measure named after the task (issue 23, item 9): labels, not entities
    assert "label F1 vs original 1.0000" in caplog.text and "entity" not in caplog.text
    assert conf["parity"]["measure"] == "label" and conf["parity"]["label_agreement"] == 1.0
    assert conf["parity"]["label_f1_vs_original"] == 1.0 and "tag_agreement" not in conf["parity"]
    assert conf["backend"] == ("onnx" if has_char_lms(classifier) else "torch")
    assert conf["task"] == "text-classification"
    answers = mlflow.pyfunc.load_model(str(tmp_path / "model")).predict(texts)
    _assert_same_labels(answers, expected)  # scores to float precision (batched here, one by one there)


def test_the_bundle_is_plain_data_and_a_planted_payload_is_refused(tmp_path):
    tagger = build_classic_tagger("flair")
    tagger.predict([Sentence("Flair's character dictionary caches its lookups after a first predict .")])
    info = save_bundle(tagger, tmp_path / "bundle", ExportConfig(backend="torch", parity=GATE))
    assert info.manifest["backend"] == "torch" and info.manifest["model_pickle"] == "weights-only"
    assert entities_of(load_bundle(info.path, allow_pickle=False), TEXTS) == entities_of(tagger, TEXTS)
    _assert_a_planted_payload_never_runs(info.path, tmp_path)


def _assert_a_planted_payload_never_runs(bundle, tmp_path):
    marker = tmp_path / "pwned"
    _plant_payload(bundle, marker)
    with pytest.raises(UnsafeModelFileError, match="not plain data"):
        load_bundle(bundle)
    assert not marker.exists()


def test_a_bundle_naming_an_embeddings_class_outside_the_list_is_refused(tmp_path):
    import torch
    from test_safe_loading import _rewrite_manifest

    info = save_bundle(build_classic_tagger("words", use_crf=False), tmp_path / "bundle", ExportConfig(parity=GATE))
    state = torch.load(info.path / "model.pt", weights_only=False)
    state["embeddings"]["__cls__"] = "TransformerJitWordEmbeddings"  # plain data, but a class that carries code
    torch.save(state, info.path / "model.pt")
    _rewrite_manifest(info.path, lambda manifest: None)
    with pytest.raises(UnsafeModelFileError, match="names embeddings 'TransformerJitWordEmbeddings'"):
        load_bundle(info.path)


def test_embeddings_flair_cannot_rebuild_from_data_are_refused_with_the_class_named(tmp_path):
    from flair.embeddings import TokenEmbeddings
    from flair.models import SequenceTagger

    class MyEmbeddings(TokenEmbeddings):
        def __init__(self):
            super().__init__()
            self.inner = build_tiny_word_embeddings()
            self.name = "mine"
            self.static_embeddings = True

        @property
        def embedding_length(self):
            return self.inner.embedding_length

        def _add_embeddings_internal(self, sentences):
            return self.inner.embed(sentences)

        def to_params(self):
            return {}

    tags = build_classic_tagger("words").label_dictionary
    tagger = SequenceTagger(embeddings=MyEmbeddings(), tag_dictionary=tags, tag_type="ner", use_crf=False)
    out = tmp_path / "out"
    with pytest.raises(UnsupportedModelError, match=r"embeddings test_families\.MyEmbeddings .*FlairEmbeddings"):
        save_bundle(tagger, out / "bundle")
    assert not list(out.iterdir())  # nothing half-written


def test_the_encoder_backends_name_what_they_export_when_refusing():
    """A classifier on DocumentRNNEmbeddings crashed the refusal message (its embeddings hold one stack)."""
    from exporter.runtime.settings import find_transformer_embeddings

    with pytest.raises(UnsupportedModelError, match=r"DocumentRNNEmbeddings \(over StackedEmbeddings\).*backend torch"):
        find_transformer_embeddings(build_classic_classifier("rnn"))


@pytest.mark.slow
def test_classic_models_answer_through_a_real_mlflow_models_serve(tmp_path):
    """One model of each output kind, served by `mlflow models serve` as a user runs it: the same answers as
    in-process, which are Flair's own."""
    from flair.embeddings import DocumentPoolEmbeddings
    from servers import model_server, post_json
    from tinymodels import build_text_pair_model

    texts = [t for t in TEXTS if t.strip()][:8]
    tagger, classifier = build_classic_tagger("flair"), build_classic_classifier("rnn")
    expected = {
        "tagger": [[(t, label) for t, label, *_ in ents] for ents in _flair_entities(tagger, texts)],
        "classifier": [[label for label, _ in labels] for labels in _flair_labels(classifier, texts)],
    }
    # a number per pair: the regressor of text pairs, sent as a list of pairs and as dataframe_split
    regressor = build_text_pair_model(DocumentPoolEmbeddings([build_tiny_word_embeddings()]), "regressor")
    pairs = [list(p) for p in PAIRS[:3]]
    mlflow_flavor.save_model(regressor, tmp_path / "regressor", parity=GATE)
    local = mlflow.pyfunc.load_model(str(tmp_path / "regressor")).predict(pairs)
    split = {"dataframe_split": {"columns": ["text", "text_pair"], "data": pairs}}
    with model_server(str(tmp_path / "regressor"), tmp_path / "regressor.log") as url:
        for payload in ({"inputs": pairs}, split):
            status, body = post_json(f"{url}/invocations", payload)
            assert status == 200, body
            assert body["predictions"] == pytest.approx(local, rel=1e-5), payload
        status, body = post_json(f"{url}/invocations", {"inputs": pairs, "params": {"top_k": 2}})
        assert status == 400 and "'top_k' does not apply to a regressor of text pairs" in str(body)
    for name, model in (("tagger", tagger), ("classifier", classifier)):
        path = tmp_path / name
        mlflow_flavor.save_model(model, path)
        local = mlflow.pyfunc.load_model(str(path)).predict(texts)
        with model_server(str(path), tmp_path / f"{name}.log") as url:
            status, body = post_json(f"{url}/invocations", {"inputs": texts})
        assert status == 200, body
        assert body["predictions"] == local, name
        key = "text" if name == "tagger" else "label"
        answers = [[(a["text"], a["label"]) if key == "text" else a["label"] for a in row] for row in local]
        assert answers == expected[name]
    # entities and relations: a relation extractor logged with its tagger
    from tinymodels import build_relation_extractor

    mlflow_flavor.save_model(
        build_relation_extractor(),
        tmp_path / "relations",
        tagger=build_classic_tagger("words", use_crf=False),
        parity_sentences=SHORT,
    )
    local = mlflow.pyfunc.load_model(str(tmp_path / "relations")).predict(texts[:4])
    assert any(answer["relations"] for answer in local)
    with model_server(str(tmp_path / "relations"), tmp_path / "relations.log") as url:
        status, body = post_json(f"{url}/invocations", {"inputs": texts[:4]})
    assert status == 200 and body["predictions"] == local


def test_bench_takes_a_classic_tagger_and_runs_what_applies(tmp_path, caplog):
    """Flair's PyTorch predict against each backend that applies: for a model without a transformer, Flair's own
    model; the encoder variants and Flair's export_onnx are skipped, and the log says so."""
    import torch

    from exporter.tools.bench import BenchConfig, run_benchmark

    path = tmp_path / "classic.pt"
    tagger = build_classic_tagger("flair")
    torch.save(tagger._get_state_dict(), path)
    config = BenchConfig(
        model_path=path,
        num_sentences=16,
        batch_sizes=(8,),
        small_batch_sentences=16,
        repeats=1,
        measure_memory=False,
        backends=("onnx", "onnx-optimized", "torchscript", "torch"),
    )
    with caplog.at_level(logging.INFO, logger="exporter.tools.bench"):
        result = run_benchmark(config, log_to_mlflow=False)
    # the character language models are exported by the onnx and torchscript variants; the encoder-only
    # variants (the transformer optimizer) are skipped
    assert [row["backend"] for row in result.rows] == ["flair-pytorch", "onnx", "torchscript", "torch"]
    assert "skipped onnx-optimized" in caplog.text
    for row in result.rows[1:]:
        assert row["identical"] == row["sentences"] == 16, row


@pytest.mark.parametrize("kind", ["classifier", pytest.param("tagger", marks=pytest.mark.slow)])
def test_a_tars_model_answers_for_its_current_task_as_flair(tiny_bert, kind, tmp_path):
    """TARS zero-shot models (tars-base, tars-ner) as Flair's own model: the current task's labels, by default."""
    from tinymodels import build_tiny_tars

    tars = build_tiny_tars(tiny_bert, kind)
    texts = [t for t in TEXTS if t.strip()][:8]
    mlflow_flavor.save_model(tars, tmp_path / "model", parity=GATE)
    conf = mlflow.models.Model.load(str(tmp_path / "model")).flavors["flair_mlflow"]
    assert conf["backend"] == "onnx" and conf["model_class"] == f"TARS{kind.title()}"  # its transformer exported
    _keeps_flair(tmp_path / "model")
    answers = mlflow.pyfunc.load_model(str(tmp_path / "model")).predict(texts)
    if kind == "classifier":
        expected = _flair_labels(tars, texts)
        assert [[(a["label"], round(a["score"], 5)) for a in labels] for labels in answers] == expected
        assert all(expected)  # single-label: every text gets its best label, with its score
    else:
        expected = _flair_entities(tars, texts)
        got = [[(e["text"], e["label"], e["start"], e["end"], round(e["score"], 5)) for e in ents] for ents in answers]
        assert got == expected and any(expected)


def test_a_users_file_saved_after_predicting_loads_as_data(tmp_path, caplog):
    """Flair's Dictionary caches its lookups in a defaultdict once FlairEmbeddings used it, which the safe reader
    cannot rebuild: the unpickling warning names save_plain, and a file it wrote loads as data, no warning."""
    import torch

    from exporter.format.modelfile import load_flair_model, save_plain

    tagger = build_classic_tagger("flair")
    tagger.predict([Sentence("A first predict fills the character dictionary's cache .")])
    torch.save(tagger._get_state_dict(), tmp_path / "state.pt")
    with caplog.at_level(logging.WARNING, logger="exporter.format.modelfile"):
        load_flair_model(tmp_path / "state.pt")
    assert "needs full unpickling" in caplog.text and "save_plain(model, path)" in caplog.text
    caplog.clear()
    path = save_plain(tagger, tmp_path / "after-predict.pt")
    with caplog.at_level(logging.WARNING, logger="exporter.format.modelfile"):
        loaded = load_flair_model(path, allow_pickle=False)
    assert "unpickling" not in caplog.text
    assert entities_of(loaded, TEXTS) == entities_of(tagger, TEXTS)


def _zero_shot_expected(tars, texts, labels, kind):
    """Flair's own predict_zero_shot on the texts (one call, as the pyfunc makes), as the pyfunc reports it."""
    sentences = [Sentence(text) for text in texts]
    tars.predict_zero_shot(sentences, labels)
    label_type = "-".join(labels)
    if kind == "classifier":
        found = [sorted(s.get_labels(label_type), key=lambda x: -x.score) for s in sentences]
        return [[(x.value, round(x.score, 5)) for x in row] for row in found]
    return [[(s.text, s.tag, s.start_position, s.end_position) for s in x.get_spans(label_type)] for x in sentences]


def _assert_same_labels(answers, expected, tolerance=1e-4):
    assert [[a["label"] for a in row] for row in answers] == [[label for label, _ in row] for row in expected]
    scores = [a["score"] for row in answers for a in row]
    assert scores == pytest.approx([score for row in expected for _, score in row], abs=tolerance)


@pytest.mark.parametrize("kind", ["classifier", pytest.param("tagger", marks=pytest.mark.slow)])
def test_a_tars_model_answers_for_the_labels_a_request_gives(tiny_bert, kind, tmp_path):
    """Zero-shot per request: params={"candidate_labels": [...]} (declared in the signature, checked) answers as
    Flair's own predict_zero_shot for those labels; the model's own task is back for the next request."""
    from mlflow.exceptions import MlflowException
    from tinymodels import build_tiny_tars, spread_tars_classifier

    tars = build_tiny_tars(tiny_bert, kind)
    texts = [t for t in TEXTS if t.strip()][:8]
    labels = ["weather", "music", "location"] if kind == "classifier" else ["location", "organization"]
    if kind == "classifier":
        spread_tars_classifier(tars, texts, labels)
    own_task = _flair_labels(tars, texts) if kind == "classifier" else _flair_entities(tars, texts)
    expected = _zero_shot_expected(tars, texts, labels, kind)
    assert any(expected), "the zero-shot labels should find something"
    mlflow_flavor.save_model(tars, tmp_path / "model", parity=GATE)
    params = {p.name: p for p in mlflow.models.Model.load(str(tmp_path / "model")).signature.params.params}
    assert params["candidate_labels"].default == [] and params["candidate_labels"].shape == (-1,)
    pyfunc = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    answers = pyfunc.predict(texts, params={"candidate_labels": labels})
    if kind == "classifier":
        # the same labels; scores to 1e-4: the ONNX encoder's float rounding, magnified by the decoder that
        # spread_tars_classifier scales up to make the random model's answers differ
        _assert_same_labels(answers, expected)
        assert {a["label"] for row in answers for a in row} <= set(labels)
        _assert_same_labels(pyfunc.predict(texts), own_task)  # the current task again
    else:
        assert [[(e["text"], e["label"], e["start"], e["end"]) for e in row] for row in answers] == expected
        again = pyfunc.predict(texts)
        got = [[(e["text"], e["label"], e["start"], e["end"], round(e["score"], 5)) for e in row] for row in again]
        assert got == own_task
    if kind == "classifier":  # the command line: --label per candidate label
        import json

        from click.testing import CliRunner

        from mlflow_flavor.cli.commands import main

        args = ["predict", str(tmp_path / "model"), *texts[:3]] + [f"--label={label}" for label in labels]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == answers[:3]
    for bad, message in (
        (["weather", "weather"], "names 'weather' more than once"),
        (["weather", " "], "non-blank strings"),
        ([f"label {i}" for i in range(65)], "the limit is 64"),
    ):
        with pytest.raises(MlflowException, match=message):
            pyfunc.predict(texts[:1], params={"candidate_labels": bad})


def test_candidate_labels_on_a_model_that_is_not_zero_shot_are_refused(tmp_path):
    """Every param of every task is in the signature, so MLflow passes it on instead of dropping it with a
    warning, and the pyfunc refuses what does not apply with the model's own list (issue 23, item 3)."""
    from mlflow.exceptions import MlflowException

    classifier = build_classic_classifier("pool")
    mlflow_flavor.save_model(classifier, tmp_path / "model", parity=GATE)
    pyfunc = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    with pytest.raises(MlflowException, match="'candidate_labels' applies to Flair's zero-shot models"):
        pyfunc.predict(["a text"], params={"candidate_labels": ["sports"]})
    with pytest.raises(MlflowException, match="'split_sentences' does not apply to a text classifier"):
        pyfunc.predict(["a text"], params={"split_sentences": True})
    # a param of the other task at its default (as MLflow fills it in) is no error
    assert pyfunc.predict(["a text"], params={"split_sentences": False, "top_k": 1})[0]


@pytest.mark.parametrize(
    "cls, embeddings",
    [
        ("TokenClassifier", "transformer"),
        ("WordTagger", "words"),
        pytest.param("TokenClassifier", "words+flair-lms", marks=pytest.mark.slow),
    ],
)
def test_a_token_classifier_answers_as_flair(tiny_bert, cls, embeddings, tmp_path):
    """Flair's TokenClassifier (WordTagger, its older name): a tag per token decoded into spans; its transformer
    or character LMs exported to ONNX as a SequenceTagger's, word embeddings alone as Flair's own model."""
    from flair.embeddings import StackedEmbeddings, TransformerWordEmbeddings
    from tinymodels import build_tiny_flair_embeddings, build_token_classifier

    if embeddings == "transformer":
        members = TransformerWordEmbeddings(str(tiny_bert))
    elif embeddings == "words":
        members = build_tiny_word_embeddings()
    else:
        lms = [build_tiny_flair_embeddings(True), build_tiny_flair_embeddings(False, seed=1)]
        members = StackedEmbeddings([build_tiny_word_embeddings(), *lms])
    model = build_token_classifier(members, cls)
    texts = [t for t in TEXTS if t.strip()][:12] + [""]
    expected = _flair_entities(model, texts)
    assert len({label for row in expected for _, label, *_ in row}) > 1, "the random model should tell spans apart"
    mlflow_flavor.save_model(model, tmp_path / "model", parity=GATE)
    conf = mlflow.models.Model.load(str(tmp_path / "model")).flavors["flair_mlflow"]
    assert conf["model_class"] == cls and conf["backend"] == ("torch" if embeddings == "words" else "onnx")
    assert conf["parity"]["identical_sentences"] == conf["parity"]["sentences"]
    _keeps_flair(tmp_path / "model")
    answers = mlflow.pyfunc.load_model(str(tmp_path / "model")).predict(texts)
    got = [[(e["text"], e["label"], e["start"], e["end"], round(e["score"], 5)) for e in row] for row in answers]
    assert got == expected


PAIRS = [
    ("A man is playing a guitar .", "Someone makes music ."),
    ("Paris is the capital of France .", "Berlin is a city in Germany ."),
    ("The company reported record profits .", "Siemens lost money this year ."),
    ("", "An empty first text ."),
    ("Zoë Ångström flew to Łódź .", "Nobody travelled anywhere ."),
    ("", ""),
]


def _flair_pair_answers(model, pairs):
    """Flair's own predict on TextPairs (one call, as the pyfunc makes), as the pyfunc reports it."""
    from flair.data import TextPair

    points = [TextPair(Sentence(a), Sentence(b)) for a, b in pairs]
    # embedded separately, a pair with an empty text fails Flair's whole predict call: those get no answer
    model.predict([p for p in points if not model.embed_separately or (len(p.first) and len(p.second))])
    if type(model).__name__ == "TextPairRegressor":
        return [[float(x.value) for x in p.get_labels(model.label_type)] or [None] for p in points]
    return [
        sorted(((x.value, round(x.score, 5)) for x in p.get_labels(model.label_type)), key=lambda x: -x[1])
        for p in points
    ]


@pytest.mark.parametrize(
    "kind, embeddings",
    [
        ("classifier", "transformer"),
        ("regressor", "pool"),
        pytest.param("regressor", "transformer-separately", marks=pytest.mark.slow),
        pytest.param("classifier", "rnn", marks=pytest.mark.slow),
    ],
)
def test_a_text_pair_model_answers_pairs_as_flair(tiny_bert, kind, embeddings, tmp_path):
    """TextPairClassifier and TextPairRegressor: two texts per row (a DataFrame with text and text_pair, or a
    list of pairs); labels and scores, or a value, as Flair's own predict; the transformer exported to ONNX."""
    import pandas as pd
    from flair.embeddings import DocumentPoolEmbeddings, DocumentRNNEmbeddings, TransformerDocumentEmbeddings
    from tinymodels import build_text_pair_model

    if embeddings.startswith("transformer"):
        document = TransformerDocumentEmbeddings(str(tiny_bert), cls_pooling="mean")  # CLS barely varies here
    elif embeddings == "pool":
        document = DocumentPoolEmbeddings([build_tiny_word_embeddings()])
    else:
        document = DocumentRNNEmbeddings([build_tiny_word_embeddings()], hidden_size=8)
    model = build_text_pair_model(document, kind, embed_separately=embeddings != "transformer")
    expected = _flair_pair_answers(model, PAIRS)
    assert len({str(row) for row in expected[:5]}) > 2, "the random model should tell pairs apart"
    mlflow_flavor.save_model(model, tmp_path / "model", parity=GATE)
    logged = mlflow.models.Model.load(str(tmp_path / "model"))
    conf = logged.flavors["flair_mlflow"]
    _keeps_flair(tmp_path / "model")
    assert conf["task"] == f"text-pair-{'classification' if kind == 'classifier' else 'regression'}"
    assert conf["backend"] == ("onnx" if embeddings.startswith("transformer") else "torch")
    assert conf["parity"]["identical_sentences"] == conf["parity"]["sentences"] == GATE.num_sentences
    pyfunc = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    frame = pd.DataFrame({"text": [a for a, _ in PAIRS], "text_pair": [b for _, b in PAIRS]})
    answers = pyfunc.predict(frame)
    assert pyfunc.predict([list(p) for p in PAIRS]) == answers  # a list of pairs
    if kind == "classifier":
        assert [[(a["label"], round(a["score"], 5)) for a in row] for row in answers] == expected
        assert answers[-1] == []  # two empty texts: nothing, as Flair gives
    else:
        from exporter.quality.parity import VALUE_TOLERANCE as tolerance

        values = [row[0] for row in expected]
        assert [v is None for v in answers] == [v is None for v in values] and answers[-1] is None
        assert [a for a in answers if a is not None] == pytest.approx(
            [v for v in values if v is not None], rel=tolerance
        )
        assert logged.signature.outputs.to_dict() == [{"type": "double", "name": "value", "required": True}]
        (record,) = pyfunc.predict(frame[:1], params={"output": "records"})
        assert list(record) == ["value"] and record["value"] == pytest.approx(answers[0], rel=tolerance)


def test_a_text_pair_model_refuses_what_is_not_a_pair(tmp_path):
    from mlflow.exceptions import MlflowException
    from tinymodels import build_text_pair_model

    model = build_text_pair_model(__import__("flair").embeddings.DocumentPoolEmbeddings([build_tiny_word_embeddings()]))
    mlflow_flavor.save_model(model, tmp_path / "model", parity=GATE)
    pyfunc = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    for bad, message in (
        (["one text", "two", "three"], "not a pair"),
        ({"text": ["a", "b"], "text_pair": ["c"]}, "'text' holds 2 texts and 'text_pair' 1"),
        ([["a", None]], "Text 0 is missing"),
    ):
        with pytest.raises(MlflowException, match=message):
            pyfunc.predict(bad)
    with pytest.raises(MlflowException, match="'split_sentences' does not apply to a classifier of text pairs"):
        pyfunc.predict([["a", "b"]], params={"split_sentences": True})
    with pytest.raises(ValueError, match="text<TAB>text_pair"):
        save_bundle(model, tmp_path / "gold", ExportConfig(parity_sentences=["not a pair"]))
    # the user's own check pairs, as the lines of a --parity-sentences file give them
    own = save_bundle(model, tmp_path / "own", ExportConfig(parity_sentences=["A b .\tC d .", "E f .\tG h ."]))
    assert own.manifest["parity"]["sentences"] == 2


def test_predict_on_the_command_line_takes_pairs(tmp_path):
    import json

    from click.testing import CliRunner
    from flair.embeddings import DocumentPoolEmbeddings
    from tinymodels import build_text_pair_model

    from mlflow_flavor.cli.commands import main

    model = build_text_pair_model(DocumentPoolEmbeddings([build_tiny_word_embeddings()]), "regressor")
    mlflow_flavor.save_model(model, tmp_path / "model", parity=GATE)
    expected = mlflow.pyfunc.load_model(str(tmp_path / "model")).predict([list(p) for p in PAIRS[:3]])
    runner = CliRunner()
    args = [text for pair in PAIRS[:3] for text in pair]
    result = runner.invoke(main, ["predict", str(tmp_path / "model"), *args])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == pytest.approx(expected, rel=1e-5)
    lines = "\n".join("\t".join(pair) for pair in PAIRS[:3])
    result = runner.invoke(main, ["predict", str(tmp_path / "model"), "--file", "-"], input=lines)
    assert result.exit_code == 0 and json.loads(result.stdout) == pytest.approx(expected, rel=1e-5)
    result = runner.invoke(main, ["predict", str(tmp_path / "model"), "one", "two", "three"])
    assert result.exit_code == 2 and "two at a time" in result.output


#: the parity gate's texts for relation extractors: a random tagger labels most words of a paragraph as
#: entities, and a relation extractor classifies every pair of them (quadratic): short texts keep it seconds
SHORT = generate_sentences(16, seed=5, long_every=0)


def _flair_relations(model, texts):
    """Flair's own predict of a multitask model (tagger, then relation extractor), as the pyfunc reports it."""
    sentences = [Sentence(t) for t in texts if t.strip()]
    model.predict(sentences)
    out = iter(sentences)
    rows = []
    for text in texts:
        if not text.strip():
            rows.append(([], []))
            continue
        s = next(out)
        entities = [(x.text, x.tag, x.start_position, x.end_position) for x in s.get_spans("ner")]
        relations = [
            (r.first.text, r.first.start_position, r.second.text, r.second.start_position, r.tag, round(r.score, 5))
            for r in s.get_relations("relation")
        ]
        rows.append((entities, relations))
    return rows


@pytest.mark.parametrize("kind", ["RelationExtractor", "RelationClassifier"])
def test_a_relation_model_is_logged_with_its_tagger_and_answers_entities_and_relations(kind, tmp_path):
    """save_model(relation_model, path, tagger=ner): one model, Flair's MultitaskModel of the two as plain data
    (a RelationClassifier's entity markers kept as their name); each text answers {"entities": [...],
    "relations": [...]} with head and tail offsets, as Flair's own."""
    from tinymodels import build_relation_classifier, build_relation_extractor

    from exporter.format.tasks import with_tagger

    tagger = build_classic_tagger("words", use_crf=False)
    relations = build_relation_extractor() if kind == "RelationExtractor" else build_relation_classifier(tagger)
    texts = [t for t in TEXTS if t.strip()][:8] + [""]
    expected = _flair_relations(with_tagger(relations, tagger), texts)
    assert sum(len(r) for _, r in expected) > 3 and len({r[4] for _, rs in expected for r in rs}) > 1
    with pytest.raises(UnsupportedModelError, match=r"tagger=ner_model"):
        mlflow_flavor.save_model(relations, tmp_path / "alone")
    mlflow_flavor.save_model(relations, tmp_path / "model", tagger=tagger, parity_sentences=SHORT)
    logged = mlflow.models.Model.load(str(tmp_path / "model"))
    conf = logged.flavors["flair_mlflow"]
    assert conf["model_class"] == "MultitaskModel" and conf["task"] == "multitask" and conf["backend"] == "torch"
    assert conf["parity"]["identical_sentences"] == conf["parity"]["sentences"]
    assert [c.name for c in logged.signature.outputs.inputs] == ["entities", "relations"]
    answers = mlflow.pyfunc.load_model(str(tmp_path / "model")).predict(texts)
    got = []
    for text, answer in zip(texts, answers):
        assert set(answer) == {"entities", "relations"}
        for r in answer["relations"]:
            assert text[r["head"]["start"] : r["head"]["end"]] == r["head"]["text"]
        got.append(
            (
                [(e["text"], e["label"], e["start"], e["end"]) for e in answer["entities"]],
                [
                    (
                        r["head"]["text"],
                        r["head"]["start"],
                        r["tail"]["text"],
                        r["tail"]["start"],
                        r["label"],
                        round(r["score"], 5),
                    )
                    for r in answer["relations"]
                ],
            )
        )
    assert got == expected


def test_a_users_multitask_model_answers_each_task_under_its_name(tmp_path):
    """A Flair MultitaskModel of a tagger and a classifier: every text answered by both, under the task names."""
    from flair.models import MultitaskModel

    tagger, classifier = build_classic_tagger("words", use_crf=False), build_classic_classifier("pool")
    model = MultitaskModel([tagger, classifier], task_ids=["ner", "topic"])
    texts = [t for t in TEXTS if t.strip()][:8]
    entities = _flair_entities(tagger, texts)
    labels = _flair_labels(classifier, texts)
    mlflow_flavor.save_model(model, tmp_path / "model", parity=GATE)
    answers = mlflow.pyfunc.load_model(str(tmp_path / "model")).predict(texts)
    assert [
        [(e["text"], e["label"], e["start"], e["end"], round(e["score"], 5)) for e in a["ner"]] for a in answers
    ] == entities
    # Flair scored the texts batched together, the bundle at canonical widths: the last float digits may differ,
    # and rounding to 5 places turns 1e-7 into 1e-5 at a boundary (seen on AVX-512: 0.68073 / 0.68074)
    topics = [[(x["label"], x["score"]) for x in a["topic"]] for a in answers]
    assert [[label for label, _ in a] for a in topics] == [[label for label, _ in a] for a in labels]
    assert [[score for _, score in a] for a in topics] == [
        [pytest.approx(score, abs=2e-5) for _, score in a] for a in labels
    ]


def test_multitask_models_the_bundle_cannot_carry_are_refused(tmp_path):
    from flair.embeddings import DocumentPoolEmbeddings
    from flair.models import MultitaskModel
    from tinymodels import build_relation_extractor, build_text_pair_model

    pairs = build_text_pair_model(DocumentPoolEmbeddings([build_tiny_word_embeddings()]))
    with pytest.raises(UnsupportedModelError, match=r"task 'pairs' is a flair\.models\..*TextPairClassifier"):
        save_bundle(MultitaskModel([pairs], task_ids=["pairs"]), tmp_path / "out" / "pairs")
    orphan = MultitaskModel([build_relation_extractor()], task_ids=["relations"])
    with pytest.raises(UnsupportedModelError, match="reads entities labeled 'ner', which no tagger before it"):
        save_bundle(orphan, tmp_path / "out" / "orphan")
    with pytest.raises(UnsupportedModelError, match="tagger labels 'pos' entities"):
        from exporter.format.tasks import with_tagger

        with_tagger(build_relation_extractor(), build_pos_tagger())
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_a_multitask_bundle_is_plain_data_and_names_only_listed_tasks(tmp_path):
    """Flair would build any model class its registry knows from a task's state: a bundle naming another class
    is refused before anything is built; a planted payload never runs."""
    import torch
    from test_safe_loading import _rewrite_manifest
    from tinymodels import build_relation_extractor

    from exporter.format.tasks import with_tagger

    model = with_tagger(build_relation_extractor(), build_classic_tagger("words", use_crf=False))
    info = save_bundle(model, tmp_path / "bundle", ExportConfig(parity_sentences=SHORT))
    assert info.manifest["model_pickle"] == "weights-only"
    state = torch.load(info.path / "model.pt", weights_only=False)
    state["model_states"]["relations"]["__cls__"] = "SpanClassifier"
    torch.save(state, info.path / "model.pt")
    _rewrite_manifest(info.path, lambda manifest: None)
    with pytest.raises(UnsupportedModelError, match="task 'relations' is a 'SpanClassifier'"):
        load_bundle(info.path)
    _assert_a_planted_payload_never_runs(
        save_bundle(model, tmp_path / "again", ExportConfig(parity_sentences=SHORT)).path, tmp_path
    )


def test_the_command_line_exports_a_relation_extractor_with_its_tagger(tmp_path):
    import json

    from click.testing import CliRunner
    from tinymodels import build_relation_extractor

    from exporter.format.modelfile import save_plain
    from mlflow_flavor.cli.commands import main

    relations = save_plain(build_relation_extractor(), tmp_path / "relations.pt")
    tagger = save_plain(build_classic_tagger("words", use_crf=False), tmp_path / "ner.pt")
    checks = tmp_path / "checks.txt"
    checks.write_text("\n".join(SHORT), encoding="utf-8")
    args = [
        "export",
        str(relations),
        str(tmp_path / "bundle"),
        "--tagger",
        str(tagger),
        "--parity-sentences",
        str(checks),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    answers = json.loads(CliRunner().invoke(main, ["predict", str(tmp_path / "bundle"), SHORT[0]]).stdout)
    assert set(answers[0]) == {"entities", "relations"} and answers[0]["entities"]
    result = CliRunner().invoke(
        main, ["export", str(relations), str(tmp_path / "alone"), "--parity-sentences", str(checks)]
    )
    assert result.exit_code != 0 and "--tagger NER.pt" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    "kind", [pytest.param("pairs", marks=pytest.mark.slow), "relations", pytest.param("tars", marks=pytest.mark.slow)]
)
def test_bench_takes_any_family(tiny_bert, kind, tmp_path):
    """Flair's PyTorch predict against each backend that applies, in one run: a classifier of text pairs (its
    transformer exported), a relation extractor with its tagger (Flair's own model), a TARS model."""
    from flair.embeddings import TransformerDocumentEmbeddings
    from tinymodels import build_relation_extractor, build_text_pair_model, build_tiny_tars

    from exporter.format.modelfile import save_plain
    from exporter.format.tasks import with_tagger
    from exporter.tools.bench import BenchConfig, run_benchmark

    if kind == "pairs":
        model = build_text_pair_model(TransformerDocumentEmbeddings(str(tiny_bert), cls_pooling="mean"))
    elif kind == "relations":
        model = with_tagger(build_relation_extractor(), build_classic_tagger("words", use_crf=False))
    else:
        model = build_tiny_tars(tiny_bert)
    path = save_plain(model, tmp_path / "model.pt")
    config = BenchConfig(
        model_path=path,
        num_sentences=16,
        min_words=1,
        batch_sizes=(8,),
        small_batch_sentences=16,
        repeats=1,
        measure_memory=False,
        backends=("onnx", "torch"),
    )
    result = run_benchmark(config, log_to_mlflow=False)
    expected = ["flair-pytorch", "torch"] if kind == "relations" else ["flair-pytorch", "onnx", "torch"]
    assert [row["backend"] for row in result.rows] == expected
    pairs = 8 if kind == "pairs" else 16
    for row in result.rows:
        assert row["sentences"] == pairs and row["identical"] == pairs, row
    if kind == "pairs":  # the memory probe (a fresh process) predicts pairs too
        from exporter.tools.bench import _peak_memory

        assert _peak_memory("flair", path, [["A first text .", "A second one ."]], 1) > 100


@pytest.mark.slow
def test_candidate_labels_reach_a_served_tars_model_over_rest(tiny_bert, tmp_path):
    """A JSON list in the request's params (MLflow validates it against the signature's string array)."""
    from servers import model_server, post_json
    from tinymodels import build_tiny_tars, spread_tars_classifier

    tars = build_tiny_tars(tiny_bert)
    texts = [t for t in TEXTS if t.strip()][:4]
    labels = ["weather", "music", "location"]
    spread_tars_classifier(tars, texts, labels)
    mlflow_flavor.save_model(tars, tmp_path / "model", parity=GATE)
    local = mlflow.pyfunc.load_model(str(tmp_path / "model")).predict(texts, params={"candidate_labels": labels})
    with model_server(str(tmp_path / "model"), tmp_path / "serve.log") as url:
        status, body = post_json(f"{url}/invocations", {"inputs": texts, "params": {"candidate_labels": labels}})
        assert status == 200, body
        assert [[a["label"] for a in row] for row in body["predictions"]] == [
            [a["label"] for a in row] for row in local
        ]
        status, body = post_json(f"{url}/invocations", {"inputs": texts, "params": {"candidate_labels": ["a", "a"]}})
        assert status == 400 and "more than once" in str(body)


def test_a_state_flair_would_read_otherwise_than_checked_is_refused(tmp_path):
    """Review findings: a model.pt without its class, or naming embeddings under a key another model class reads,
    would let Flair build what the allow-list never saw."""
    import torch
    from test_safe_loading import _rewrite_manifest

    tagger = build_classic_tagger("words", use_crf=False)
    for name, change, message in (
        ("no class", lambda s: s.pop("__cls__"), "names no model class"),
        (
            "second key",
            lambda s: s.__setitem__("document_embeddings", {"__cls__": "TransformerJitDocumentEmbeddings"}),
            "TransformerJitDocumentEmbeddings",
        ),
        ("tasks", lambda s: s.update({"__cls__": "MultitaskModel", "model_states": {"t": "x"}}), "mapping of task"),
    ):
        info = save_bundle(tagger, tmp_path / name, ExportConfig(parity=GATE))
        state = torch.load(info.path / "model.pt", weights_only=False)
        change(state)
        torch.save(state, info.path / "model.pt")
        _rewrite_manifest(info.path, lambda manifest: None)
        with pytest.raises((UnsafeModelFileError, UnsupportedModelError), match=message):
            load_bundle(info.path)


def test_request_details_the_review_found():
    import numpy as np
    import pandas as pd

    from exporter.errors import InputError
    from mlflow_flavor.inputs import normalize_pairs
    from mlflow_flavor.pyfunc import parse_params

    # numpy scalars (a caller without MLflow in between) are values like any other
    assert parse_params({"top_k": np.int64(2)}, "text-classification")["top_k"] == 2
    assert parse_params({"split_sentences": np.bool_(False)}, "text-classification")["top_k"] == 0
    # Flair's TARS reads 'O' and 'x-...' as tags: such candidate labels would come back as other names
    with pytest.raises(InputError, match="'e-commerce'"):
        parse_params({"candidate_labels": ["sports", "e-commerce"]}, zero_shot=True)
    # a mapping of pandas Series is a pair input too; a pair's refusal names the pair shapes
    pairs = normalize_pairs({"text": pd.Series(["a", "b"]), "text_pair": pd.Series(["c", "d"])})
    assert pairs == [("a", "c"), ("b", "d")]
    with pytest.raises(InputError, match="text_pair"):
        normalize_pairs([["a", 3]])
