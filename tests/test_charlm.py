"""Flair's character language models (FlairEmbeddings) exported by the onnx backend (issue 21): Flair's rules
around the language model kept exactly (markers, offsets, whitespace, lower case, untokenized text, chunks),
length buckets over characters, the rest of the model Flair's own, model.pt without the language models'
weights, int8 through ONNX Runtime's DynamicQuantizeLSTM, and the options that do not apply refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flair.data import Sentence
from flair.embeddings import FlairEmbeddings, StackedEmbeddings
from tinymodels import build_classic_tagger, build_tiny_flair_embeddings, build_tiny_word_embeddings

from exporter import (
    ConfigError,
    ExportConfig,
    OnnxOptions,
    ParityConfig,
    TorchScriptOptions,
    load_bundle,
    save_bundle,
)
from exporter.backends import onnx_quantize
from exporter.errors import BundleError
from exporter.format.modelfile import load_state
from exporter.quality.corpus import generate_sentences
from exporter.runtime.charlm import CharLMEmbeddings, lm_params

TEXTS = generate_sentences(12, seed=5, long_every=0) + [
    "Zoë Ångström flew to Łódź .",  # characters outside the dictionary read as index 0, as in Flair
    "x",
    "A much longer sentence , with punctuation ; and numbers like 1,234.5 , to cross several chunks of characters .",
]
GATE = ParityConfig(num_sentences=16)


def _torch_lm(lm):
    """A CharLM that runs Flair's own language model (what the exported graph must compute)."""

    def run(chars: np.ndarray, state):
        with torch.no_grad():
            hidden = state if state is not None else lm.init_hidden(chars.shape[1])
            outputs, hidden = lm.forward(torch.from_numpy(chars), hidden, decode=False)
        return outputs.numpy(), hidden

    return run


def _embeddings_of(embeddings, texts, plain: bool = False):
    sentences = [Sentence(t, use_tokenizer=not plain) for t in texts]
    embeddings.embed(sentences)
    return [torch.stack([t.get_embedding() for t in s]) for s in sentences]


@pytest.mark.parametrize(
    "flags",
    [
        {},
        {"with_whitespace": False},
        {"is_lower": True},
        {"tokenized_lm": False},
        {"chars_per_chunk": 7},  # many chunks per sentence: the state carried across them
    ],
    ids=lambda f: ",".join(f) or "defaults",
)
@pytest.mark.parametrize("forward", [True, False], ids=["forward", "backward"])
def test_the_runtime_reads_the_language_model_where_flair_does(flags, forward):
    original = build_tiny_flair_embeddings(forward, seed=3)
    for name, value in flags.items():
        setattr(original, name, value)
    # texts with and without whitespace after tokens ("1,234.5 ," and "Łódź ." keep Flair's offsets honest)
    expected = _embeddings_of(original, TEXTS)
    for buckets in (True, False):  # groups of similar length, or one group padded as Flair pads
        runtime = CharLMEmbeddings(lm_params(original), _torch_lm(original.lm), step_cost=0.5, buckets=buckets)
        assert runtime.embedding_length == original.embedding_length
        for e, g in zip(expected, _embeddings_of(runtime, TEXTS)):
            assert e.shape == g.shape
            assert torch.allclose(e, g, atol=1e-6), (e - g).abs().max()


def test_buckets_cut_a_batch_of_mixed_lengths_into_groups():
    runtime = CharLMEmbeddings(lm_params(build_tiny_flair_embeddings(True)), _torch_lm(None), step_cost=2.0)
    lengths = [200, 12, 13, 198, 11, 14]
    groups = runtime.groups(lengths)
    assert sorted(i for g in groups for i in g) == list(range(6)) and len(groups) == 2
    assert sorted(groups[0]) == [0, 3]
    assert len(CharLMEmbeddings(lm_params(build_tiny_flair_embeddings(True)), None, buckets=False).groups(lengths)) == 1
    alone = CharLMEmbeddings(lm_params(build_tiny_flair_embeddings(True)), None, max_rows=1).groups(lengths)
    assert sorted(alone) == [[i] for i in range(6)]  # max_call_rows=1: every sentence in a call of its own


