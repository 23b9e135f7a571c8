"""Exported ONNX encoders tag exactly like the original Flair model."""

from __future__ import annotations

import logging

import pytest
from conftest import entities_of, write_conll
from tinymodels import build_tiny_classifier, build_tiny_tagger

from exporter import ExportConfig, OnnxOptions, ParityConfig, ParityError, load_bundle, save_bundle
from exporter.quality.corpus import check_sentences, generate_sentences, generate_tagged_sentences

# 200 check sentences; every 16th is ~420 words, far beyond the tiny BERT's 64-token maximum length.
PARITY_TEXTS = generate_sentences(200, seed=3)


def test_check_sentences_cover_long_inputs(tiny_tagger):
    tokenizer = tiny_tagger.embeddings.tokenizer
    lengths = [len(tokenizer(t.split(), is_split_into_words=True)["input_ids"]) for t in PARITY_TEXTS]
    assert sum(n > tokenizer.model_max_length for n in lengths) >= 12


@pytest.mark.parametrize(
    "pooling", ["mean", *(pytest.param(p, marks=pytest.mark.slow) for p in ("first", "last", "first_last"))]
)
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
    [
        ("-1,-2", False, True, False),
        ("all", True, False, False),
        # the fast set runs the two above (several layers with and without their mean, CRF and linear heads)
        pytest.param("0,-1", True, False, True, marks=pytest.mark.slow),
        pytest.param("-2", True, True, True, marks=pytest.mark.slow),
    ],
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


def test_the_default_gate_checks_the_shipped_check_set(tiny_tagger, tmp_path, monkeypatch, caplog):
    import exporter.bundle.save

    given = []

    def spy(*args, **kwargs):
        given.append(check_sentences(*args, **kwargs))
        return given[-1]

    monkeypatch.setattr(exporter.bundle.save, "check_sentences", spy)
    with caplog.at_level(logging.INFO, logger="exporter.quality.parity"):
        report = save_bundle(tiny_tagger, tmp_path / "b").manifest["parity"]
    assert given == [check_sentences(ParityConfig().num_sentences)]
    assert report["sentences"] == len(given[0]) == report["identical_sentences"]
    # Flair's overflow windows: the paragraphs exceed even a 512-subtoken window (the tiny BERT's is 64)
    tokenizer = tiny_tagger.embeddings.tokenizer
    assert sum(len(tokenizer(text)["input_ids"]) > 512 for text in given[0]) >= len(given[0]) // 16 >= 4
    assert report["entity_f1_vs_original_interval"] == [1.0, 1.0] and "int8_recipe" not in report
    assert report["bootstrap"] == {
        "method": "percentile bootstrap over sentences",
        "resamples": 1000,
        "seed": 12,
        "confidence": 0.95,
    }
    assert "entity F1 vs original 1.0000 (95 % interval [1.0000, 1.0000])" in caplog.text


# the least faithful recipe (dynamic, weights per tensor): differences are sure even on a tiny model
INT8 = OnnxOptions(quantize="int8-dynamic", per_channel=False)


@pytest.fixture(scope="module")
def int8_report(tiny_tagger, tmp_path_factory):
    config = ExportConfig(onnx=INT8, parity=ParityConfig(force=True))
    return save_bundle(tiny_tagger, tmp_path_factory.mktemp("int8") / "b", config).manifest["parity"]


def test_a_quantized_export_records_its_recipe_and_its_interval(int8_report):
    assert int8_report["int8_recipe"] == "int8-dynamic"
    low, high = int8_report["entity_f1_vs_original_interval"]
    assert low <= int8_report["entity_f1_vs_original"] <= high and low < high  # it differs somewhere


def test_a_named_recipe_is_recorded_by_name(tiny_tagger, tmp_path):
    config = ExportConfig(onnx=OnnxOptions(quantize="int8-per-token"), parity=ParityConfig(force=True))
    report = save_bundle(tiny_tagger, tmp_path / "b", config).manifest["parity"]
    assert report["int8_recipe"] == "int8-per-token"


def test_a_failure_near_the_threshold_says_the_verdict_could_go_either_way(tiny_tagger, tmp_path, int8_report):
    f1 = int8_report["entity_f1_vs_original"]
    low, high = int8_report["entity_f1_vs_original_interval"]
    threshold = round((f1 + high) / 2, 6)  # the export misses it, yet it lies inside the interval
    assert f1 < threshold <= high
    config = ExportConfig(onnx=INT8, parity=ParityConfig(min_entity_f1=threshold))
    with pytest.raises(ParityError, match="entity F1 vs original") as caught:
        save_bundle(tiny_tagger, tmp_path / "near", config)
    message = str(caught.value)
    assert f"fails the parity gate on {int8_report['sentences']} check sentences" in message
    assert f"Entity F1 vs original {f1:.4f}, 95 % interval [{low:.4f}, {high:.4f}] over" in message
    assert f"the threshold {threshold} lies inside it, so the verdict could go either way" in message
    assert "(int8-dynamic)" in message
    assert caught.value.report["entity_f1_vs_original_interval"] == [low, high]
    # the next step: the recipes measured as more faithful, the fastest that met the threshold there to try
    MEASURED = _measured()
    better = [r for r in MEASURED if MEASURED[r][0] > MEASURED["int8-dynamic"][0]]
    assert better and all(f"{r} ({MEASURED[r][0]:.3f}" in message for r in better)
    assert "Try quantize='" in message and "--quantize" in message and "-P quantize=" in message


