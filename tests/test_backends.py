"""Every backend and option: export -> log -> pyfunc load -> predict, providers, fp16 and the parity gate."""

from __future__ import annotations

import logging

import mlflow
import pytest
from conftest import entities_of, write_conll
from tinymodels import build_tiny_tagger

import mlflow_flavor
from exporter import (
    ExportConfig,
    OnnxOptions,
    ParityConfig,
    ParityError,
    ProviderError,
    RuntimeOptions,
    load_bundle,
    save_bundle,
)
from exporter.config import DEFAULT_INT8, TorchScriptOptions
from exporter.quality.corpus import generate_sentences, generate_tagged_sentences

TEXTS = generate_sentences(48, seed=5)

VARIANTS = {
    "onnx-optimized": {"backend": "onnx", "onnx": OnnxOptions(optimize="extended")},
    "onnx-all-external": {"backend": "onnx", "onnx": OnnxOptions(optimize="all", external_data=True)},
    "onnx-int8": {"backend": "onnx", "onnx": OnnxOptions(quantize="int8")},
    "torchscript": {"backend": "torchscript"},
    "torchscript-static": {"backend": "torchscript", "torchscript": TorchScriptOptions(force_max_length=True)},
}


#: the fast set checks one variant through MLflow (TorchScript reaches the pyfunc in the fast set through
#: test_tagger_kinds_round_trip_through_pyfunc); the full suite every one
FAST_VARIANTS = ("onnx-int8",)


@pytest.mark.parametrize(
    "variant", [v if v in FAST_VARIANTS else pytest.param(v, marks=pytest.mark.slow) for v in VARIANTS]
)
def test_variant_round_trips_through_mlflow(tiny_tagger, variant):
    options = VARIANTS[variant]
    with mlflow.start_run():
        info = mlflow_flavor.log_model(tiny_tagger, name="ner", parity_sentences=TEXTS, **options)
    conf = info.flavors["flair_mlflow"]
    assert conf["backend"] == options["backend"]
    native = mlflow_flavor.load_model(info.model_uri)
    pyfunc = mlflow.pyfunc.load_model(info.model_uri)
    predicted = [[(e["start"], e["end"], e["label"]) for e in ents] for ents in pyfunc.predict(TEXTS)]
    assert predicted == [sorted(e) for e in entities_of(native, TEXTS)]
    if "int8" in variant:
        assert conf["quantization"]["recipe"] == DEFAULT_INT8 and conf["quantization"]["batch_independent"] is True
        assert conf["parity"]["entity_f1_vs_original"] >= 0.93
    else:
        assert entities_of(native, TEXTS) == entities_of(tiny_tagger, TEXTS)
        assert conf["parity"]["identical_sentences"] == len(TEXTS)
    if variant == "onnx-all-external":
        local = mlflow.artifacts.download_artifacts(info.model_uri)
        manifest = load_bundle(f"{local}/bundle").flair_mlflow_manifest
        assert "encoder.onnx.data" in manifest["files"]
        assert manifest["onnx"]["optimization"]["fused_operators"]["Attention"] == 3


@pytest.mark.parametrize(
    "pooling", ["first", *(pytest.param(p, marks=pytest.mark.slow) for p in ("last", "first_last", "mean"))]
)
def test_torchscript_every_pooling_identical(tiny_bert, tmp_path, pooling):
    tagger = build_tiny_tagger(tiny_bert, subtoken_pooling=pooling, layers="-1,-2", layer_mean=False)
    texts = tuple(generate_sentences(64, seed=9))
    info = save_bundle(tagger, tmp_path / "b", ExportConfig(backend="torchscript", parity_sentences=texts))
    assert info.manifest["parity"]["identical_sentences"] == 64
    assert "encoder.ts" in info.manifest["files"]