def test_a_classic_tagger_gets_its_language_models_exported_to_onnx(tmp_path):
    tagger = build_classic_tagger("flair")
    info = save_bundle(tagger, tmp_path / "bundle", ExportConfig(backend="onnx", parity=GATE))
    section = info.manifest["onnx"]
    assert [(e["file"], e["forward"]) for e in section["char_lms"]] == [
        ("charlm-0.onnx", True),
        ("charlm-1.onnx", False),
    ]
    assert info.manifest["parity"]["identical_sentences"] == info.manifest["parity"]["sentences"] == 16
    assert sorted(info.manifest["files"]) == ["charlm-0.onnx", "charlm-1.onnx", "model.pt"]
    # model.pt: everything but the language models' weights, as plain data
    state = load_state(info.path / "model.pt")  # torch.load(weights_only=True) with Flair's plain classes
    assert [k for k in state["state_dict"] if ".lm." in k] == []
    assert "embeddings.list_embedding_0.embedding.weight" in state["state_dict"]  # the word embeddings stay
    loaded = load_bundle(info.path, allow_pickle=False)
    members = [type(e).__name__ for e in loaded.embeddings.embeddings]
    assert members == ["WordEmbeddings", "CharLMEmbeddings", "CharLMEmbeddings"]
    for e, g in zip(_embeddings_of(tagger.embeddings, TEXTS), _embeddings_of(loaded.embeddings, TEXTS)):
        assert torch.allclose(e, g, atol=1e-5)
    # Flair's own loader cannot run the exported language models: it says how to load the bundle
    from flair.models import SequenceTagger

    with pytest.raises(BundleError, match="load the bundle with exporter.load_bundle"):
        SequenceTagger.load(state)


_REAL_CHAR_LM_INT8 = onnx_quantize.CHAR_LM_RECIPES["int8-dynamic"]


def _unfaithful_char_lm_int8(target, options):
    """The real int8 recipe, then every float initializer of the quantized graph (biases, scales, the float
    weights left) negated: an int8 export that cannot answer as the original, on any CPU (ONNX Runtime's int8 LSTM
    alone passes a strict gate on AVX-512 VNNI)."""
    from onnx import numpy_helper

    model, record = _REAL_CHAR_LM_INT8(target, options)
    for tensor in model.graph.initializer:
        values = numpy_helper.to_array(tensor)
        if values.dtype.kind == "f" and values.size > 1:
            tensor.CopyFrom(numpy_helper.from_array(-values, tensor.name))
    return model, record


def test_a_failed_int8_gate_on_language_models_points_to_torchscript_int8(tmp_path, monkeypatch):
    from exporter.errors import ParityError

    recipes = {"int8-dynamic": _unfaithful_char_lm_int8}
    monkeypatch.setattr(onnx_quantize, "CHAR_LM_RECIPES", recipes)
    tagger = build_classic_tagger("flair")
    strict = ParityConfig(min_entity_f1=1.0, min_tag_agreement=1.0)
    texts = generate_sentences(80, seed=9, long_every=0)
    config = ExportConfig(backend="onnx", onnx=OnnxOptions(quantize="int8"), parity=strict, parity_sentences=texts)
    with pytest.raises(ParityError, match=r"backend='torchscript' with TorchScriptOptions\(quantize='int8'\)"):
        save_bundle(tagger, tmp_path / "bundle", config)
    assert not (tmp_path / "bundle").exists()


def test_int8_quantizes_the_lstms_with_dynamic_quantize_lstm(tmp_path):
    import onnx

    tagger = build_classic_tagger("flair")
    config = ExportConfig(backend="onnx", onnx=OnnxOptions(quantize="int8"), parity=ParityConfig(enabled=False))
    info = save_bundle(tagger, tmp_path / "bundle", config)
    quantization = info.manifest["onnx"]["quantization"]
    assert quantization["recipe"] == "int8-dynamic" and quantization["batch_independent"] is False
    ops = {node.op_type for node in onnx.load(str(info.path / "charlm-0.onnx")).graph.node}
    assert "DynamicQuantizeLSTM" in ops and "LSTM" not in ops
    loaded = load_bundle(info.path)
    for e, g in zip(_embeddings_of(tagger.embeddings, TEXTS), _embeddings_of(loaded.embeddings, TEXTS)):
        assert e.shape == g.shape and not torch.equal(e, g)
        assert (e - g).norm() / e.norm() < 0.2  # int8: close, not equal


@pytest.mark.parametrize(
    "options, option",
    [
        (OnnxOptions(optimize="all"), "optimize"),
        (OnnxOptions(precision="fp16", fp16_fallback=True), "precision"),
        (OnnxOptions(external_data=True), "external_data"),
        (OnnxOptions(quantize="int8-block32"), "quantize"),
    ],
    ids=["optimize", "fp16", "external-data", "block32"],
)
def test_options_for_transformer_encoders_are_refused_for_language_models(options, option, tmp_path):
    tagger = build_classic_tagger("flair")
    out = tmp_path / "bundle"
    with pytest.raises(ConfigError) as refused:
        save_bundle(tagger, out, ExportConfig(backend="onnx", onnx=options, parity=ParityConfig(enabled=False)))
    assert refused.value.option == option
    assert not out.exists()  # nothing half-written


