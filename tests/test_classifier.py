"""Text classifiers on TransformerDocumentEmbeddings: export, flavor, pyfunc, serving."""

from __future__ import annotations

import mlflow
import pytest
from conftest import log_and_stage
from servers import model_server, post_json
from tinymodels import build_tiny_classifier

from exporter import ExportConfig, load_bundle, save_bundle
from exporter.quality.corpus import generate_sentences
from exporter.quality.parity import predictions

TEXTS = generate_sentences(64, seed=31)  # every 16th text is far beyond the tiny BERT's 64 tokens


def labels_of(model, texts):
    from flair.data import Sentence

    sentences = [Sentence(t) for t in texts]
    model.predict(sentences, mini_batch_size=16)
    return [sorted(predictions(s, model.label_type)) for s in sentences]


@pytest.mark.parametrize(
    ("backend", "settings"),
    [
        ("onnx", {"cls_pooling": "cls"}),
        ("onnx", {"cls_pooling": "mean", "layers": "-1,-2", "layer_mean": False}),
        ("onnx", {"cls_pooling": "max", "multi_label": True}),
        ("torchscript", {"cls_pooling": "mean", "layers": "all"}),
    ],
)
def test_classifier_exports_with_identical_labels(tiny_bert, tmp_path, backend, settings):
    classifier = build_tiny_classifier(tiny_bert, **settings)
    expected = labels_of(classifier, TEXTS)
    assert len({tuple(x) for x in expected}) > 1, "the random classifier should not answer one label only"
    info = save_bundle(classifier, tmp_path / "b", ExportConfig(backend=backend, parity_sentences=tuple(TEXTS)))
    assert info.manifest["task"] == "text-classification"
    assert info.manifest["parity"]["identical_sentences"] == len(TEXTS)
    assert 0 <= info.manifest["parity"]["max_label_score_diff"] < 1e-4  # fp32: scores agree to float noise
    assert labels_of(load_bundle(info.path), TEXTS) == expected


@pytest.mark.slow
def test_classifier_through_registry_pyfunc_and_http(tiny_bert, tracking, tmp_path):
    classifier = build_tiny_classifier(tiny_bert)
    log_and_stage(classifier, name="topic", parity_sentences=TEXTS[:16])
    pyfunc = mlflow.pyfunc.load_model("models:/topic/Production")
    answers = pyfunc.predict(TEXTS[:8])
    assert [[(x["label"],) for x in a] for a in answers] == labels_of(classifier, TEXTS[:8])
    top2 = pyfunc.predict(TEXTS[:8], params={"top_k": 2})
    assert all(len(a) == 2 and a[0]["score"] >= a[1]["score"] for a in top2)
    assert all(
        abs(sum(x["score"] for x in pyfunc.predict([t], params={"top_k": 4})[0]) - 1.0) < 1e-4 for t in TEXTS[:3]
    )
    assert pyfunc.predict(["", "  "]) == [[], []]
    signature = mlflow.models.Model.load("models:/topic/Production").signature
    assert "labels" in signature.outputs.input_names() and signature.params is not None
    with model_server("models:/topic/Production", tmp_path / "serve.log", env={"MLFLOW_TRACKING_URI": tracking}) as url:
        status, body = post_json(f"{url}/invocations", {"inputs": TEXTS[:8]})
        assert status == 200 and body["predictions"] == answers
        status, body = post_json(f"{url}/invocations", {"inputs": [3]})
        assert 400 <= status < 500