def _measured() -> dict[str, tuple[float, float]]:
    """What the advice quotes, by recipe: (agreement, speed at batch 32), from the shipped data file."""
    from exporter.quality.advice import measured

    return {name: (r["agreement_f1"], r["speed_b32"]) for name, r in measured()["recipes"].items()}


def test_the_measurements_cover_every_recipe_and_are_data():
    from exporter.backends.onnx_quantize import RECIPES
    from exporter.config import INT8_RECIPES

    assert set(_measured()) == set(RECIPES) == set(INT8_RECIPES)


def test_the_advice_tries_the_fastest_recipe_measured_to_pass():
    from exporter.quality.advice import more_faithful_recipes

    MEASURED = _measured()
    slowest_first = sorted(MEASURED, key=lambda r: MEASURED[r][1])
    fastest = slowest_first[-1]
    threshold = min(MEASURED[r][0] for r in MEASURED if r != fastest)
    advice = more_faithful_recipes(fastest, threshold)
    faster_passing = max(
        (r for r in MEASURED if MEASURED[r][0] >= threshold and r != fastest), key=lambda r: MEASURED[r][1]
    )
    assert f"Try quantize='{faster_passing}'" in advice
    assert more_faithful_recipes("int8-unknown", 0.9) == ""
    assert "Try the fp32 export" in more_faithful_recipes(max(MEASURED, key=lambda r: MEASURED[r][0]), 0.999)


def test_a_failure_on_identical_predictions_says_any_difference_fails(tiny_tagger, tmp_path):
    config = ExportConfig(onnx=INT8, parity=ParityConfig(min_entity_f1=1.0, num_sentences=32))
    with pytest.raises(ParityError) as caught:
        save_bundle(tiny_tagger, tmp_path / "strict", config)
    low, high = caught.value.report["entity_f1_vs_original_interval"]
    assert f"95 % interval [{low:.4f}, {high:.4f}]" in str(caught.value)
    assert "the threshold 1.0 asks for identical predictions: any difference fails" in str(caught.value)


@pytest.fixture(scope="module")
def gold_conll(tmp_path_factory):
    return str(write_conll(tmp_path_factory.mktemp("gold") / "gold.conll", generate_tagged_sentences(120, seed=23)))


def test_gold_scores_come_with_intervals(tiny_tagger, tmp_path, gold_conll):
    lossless = save_bundle(tiny_tagger, tmp_path / "fp32", ExportConfig(parity=ParityConfig(gold_conll=gold_conll)))
    report = lossless.manifest["parity"]
    assert report["gold_f1_original_interval"] == report["gold_f1_exported_interval"]
    assert report["gold_f1_drop_interval"] == [0.0, 0.0]  # both models on the same resamples
    forced = ParityConfig(gold_conll=gold_conll, force=True)
    report = save_bundle(tiny_tagger, tmp_path / "int8", ExportConfig(onnx=INT8, parity=forced)).manifest["parity"]
    for key in ("gold_f1_original", "gold_f1_exported", "gold_f1_drop", "entity_f1_vs_original"):
        low, high = report[f"{key}_interval"]
        assert low <= report[key] <= high, key


def test_a_classifier_gate_reports_the_interval_of_its_label_f1(tiny_bert, tmp_path):
    classifier = build_tiny_classifier(tiny_bert)
    texts = tuple(check_sentences(24))
    report = save_bundle(classifier, tmp_path / "b", ExportConfig(parity_sentences=texts)).manifest["parity"]
    assert report["sentences"] == 24 and report["label_f1_vs_original_interval"] == [1.0, 1.0]


def test_the_gates_line_shows_what_changed_beside_the_verdict(tiny_tagger, tmp_path, caplog):
    """A lossy export that passes says how many sentences changed, not only that it passed (issue 23 item 10)."""
    config = ExportConfig(onnx=INT8, parity=ParityConfig(min_entity_f1=0.5, num_sentences=32))
    with caplog.at_level(logging.INFO, logger="exporter.quality.parity"):
        report = save_bundle(tiny_tagger, tmp_path / "b", config).manifest["parity"]
    changed = report["sentences"] - report["identical_sentences"]
    assert report["passed"] and changed > 0  # the random tagger's near ties: int8 changes some
    assert f"Parity (int8-dynamic) passed on 32 sentences: {changed} changed, " in caplog.text
    assert "), needs >= 0.5," in caplog.text
