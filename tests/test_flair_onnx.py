"""The seed's own workflow: a tagger exported with Flair's export_onnx + optimize_model + quantize_model."""

from __future__ import annotations

import os
import shutil

import mlflow
import onnx
import pytest
from conftest import entities_of, log_and_stage
from servers import model_server, post_json
from tinymodels import build_tiny_tagger

import mlflow_flavor
from exporter import load_bundle, save_bundle
from exporter.backends.flair_onnx import legacy_onnx_export
from exporter.errors import UnsafeModelFileError
from exporter.quality.corpus import generate_sentences

TEXTS = generate_sentences(24, seed=13, long_every=0)


@pytest.fixture()
def flair_onnx_tagger(tiny_bert, tmp_path, monkeypatch):
    """Flair's tutorial, with relative paths as users write them, in a working directory of its own."""
    from flair.data import Sentence

    workdir = tmp_path / "export-here"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    tagger = build_tiny_tagger(tiny_bert, allow_long_sentences=False)
    expected = entities_of(tagger, TEXTS)
    with legacy_onnx_export():
        onnx_embeddings = tagger.embeddings.export_onnx(
            "flair.onnx", [Sentence(t) for t in TEXTS[:4]], providers=["CPUExecutionProvider"]
        )
    tagger.embeddings = onnx_embeddings
    onnx_embeddings.optimize_model("flair-opt.onnx", use_external_data_format=True, model_type="bert")
    onnx_embeddings.quantize_model(
        "flair-q.onnx", use_external_data_format=True, extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT}
    )
    return tagger, expected, workdir


def test_flair_export_without_the_helper_fails_on_this_torch(tiny_bert, tmp_path):
    from flair.data import Sentence

    tagger = build_tiny_tagger(tiny_bert)
    with pytest.raises(Exception):  # noqa: B017 - torch raises assorted types from the dynamo exporter
        tagger.embeddings.export_onnx(str(tmp_path / "x.onnx"), [Sentence("A test .")])


def test_quantized_flair_onnx_model_is_bundled_with_external_data(flair_onnx_tagger, tmp_path):
    tagger, _, workdir = flair_onnx_tagger
    external = [p for p in os.listdir(workdir) if p.startswith("flair-q") and p != "flair-q.onnx"]
    assert external, "quantize_model(use_external_data_format=True) writes external data"
    info = save_bundle(tagger, tmp_path / "bundle")
    assert info.manifest["backend"] == "flair-onnx"
    assert "flair_onnx/flair-q.onnx" in info.manifest["files"]
    assert all(f"flair_onnx/{name}" in info.manifest["files"] for name in external)
    assert info.manifest["parity"]["identical_sentences"] == info.manifest["parity"]["sentences"]
    reference = entities_of(tagger, TEXTS)
    assert any(reference)
    moved = tmp_path / "moved" / "bundle"
    shutil.copytree(info.path, moved)
    shutil.rmtree(workdir)  # the original files are gone: the bundle must stand alone
    os.chdir(tmp_path)
    assert info.manifest["model_pickle"] == "needs-allow-pickle"
    with pytest.raises(UnsafeModelFileError, match="export_onnx model.*allow_pickle=True.*FLAIR_MLFLOW_ALLOW_PICKLE=1"):
        load_bundle(moved)
    model = load_bundle(moved, allow_pickle=True)
    assert entities_of(model, TEXTS) == reference
    # the bundle's runtime settings reach the session Flair built (Flair's own options cannot spin down)
    options = load_bundle(
        moved, runtime={"intra_op_num_threads": 1}, allow_pickle=True
    ).embeddings.session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


@pytest.mark.slow
def test_flair_onnx_model_is_logged_and_served_from_another_directory(
    flair_onnx_tagger, tracking, tmp_path, monkeypatch
):
    tagger, _, workdir = flair_onnx_tagger
    reference = entities_of(tagger, TEXTS)
    log_and_stage(tagger)
    shutil.rmtree(workdir)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)
    with pytest.raises(mlflow.exceptions.MlflowException, match="FLAIR_MLFLOW_ALLOW_PICKLE=1"):
        mlflow.pyfunc.load_model("models:/ner/Production")
    monkeypatch.setenv("FLAIR_MLFLOW_ALLOW_PICKLE", "1")  # the opt-in of the process that loads (and serves) it
    pyfunc = mlflow.pyfunc.load_model("models:/ner/Production")
    predicted = [[(e["start"], e["end"], e["label"]) for e in ents] for ents in pyfunc.predict(TEXTS)]
    assert predicted == [sorted(e) for e in reference]
    with model_server("models:/ner/Production", tmp_path / "serve.log", env={"MLFLOW_TRACKING_URI": tracking}) as url:
        status, body = post_json(f"{url}/invocations", {"inputs": TEXTS})
    assert status == 200
    assert [[(e["start"], e["end"], e["label"]) for e in ents] for ents in body["predictions"]] == predicted


@pytest.mark.slow  # the fast set keeps the Flair-ONNX model's bundling (test_quantized_flair_onnx_model_...)
def test_flair_jit_embeddings_are_logged_as_they_are(tiny_bert, monkeypatch, tmp_path):
    """Flair's TorchScript workflow: the traced module lives inside the .pt, so the torch bundle serves it."""
    import torch
    from flair.data import Sentence
    from flair.embeddings import TransformerJitWordEmbeddings

    tagger = build_tiny_tagger(tiny_bert, allow_long_sentences=False)
    embedding = tagger.embeddings

    class JitWrapper(torch.nn.Module):
        def __init__(self, embedding):
            super().__init__()
            self.embedding = embedding

        def forward(self, input_ids, attention_mask, word_ids, token_lengths):
            return self.embedding.forward(
                input_ids=input_ids, attention_mask=attention_mask, word_ids=word_ids, token_lengths=token_lengths
            )["token_embeddings"]

    wrapper = JitWrapper(embedding)
    names, params = TransformerJitWordEmbeddings.parameter_to_list(embedding, wrapper, [Sentence(t) for t in TEXTS[:4]])
    script = torch.jit.trace(wrapper, params)
    expected = entities_of(tagger, TEXTS)
    tagger.embeddings = TransformerJitWordEmbeddings.create_from_embedding(script, embedding, names)
    assert entities_of(tagger, TEXTS) == expected
    with mlflow.start_run():
        info = mlflow_flavor.log_model(tagger, name="ner")
    assert info.flavors["flair_mlflow"]["backend"] == "torch"
    # the main job asked for onnx: the run says what was asked and what was bundled
    from mlflow_flavor.cli.job import run_log_job

    path = tmp_path / "jit.pt"
    tagger.save(path)
    result = run_log_job(str(path), backend="onnx", registered_model_name=None)
    params = mlflow.get_run(result.run_id).data.params
    assert params["backend"] == "onnx" and params["bundled_backend"] == "torch"
    with pytest.raises(mlflow.exceptions.MlflowException, match="TorchScript .JIT. model.*FLAIR_MLFLOW_ALLOW_PICKLE"):
        mlflow.pyfunc.load_model(info.model_uri)
    monkeypatch.setenv("FLAIR_MLFLOW_ALLOW_PICKLE", "1")
    pyfunc = mlflow.pyfunc.load_model(info.model_uri)
    predicted = [[(e["start"], e["end"], e["label"]) for e in ents] for ents in pyfunc.predict(TEXTS)]
    assert predicted == [sorted(e) for e in expected]
