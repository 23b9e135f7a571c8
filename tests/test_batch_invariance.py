"""Batch invariance: a text's answer is bit for bit the same alone, in a client's batch or merged with others.

A tiny random tagger has near ties everywhere (its tags are decided by margins of the last digits), so any
change of arithmetic with the batch shows; before canonical widths and fixed-shape heads, 100 (ONNX) and 721
(torch) of 1,200 answers in shuffled merged groups differed from the text alone (measured on this model).
"""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from exporter.config import Backend, ExportConfig, OnnxOptions, ParityConfig, RuntimeOptions
from exporter.errors import ConfigError
from exporter.runtime.buckets import canonical_width
from exporter.runtime.invariance import ROWS_PER_BLOCK, fix_head_shapes, invariance_gaps

WORDS = (
    "Angela Merkel met Tim Cook in Paris . Maria Garcia flew from Madrid to Tokyo with the board of Siemens AG "
    "on Monday"
).split()


def _texts(count: int = 40, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 40))) for _ in range(count)]


def _exact(answer) -> str:
    return json.dumps(answer, sort_keys=True)


def test_canonical_widths_are_a_fixed_grid_with_bounded_padding():
    widths = [canonical_width(n) for n in range(1, 1025)]
    assert all(w >= n for n, w in zip(range(1, 1025), widths))
    assert widths == sorted(widths)  # a longer text never gets a narrower width
    assert all(w <= max(n * 1.25, n + 7) for n, w in zip(range(1, 1025), widths))  # 7 positions, or a quarter
    assert len(set(widths)) < 60  # few widths: texts of similar length share calls
    assert canonical_width(9) == 16 and canonical_width(65) == 80 and canonical_width(129) == 160
    assert canonical_width(500, limit=512) == 512 and canonical_width(600, limit=512) == 600  # never below the length


def test_a_head_layer_gives_a_row_the_same_numbers_in_any_batch_at_any_position():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(48, 48), torch.nn.Linear(48, 17))
    plain = [m.forward for m in model]
    x = torch.randn(300, 48)
    expected = model(x)
    with torch.no_grad():
        # the plain layers: a row's numbers depend on how many rows share the call (why this exists)
        assert fix_head_shapes(torch.nn.Module()) == 0
        wrapped = torch.nn.Module()
        wrapped.head = model
        assert fix_head_shapes(wrapped) == 2
        alone = model(x[:1])[0]
        for rows in (1, 2, 3, 5, ROWS_PER_BLOCK - 1, ROWS_PER_BLOCK, ROWS_PER_BLOCK + 1, 299):
            batch = x[7 : 7 + rows].clone()
            batch[rows // 2] = x[0]
            assert torch.equal(model(batch)[rows // 2], alone), rows
        assert torch.equal(model(x.view(3, 100, 48)).reshape(300, 17)[0], alone)
        # the same function as Flair's layers, up to summation order
        torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)
        assert model(x[:0]).shape == (0, 17)
    assert plain[0] is not model[0].forward


def _save(model, path, backend="onnx", model_config=None, **options):
    import mlflow

    import mlflow_flavor

    mlflow_flavor.save_model(model, path, backend=backend, **options)
    return mlflow.pyfunc.load_model(str(path), model_config=model_config)


def _differing(pyfunc, texts, trials: int, seed: int = 1) -> int:
    alone = {t: _exact(pyfunc.predict([t])[0]) for t in texts}
    rng = random.Random(seed)
    differ = 0
    for _ in range(trials):
        order = list(texts)
        rng.shuffle(order)
        size = rng.randint(2, 16)
        for start in range(0, len(order), size):
            group = order[start : start + size]
            differ += sum(_exact(a) != alone[t] for t, a in zip(group, pyfunc.predict(group)))
    return differ


@pytest.mark.parametrize(
    "backend, options",
    [
        ("onnx", {}),
        ("torch", {}),
        ("onnx", {"onnx": OnnxOptions(quantize="int8")}),
        ("torchscript", {}),
    ],
    ids=["onnx-fp32", "torch", "onnx-int8-default", "torchscript"],
)
def test_near_tie_tagger_answers_the_same_alone_and_in_any_merged_group(tiny_tagger, tmp_path, backend, options):
    pyfunc = _save(tiny_tagger, tmp_path / "m", backend, **options)
    texts = _texts()
    assert sum(bool(pyfunc.predict([t])[0]) for t in texts) > 10, "the random tagger should find entities"
    assert _differing(pyfunc, texts, trials=4) == 0


def test_int8_dynamic_is_invariant_with_one_row_per_call(tiny_tagger, tmp_path):
    pyfunc = _save(
        tiny_tagger,
        tmp_path / "m",
        onnx=OnnxOptions(quantize="int8-dynamic"),
        model_config={"max_call_rows": 1},
    )
    assert _differing(pyfunc, _texts(24), trials=2) == 0


def test_concurrent_requests_merged_by_the_batcher_get_the_answer_alone(tiny_tagger, tmp_path):
    pyfunc = _save(tiny_tagger, tmp_path / "m")
    texts = _texts(48, seed=3)
    alone = [_exact(pyfunc.predict([t])[0]) for t in texts]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda t: _exact(pyfunc.predict([t])[0]), texts * 4))
    assert answers == alone * 4
    assert pyfunc._model_impl.batcher.stats().merged_runs > 0