def test_cuda_bundle_loads_on_cpu_with_a_warning_and_strict_refuses(tiny_tagger, tmp_path, caplog):
    runtime = RuntimeOptions(providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
    info = save_bundle(tiny_tagger, tmp_path / "cuda", ExportConfig(runtime=runtime, parity_sentences=tuple(TEXTS[:8])))
    assert info.manifest["onnx"]["providers"] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with caplog.at_level(logging.WARNING):
        model = load_bundle(info.path)
    assert "CUDAExecutionProvider" in caplog.text and "falling back" in caplog.text
    assert entities_of(model, TEXTS[:8]) == entities_of(tiny_tagger, TEXTS[:8])
    with pytest.raises(ProviderError, match="CUDAExecutionProvider.*strict"):
        load_bundle(info.path, runtime={"strict_providers": True})


def test_fp16_without_cuda_is_refused_or_falls_back_as_asked(tiny_tagger, tmp_path, caplog):
    runtime = RuntimeOptions(providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
    with pytest.raises(ProviderError, match="fp16.*CUDAExecutionProvider"):
        save_bundle(tiny_tagger, tmp_path / "a", ExportConfig(runtime=runtime, onnx=OnnxOptions(precision="fp16")))
    assert not (tmp_path / "a").exists()
    with caplog.at_level(logging.WARNING):
        info = save_bundle(
            tiny_tagger,
            tmp_path / "b",
            ExportConfig(
                runtime=runtime,
                onnx=OnnxOptions(precision="fp16", fp16_fallback=True),
                parity_sentences=tuple(TEXTS[:8]),
            ),
        )
    assert info.manifest["onnx"]["precision"] == "fp32"
    assert "exporting fp32 instead" in caplog.text


@pytest.fixture(scope="module")
def gold_conll(tmp_path_factory):
    return str(write_conll(tmp_path_factory.mktemp("gold") / "gold.conll", generate_tagged_sentences(80, seed=21)))


def test_gate_reports_gold_f1_and_stops_a_lossy_export_that_violates_it(tiny_tagger, tmp_path, gold_conll):
    strict = ParityConfig(gold_conll=gold_conll, min_entity_f1=1.0)
    with pytest.raises(ParityError, match="entity F1 vs original") as caught:
        save_bundle(
            tiny_tagger,
            tmp_path / "strict",
            ExportConfig(onnx=OnnxOptions(quantize="int8-dynamic", per_channel=False), parity=strict),
        )
    assert caught.value.report["worst"], "the error lists the worst sentences"
    assert "original [" in str(caught.value)
    assert not (tmp_path / "strict").exists()
    forced = ParityConfig(gold_conll=gold_conll, min_entity_f1=1.0, force=True)
    info = save_bundle(
        tiny_tagger,
        tmp_path / "forced",
        ExportConfig(onnx=OnnxOptions(quantize="int8-dynamic", per_channel=False), parity=forced),
    )
    report = info.manifest["parity"]
    assert report["passed"] is False and report["failures"]
    assert {"gold_f1_original", "gold_f1_exported", "gold_f1_drop"} <= set(report)
    lossless = save_bundle(tiny_tagger, tmp_path / "fp32", ExportConfig(parity=ParityConfig(gold_conll=gold_conll)))
    assert lossless.manifest["parity"]["gold_f1_drop"] == 0.0
    assert lossless.manifest["parity"]["sentences"] == 80


MATRIX = [
    # backend, onnx options, tagger settings
    ("onnx", OnnxOptions(optimize="extended"), {"use_crf": False, "use_rnn": True, "subtoken_pooling": "mean"}),
    ("onnx", OnnxOptions(), {"layers": "-1,-2", "layer_mean": False, "subtoken_pooling": "first_last"}),
    ("onnx", OnnxOptions(quantize="int8"), {"use_crf": True, "use_rnn": True, "subtoken_pooling": "last"}),
    ("torchscript", OnnxOptions(), {"use_crf": False, "layers": "all", "layer_mean": True}),
    (
        "torchscript",
        OnnxOptions(),
        {"use_rnn": True, "subtoken_pooling": "mean", "layers": "0,-1", "layer_mean": False},
    ),
]


#: the fast set runs the first of each backend (layer settings and int8 have fast tests of their own)
FAST_KINDS = (0, 3, 4)


@pytest.mark.parametrize(
    ("backend", "onnx_options", "settings"),
    [row if i in FAST_KINDS else pytest.param(*row, marks=pytest.mark.slow) for i, row in enumerate(MATRIX)],
)
def test_tagger_kinds_round_trip_through_pyfunc(tiny_bert, backend, onnx_options, settings):
    tagger = build_tiny_tagger(tiny_bert, **settings)
    texts = generate_sentences(32, seed=17)  # every 16th sentence is far beyond the maximum length
    with mlflow.start_run():
        info = mlflow_flavor.log_model(tagger, name="ner", backend=backend, onnx=onnx_options, parity_sentences=texts)
    pyfunc = mlflow.pyfunc.load_model(info.model_uri)
    predicted = [[(e["start"], e["end"], e["label"]) for e in ents] for ents in pyfunc.predict(texts)]
    original = [sorted(e) for e in entities_of(tagger, texts)]
    parity = info.flavors["flair_mlflow"]["parity"]
    # the gate's 95 % interval travels with the model, as two numbers around the point estimate
    assert (
        parity["entity_f1_vs_original_low"] <= parity["entity_f1_vs_original"] <= parity["entity_f1_vs_original_high"]
    )
    if onnx_options.lossy:
        assert parity["entity_f1_vs_original"] >= 0.93
        assert parity.get("int8_recipe") == (DEFAULT_INT8 if onnx_options.quantize else None)
    else:
        assert predicted == original
