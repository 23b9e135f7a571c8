"""Exported ONNX encoders tag exactly like the original Flair model."""

from __future__ import annotations

import pytest
from conftest import entities_of
from tinymodels import build_tiny_tagger

from exporter import ExportConfig, ParityConfig, load_bundle, save_bundle
from exporter.corpus import generate_sentences

# 200 check sentences; every 16th is ~420 words, far beyond the tiny BERT's 64-token maximum length.
PARITY_TEXTS = generate_sentences(200, seed=3)


def test_check_sentences_cover_long_inputs(tiny_tagger):
    tokenizer = tiny_tagger.embeddings.tokenizer
    lengths = [len(tokenizer(t.split(), is_split_into_words=True)["input_ids"]) for t in PARITY_TEXTS]
    assert sum(n > tokenizer.model_max_length for n in lengths) >= 12


@pytest.mark.parametrize("pooling", ["first", "last", "first_last", "mean"])
def test_every_subtoken_pooling_is_identical_on_200_sentences(tiny_bert, tmp_path, pooling):
    tagger = build_tiny_tagger(tiny_bert, subtoken_pooling=pooling)
    info = save_bundle(tagger, tmp_path / "b", ExportConfig(parity_sentences=tuple(PARITY_TEXTS)))
    report = info.manifest["parity"]
    assert report["sentences"] == 200
    assert report["identical_sentences"] == 200, report["worst"]
    assert report["entities_original"] > 100  # the random head does predict entities
    assert report["max_abs_embedding_diff"] < 1e-4
    # independent of the report: load and compare again
    exported = load_bundle(info.path)
    assert entities_of(exported, PARITY_TEXTS[:48]) == entities_of(tagger, PARITY_TEXTS[:48])


@pytest.mark.parametrize(
    ("layers", "layer_mean", "use_crf", "use_rnn"),
    [("-1,-2", False, True, False), ("all", True, False, False), ("0,-1", True, False, True), ("-2", True, True, True)],
)
def test_layer_settings_and_heads(tiny_bert, tmp_path, layers, layer_mean, use_crf, use_rnn):
    tagger = build_tiny_tagger(tiny_bert, layers=layers, layer_mean=layer_mean, use_crf=use_crf, use_rnn=use_rnn)
    info = save_bundle(tagger, tmp_path / "b", ExportConfig(parity_sentences=tuple(PARITY_TEXTS[:64])))
    assert info.manifest["parity"]["identical_sentences"] == 64
    # only the hidden states Flair uses are graph outputs
    settings = info.manifest["embeddings"]
    assert len(info.manifest["onnx"]["outputs"]) == len(
        {i % (settings["num_hidden_layers"] + 1) for i in settings["layer_indexes"]}
    )


def test_without_long_sentence_support_truncation_matches(tiny_bert, tmp_path):
    tagger = build_tiny_tagger(tiny_bert, allow_long_sentences=False)
    info = save_bundle(tagger, tmp_path / "b", ExportConfig(parity_sentences=tuple(PARITY_TEXTS[:32])))
    assert info.manifest["parity"]["identical_sentences"] == 32


def test_bundle_holds_no_second_copy_of_the_transformer(tiny_tagger, tmp_path, tiny_tagger_file):
    import torch

    info = save_bundle(tiny_tagger, tmp_path / "b", ExportConfig(parity=ParityConfig(enabled=False)))
    state = torch.load(info.path / "model.pt", weights_only=False)
    assert not [k for k in state["state_dict"] if k.startswith("embeddings.")]
    assert (info.path / "model.pt").stat().st_size < tiny_tagger_file.stat().st_size / 4


def test_torch_backend_is_flair_itself(tiny_tagger, tmp_path):
    info = save_bundle(
        tiny_tagger, tmp_path / "b", ExportConfig(backend="torch", parity_sentences=tuple(PARITY_TEXTS[:16]))
    )
    assert info.manifest["backend"] == "torch"
    assert info.manifest["parity"]["identical_sentences"] == 16
    model = load_bundle(info.path)
    assert type(model.embeddings).__name__ == "TransformerWordEmbeddings"