def test_classifier_scores_are_the_same_alone_and_merged(tiny_bert, tmp_path):
    from tinymodels import build_tiny_classifier

    pyfunc = _save(build_tiny_classifier(tiny_bert), tmp_path / "m")
    texts = _texts(24, seed=2)
    assert _differing(pyfunc, texts, trials=2) == 0


def test_batch_invariant_needs_length_buckets_and_can_be_turned_off():
    with pytest.raises(ConfigError, match="batch_invariant=true needs length_buckets"):
        RuntimeOptions(length_buckets=False, batch_invariant=True)
    assert RuntimeOptions().invariant_batches
    assert not RuntimeOptions(length_buckets=False).invariant_batches
    assert not RuntimeOptions(batch_invariant=False).invariant_batches
    with pytest.raises(ConfigError, match="true, false or null"):
        RuntimeOptions(batch_invariant="yes")
    with pytest.raises(ConfigError, match="did you mean 'batch_invariant'"):
        RuntimeOptions().updated({"batch_invariants": True})


def test_the_variable_padding_of_old_is_still_there_when_asked_for(tiny_tagger, tmp_path):
    from exporter import load_bundle, save_bundle

    info = save_bundle(
        tiny_tagger, tmp_path / "b", ExportConfig(backend=Backend.ONNX, parity=ParityConfig(enabled=False))
    )
    model = load_bundle(info.path, runtime={"batch_invariant": False})
    assert model.embeddings.model.batching.invariant is False
    assert load_bundle(info.path).embeddings.model.batching.invariant is True


def test_recurrent_layers_are_named_as_what_keeps_a_model_from_the_promise():
    from tinymodels import build_classic_tagger

    gaps = invariance_gaps(build_classic_tagger("words", use_rnn=True, use_crf=True))
    assert any("rnn" in gap and "LSTM" in gap for gap in gaps)
    assert invariance_gaps(build_classic_tagger("words", use_rnn=False, use_crf=True)) == []


def test_positions_added_beyond_the_batch_hold_the_tokenizers_pad_id():
    """A row padded past the batch's own width (its canonical width is wider) gets the pad id, masked: an int8
    graph that scales per call sees those positions too, so they must be what the row alone would hold."""
    from exporter.runtime.buckets import run_in_groups

    seen = []

    def encoder(ids, mask):
        seen.append((ids.clone(), mask.clone()))
        return [ids.unsqueeze(-1).float()]

    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12, 13]])  # 9 positions: canonical width 16
    mask = torch.ones_like(ids)
    (out,) = run_in_groups(encoder, ids, mask, 32, invariant=True, width_limit=64, pad_id=1)
    ((called_ids, called_mask),) = seen
    assert called_ids.shape == (1, 16) and called_ids[0, 9:].tolist() == [1] * 7
    assert called_mask[0, 9:].sum() == 0 and torch.equal(out[0, :, 0].long(), ids[0])
    # an empty row (no positions) cannot have a canonical width: the batch runs as it came
    seen.clear()
    run_in_groups(encoder, torch.tensor([[5, 6], [0, 0]]), torch.tensor([[1, 1], [0, 0]]), 32, invariant=True)
    assert [tuple(i.shape) for i, _ in seen] == [(2, 2)]


def test_transformers_that_pad_by_batch_are_named_as_gaps(tiny_bert):
    """A transformer no canonical path runs (here Flair's own, before the torch backend's buckets) is a gap; the
    same model with every transformer bucketed has none; a GPU provider is one."""
    from tinymodels import build_tiny_tagger

    from exporter.backends.torch import add_length_buckets

    model = build_tiny_tagger(tiny_bert)
    assert any("padded by batch" in gap for gap in invariance_gaps(model))
    assert add_length_buckets(model, invariant=True)
    assert invariance_gaps(model) == []
    assert invariance_gaps(model, ("CUDAExecutionProvider", "CPUExecutionProvider")) == [
        "execution provider CUDAExecutionProvider"
    ]
    variable = build_tiny_tagger(tiny_bert)
    add_length_buckets(variable, invariant=False)
    assert any("padded by batch" in gap for gap in invariance_gaps(variable))
