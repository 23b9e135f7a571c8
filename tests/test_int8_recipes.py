"""int8 recipes: each exports, loads, passes its gate, records itself; the batch-independent ones give a text
the same numbers alone as in any batch (tiny random taggers; real-model numbers in docs/BENCHMARKS.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import entities_of, write_conll

from exporter import ExportConfig, OnnxOptions, ParityConfig, load_bundle, save_bundle
from exporter.backends.onnx_quantize import RECIPES
from exporter.config import DEFAULT_INT8, QUANTIZATIONS
from exporter.quality.corpus import generate_sentences

TEXTS = generate_sentences(40, seed=11)


@pytest.fixture(scope="module")
def recipe_bundles(tiny_tagger, tmp_path_factory):
    root = tmp_path_factory.mktemp("int8")
    bundles = {}
    for recipe in RECIPES:
        # 16 check texts (one of them a paragraph beyond the encoder's window): the gate runs, the record is written
        config = ExportConfig(onnx=OnnxOptions(quantize=recipe), parity=ParityConfig(force=True, num_sentences=16))
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


def _proxy_states(model, texts):
    """Each text's last hidden states through the loaded model's encoder proxy (buckets, row cap and all)."""
    batch = model.embeddings.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        states = model.embeddings.model(batch["input_ids"], batch["attention_mask"])[0][-1]
    return [states[i, : int(m.sum())].numpy() for i, m in enumerate(batch["attention_mask"])]


def test_one_row_per_encoder_call_makes_the_dynamic_recipe_batch_independent(recipe_bundles):
    path = recipe_bundles["int8-dynamic"].path
    batch = [text for text in TEXTS if len(text.split()) < 25][:16]
    for rows, independent in ((0, False), (1, True)):
        model = load_bundle(path, runtime={"max_call_rows": rows})
        together = _proxy_states(model, batch)
        alone = [_proxy_states(model, [text])[0] for text in batch]
        worst = max(float(np.abs(a - b).max()) for a, b in zip(alone, together))
        if independent:
            assert worst == 0.0, worst  # the very same call, row by row
            assert entities_of(model, batch) == [entities_of(model, [text])[0] for text in batch]
        else:
            assert worst > 1e-4, worst


@pytest.mark.parametrize("quantize", ["int8", "int8-per-token", "int8-block32"])
def test_per_tensor_weights_are_refused_where_the_recipe_fixes_its_own(quantize):
    from exporter.errors import ConfigError

    with pytest.raises(ConfigError, match="applies to quantize='int8-dynamic' only"):
        OnnxOptions(quantize=quantize, per_channel=False)
    assert not OnnxOptions(quantize="int8-dynamic", per_channel=False).per_channel


def test_unknown_recipe_is_refused_with_the_choices():
    from exporter.errors import ConfigError

    with pytest.raises(ConfigError, match="int8-per-token"):
        OnnxOptions(quantize="int4")


def test_recipe_report_measures_every_variant_side_by_side_and_logs_a_run(tiny_tagger_file, tmp_path):
    """flair-mlflow int8-report: JSON rows on stdout, the table in a file, a run with metrics and the chart."""
    import json

    import mlflow
    from click.testing import CliRunner

    from exporter.quality.corpus import generate_tagged_sentences
    from exporter.tools.int8_report import FP32, ORIGINAL
    from mlflow_flavor.cli.commands import main

    conll = write_conll(tmp_path / "check.conll", generate_tagged_sentences(24, seed=3))
    table = tmp_path / "int8.md"
    args = ["int8-report", "--model", str(tiny_tagger_file), "--conll", str(conll), "--sentences", "24"]
    args += ["--speed-sentences", "8", "--recipe", "int8-dynamic", "--call-rows", "0", "--call-rows", "1"]
    record = tmp_path / "measured.json"
    result = CliRunner().invoke(main, [*args, "--output", str(table), "--record", str(record)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    rows = report["rows"]
    one = ", 1 row/call"
    assert [r["variant"] for r in rows] == [ORIGINAL, FP32, FP32 + one, "int8-dynamic", "int8-dynamic" + one]
    original, fp32, fp32_rows, dynamic, dynamic_rows = rows
    assert original["agreement_f1"] == 1.0 and original["ratio_b32"] == 1.0
    assert fp32["agreement_f1"] == 1.0 and fp32["batch_independent_share"] == 1.0  # lossless, batch-independent
    assert fp32_rows["agreement_f1"] == 1.0
    assert dynamic_rows["batch_independent_share"] == 1.0 and 0 <= dynamic["agreement_f1"] <= 1
    assert all(r["texts_per_s_b1"] > 0 and r["texts_per_s_b32"] > 0 for r in rows)
    assert fp32["bundle_mb"] > 0 and "| int8-dynamic, 1 row/call |" in table.read_text()
    run = mlflow.get_run(report["run_id"])
    assert run.data.metrics["int8_dynamic_1_row_call_batch_independent_share"] == 1.0
    assert run.data.params["call_rows"] == "0,1"
    artifacts = {a.path for a in mlflow.artifacts.list_artifacts(run_id=run.info.run_id)}
    assert {"int8_recipes.png", "int8_recipes.md"} <= artifacts
    # --record: what a failed gate's advice quotes, in the shipped file's format, from the default call shape
    measured = json.loads(record.read_text())
    assert measured["recipes"] == {
        "int8-dynamic": {"agreement_f1": round(dynamic["agreement_f1"], 4), "speed_b32": round(dynamic["ratio_b32"], 2)}
    }
    assert measured["fp32"] == {"speed_b32": round(fp32["ratio_b32"], 2)} and "int8-report" in measured["measured_on"]


def test_an_int8_export_keeps_the_quantizers_info_lines_to_itself(tiny_tagger, tmp_path, caplog):
    """ONNX Runtime's quantizers log every tensor at INFO (608 lines for MiniLM on stderr, issue 23 item 1)."""
    import logging

    quantizer_logger = logging.getLogger("onnxruntime.quantization")
    before = quantizer_logger.level
    config = ExportConfig(onnx=OnnxOptions(quantize="int8-block32"), parity=ParityConfig(enabled=False))
    with caplog.at_level(logging.INFO):
        save_bundle(tiny_tagger, tmp_path / "b", config)
    chatter = [r for r in caplog.records if "onnxruntime" in r.pathname and r.levelno < logging.WARNING]
    assert chatter == [], [r.getMessage() for r in chatter[:3]]
    assert any(r.name.startswith("exporter") for r in caplog.records)  # our own milestones still show
    assert quantizer_logger.level == before