def test_language_models_under_a_document_rnn_are_exported_too(tmp_path):
    """Any place Flair's loader builds embeddings from: here inside a document RNN's stack."""
    import flair
    from flair.data import Dictionary
    from flair.embeddings import DocumentRNNEmbeddings
    from flair.models import TextClassifier

    flair.set_seed(1)
    embeddings = DocumentRNNEmbeddings(
        [build_tiny_word_embeddings(), build_tiny_flair_embeddings(False)], hidden_size=8
    )
    labels = Dictionary(add_unk=False)
    for label in ("A", "B"):
        labels.add_item(label)
    classifier = TextClassifier(embeddings, label_type="topic", label_dictionary=labels).eval()
    info = save_bundle(classifier, tmp_path / "bundle", ExportConfig(backend="onnx", parity=GATE))
    assert len(info.manifest["onnx"]["char_lms"]) == 1
    loaded = load_bundle(info.path)
    inner = loaded.embeddings.embeddings
    assert isinstance(inner, StackedEmbeddings) and type(inner.embeddings[1]) is CharLMEmbeddings
    sentences = [[Sentence(t) for t in TEXTS] for _ in range(2)]
    classifier.predict(sentences[0])
    loaded.predict(sentences[1])
    for a, b in zip(*sentences):
        assert [(x.value, round(x.score, 5)) for x in a.get_labels("topic")] == [
            (x.value, round(x.score, 5)) for x in b.get_labels("topic")
        ]
    assert not any(isinstance(m, FlairEmbeddings) for m in loaded.modules())


def test_the_reprojection_skips_padding_rows_and_answers_as_flairs_linear():
    from exporter.runtime.fastpath import skip_padding_rows

    torch.manual_seed(0)
    linear = torch.nn.Linear(6, 5)
    x = torch.randn(3, 4, 6)
    x[0, 2:] = 0.0  # Flair's padding: rows of zeros after a sentence's last token
    x[2, 1:] = 0.0
    expected = torch.nn.functional.linear(x, linear.weight, linear.bias)
    keys = list(linear.state_dict())
    skip_padding_rows(linear)
    got = linear(x)
    assert torch.allclose(got, expected, atol=1e-6)
    assert torch.equal(got[0, 2], linear.bias.detach()) and torch.equal(got[2, 3], linear.bias.detach())
    assert list(linear.state_dict()) == keys  # the module and its state stay Flair's
    assert torch.allclose(linear(x[1]), expected[1], atol=1e-6)  # no padding: one product


def test_torchscript_scripts_the_language_models_fp32_and_int8(tmp_path):
    """PyTorch's LSTM, scripted: fp32 answers as Flair; int8 (PyTorch's dynamic quantization) through the gate."""
    tagger = build_classic_tagger("flair")
    info = save_bundle(tagger, tmp_path / "fp32", ExportConfig(backend="torchscript", parity=GATE))
    assert info.manifest["backend"] == "torchscript"
    assert [e["file"] for e in info.manifest["torchscript"]["char_lms"]] == ["charlm-0.ts", "charlm-1.ts"]
    assert info.manifest["parity"]["identical_sentences"] == 16
    loaded = load_bundle(info.path)
    for e, g in zip(_embeddings_of(tagger.embeddings, TEXTS), _embeddings_of(loaded.embeddings, TEXTS)):
        assert torch.allclose(e, g, atol=1e-5)
    config = ExportConfig(backend="torchscript", torchscript=TorchScriptOptions(quantize="int8"), parity=GATE)
    assert config.lossy
    info = save_bundle(tagger, tmp_path / "int8", config)
    quantization = info.manifest["torchscript"]["quantization"]
    assert quantization["recipe"] == "torch-dynamic" and info.manifest["parity"]["lossy"] is True
    int8 = load_bundle(info.path)
    for e, g in zip(_embeddings_of(tagger.embeddings, TEXTS), _embeddings_of(int8.embeddings, TEXTS)):
        assert not torch.equal(e, g) and (e - g).norm() / e.norm() < 0.1


def test_torchscript_int8_is_refused_for_a_transformer_encoder(tiny_tagger, tmp_path):
    config = ExportConfig(backend="torchscript", torchscript=TorchScriptOptions(quantize="int8"))
    with pytest.raises(ConfigError, match="onnx backend's recipes") as refused:
        save_bundle(tiny_tagger, tmp_path / "bundle", config)
    assert refused.value.option == "quantize" and not (tmp_path / "bundle").exists()
    with pytest.raises(ConfigError, match="choose int8"):
        TorchScriptOptions(quantize="int8-block32")


def test_the_cli_sends_quantize_to_torchscript_and_refuses_an_onnx_recipe_there(tmp_path):
    from click.testing import CliRunner

    from mlflow_flavor.cli import main

    args = ["export", "demo", str(tmp_path / "out"), "--backend", "torchscript", "--quantize", "int8-block32"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "--quantize" in result.output and "onnx backend's" in result.output
    assert not (tmp_path / "out").exists()
