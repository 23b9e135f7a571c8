"""int8 recipes: each exports, loads, passes its gate, records itself; the batch-independent ones give a text
the same numbers alone as in any batch (tiny random taggers; real-model numbers in docs/BENCHMARKS.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import entities_of

from exporter import ExportConfig, OnnxOptions, ParityConfig, load_bundle, save_bundle
from exporter.backends.onnx_quantize import DEFAULT_INT8, RECIPES
from exporter.config import QUANTIZATIONS
from exporter.corpus import generate_sentences

TEXTS = generate_sentences(40, seed=11)


@pytest.fixture(scope="module")
def recipe_bundles(tiny_tagger, tmp_path_factory):
    root = tmp_path_factory.mktemp("int8")
    bundles = {}
    for recipe in RECIPES:
        config = ExportConfig(onnx=OnnxOptions(quantize=recipe), parity=ParityConfig(force=True))
        bundles[recipe] = save_bundle(tiny_tagger, root / recipe, config)
    return bundles


def test_every_recipe_is_an_option_and_int8_names_one():
    assert set(QUANTIZATIONS) == {"int8", *RECIPES} and DEFAULT_INT8 in RECIPES


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_recipe_exports_loads_and_records_itself(recipe_bundles, tiny_tagger, recipe):
    info = recipe_bundles[recipe]
    record = info.manifest["onnx"]["quantization"]
    assert record["type"] == "int8" and record["recipe"] == recipe
    assert record["batch_independent"] is (recipe != "int8-dynamic")
    assert info.manifest["parity"]["sentences"] > 0 and "entity_f1_vs_original" in info.manifest["parity"]
    model = load_bundle(info.path)
    assert len(entities_of(model, TEXTS)) == len(TEXTS)
    # the quantized graph really is quantized: smaller than the fp32 weights it replaced
    fp32 = sum(p.numel() * 4 for n, p in tiny_tagger.embeddings.model.named_parameters() if "embeddings" not in n)
    assert info.manifest["files"]["encoder.onnx"]["size"] < fp32 + 200_000


def _hidden_states(model, texts):
    """The last hidden state of each text's tokens from one encoder call with every text padded together."""
    tokenizer = model.embeddings.tokenizer
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    states = model.embeddings.model.encoder(batch["input_ids"], batch["attention_mask"])[-1]
    return [states[i, : int(m.sum())].numpy() for i, m in enumerate(batch["attention_mask"])]


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_batch_independent_recipes_give_a_text_the_same_numbers_alone_and_in_a_batch(recipe_bundles, recipe):
    model = load_bundle(recipe_bundles[recipe].path)
    batch = [text for text in TEXTS if len(text.split()) < 25][:16]  # one encoder window each
    assert len(batch) == 16
    together = _hidden_states(model, batch)
    alone = [_hidden_states(model, [text])[0] for text in batch]
    worst = max(float(np.abs(a - b).max()) for a, b in zip(alone, together))
    if recipe_bundles[recipe].manifest["onnx"]["quantization"]["batch_independent"]:
        assert worst < 1e-4, worst
        with torch.no_grad():
            assert entities_of(model, batch) == [entities_of(model, [text])[0] for text in batch]
    else:  # the dynamic recipe's activation scale comes from the whole batch: the reason the others exist
        assert worst > 1e-4, worst


def test_unknown_recipe_is_refused_with_the_choices():
    from exporter.errors import ConfigError

    with pytest.raises(ConfigError, match="int8-per-token"):
        OnnxOptions(quantize="int4")


def test_recipe_report_measures_every_variant_side_by_side(tiny_tagger_file, tmp_path):
    from exporter.corpus import generate_tagged_sentences
    from exporter.int8_report import FP32, ORIGINAL, RecipeReportConfig, compare_recipes, recipe_markdown

    conll = tmp_path / "check.conll"
    conll.write_text("\n\n".join("\n".join(f"{w} {t}" for w, t in s) for s in generate_tagged_sentences(24, seed=3)))
    config = RecipeReportConfig(tiny_tagger_file, conll, sentences=24, speed_sentences=8, recipes=("int8-per-token",))
    rows = compare_recipes(config)
    assert [r["variant"] for r in rows] == [ORIGINAL, FP32, "int8-per-token"]
    original, fp32, per_token = rows
    assert original["agreement_f1"] == 1.0 and original["ratio_b32"] == 1.0
    assert fp32["agreement_f1"] == 1.0 and fp32["batch_independent_share"] == 1.0  # lossless, batch-independent
    assert per_token["batch_independent_share"] == 1.0 and 0 <= per_token["agreement_f1"] <= 1
    assert all(r["texts_per_s_b1"] > 0 and r["texts_per_s_b32"] > 0 for r in rows)
    assert fp32["bundle_mb"] > 0 and "| int8-per-token |" in recipe_markdown(config, rows)
