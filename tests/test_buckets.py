"""Length buckets: the encoder sees less padding, Flair sees the same hidden states and tags."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import torch
from conftest import entities_of
from transformers import AutoModel, AutoTokenizer

from exporter import ExportConfig, ParityConfig, load_bundle, save_bundle
from exporter.config import RuntimeOptions, TorchScriptOptions
from exporter.errors import ConfigError
from exporter.quality.corpus import generate_sentences
from exporter.runtime.buckets import AS_PADDED, plan_groups, run_in_groups, split_for_workers


def test_plan_covers_every_row_once_longest_first():
    lengths = [12, 40, 7, 40, 13, 300, 9, 12]
    groups = plan_groups(lengths, hidden_size=384)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    heads = [lengths[g[0]] for g in groups]
    assert heads == sorted(heads, reverse=True)
    for g in groups:  # each group is padded to its first row
        assert lengths[g[0]] == max(lengths[i] for i in g)


def test_one_long_sentence_gets_a_call_of_its_own():
    lengths = [282] + [40 - i % 20 for i in range(31)]
    groups = plan_groups(lengths, hidden_size=384)
    assert groups[0] == [0]
    # what is left is padded to at most 40 instead of 282
    assert sum(len(g) * lengths[g[0]] for g in groups) < 0.25 * 282 * len(lengths)


def test_bigger_encoders_split_more_readily():
    from exporter.runtime.buckets import call_overhead

    assert call_overhead(384) == 200 and call_overhead(768) == 50 and call_overhead(32) == 200
    lengths = [40] * 8 + [24] * 8
    assert len(plan_groups(lengths, hidden_size=384)) == 1  # a second call costs more than it saves
    assert len(plan_groups(lengths, hidden_size=768)) == 2


def test_equal_lengths_stay_one_call():
    assert plan_groups([20] * 32, hidden_size=384) == [list(range(32))]
    # tiny differences are not worth a second call
    assert len(plan_groups([20, 19, 20, 18] * 8, hidden_size=384)) == 1


def test_workers_share_each_group_evenly():
    groups = [[5], [1, 3, 0, 7, 2], [4, 6]]
    chunks = split_for_workers(groups, 2)
    assert chunks == [[5], [1, 3, 0], [7, 2], [4], [6]]
    assert split_for_workers(groups, 1) == groups


class _Recorder:
    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.shapes: list[tuple[int, int]] = []
        self.threads: set[str] = set()

    def __call__(self, input_ids, attention_mask):
        self.shapes.append(tuple(input_ids.shape))
        self.threads.add(threading.current_thread().name)
        with torch.inference_mode():
            out = self.model(input_ids, attention_mask=attention_mask, output_hidden_states=True)
        return [out.hidden_states[-1], out.hidden_states[1]]


@pytest.fixture(scope="module")
def bert(tiny_bert):
    return AutoModel.from_pretrained(str(tiny_bert)).eval(), AutoTokenizer.from_pretrained(str(tiny_bert))


def _batch(tokenizer, texts, side="right") -> tuple[torch.Tensor, torch.Tensor]:
    """``texts`` as one padded batch: ``(input_ids, attention_mask)``."""
    tokenizer.padding_side = side
    try:
        batch = tokenizer(texts, padding=True, return_tensors="pt")
    finally:
        tokenizer.padding_side = "right"
    return batch["input_ids"], batch["attention_mask"]


def test_grouped_hidden_states_equal_one_padded_call(bert):
    model, tokenizer = bert
    texts = generate_sentences(15, seed=3, long_every=0) + [" ".join(generate_sentences(6, seed=4, long_every=0))]
    ids, mask = (t[:, :64] for t in _batch(tokenizer, texts))
    recorder = _Recorder(model)
    grouped = run_in_groups(recorder, ids, mask, hidden_size=model.config.hidden_size)
    assert len(recorder.shapes) > 1, "the long sentence should have been split off"
    assert sum(b * t for b, t in recorder.shapes) < ids.numel()
    whole = _Recorder(model)(ids, mask)
    lengths = mask.sum(1)
    for g, w in zip(grouped, whole):
        assert g.shape == w.shape
        for row, n in enumerate(lengths.tolist()):
            torch.testing.assert_close(g[row, :n], w[row, :n], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("buckets", [True, False])
def test_concurrent_parts_give_the_same_hidden_states(bert, buckets):
    model, tokenizer = bert
    ids, mask = _batch(tokenizer, generate_sentences(12, seed=5, long_every=0))
    recorder = _Recorder(model)
    with ThreadPoolExecutor(2, thread_name_prefix="part") as pool:
        parts = run_in_groups(recorder, ids, mask, 32, buckets=buckets, executor=pool, workers=2)
    assert len(recorder.shapes) >= 2 and all(name.startswith("part") for name in recorder.threads)
    if not buckets:  # every part padded as the batch came
        assert {t for _, t in recorder.shapes} == {ids.size(1)}
    whole = _Recorder(model)(ids, mask)
    for row, n in enumerate(mask.sum(1).tolist()):
        torch.testing.assert_close(parts[0][row, :n], whole[0][row, :n], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("buckets", [True, False])
def test_no_encoder_call_exceeds_the_position_cap_and_hidden_states_stay(bert, buckets):
    """A long document's overflow windows (or a big merged batch) go through in calls of bounded size."""
    model, tokenizer = bert
    texts = generate_sentences(24, seed=6, long_every=0)
    ids, mask = _batch(tokenizer, texts)
    left = _batch(tokenizer, texts, side="left")  # not right-padded: whole rows at full width
    cap = 3 * ids.size(1)
    for i, m in ((ids, mask), left):
        recorder = _Recorder(model)
        capped = run_in_groups(recorder, i, m, 32, buckets=buckets, max_positions=cap)
        assert len(recorder.shapes) >= len(texts) // 3
        assert all(rows * width <= cap for rows, width in recorder.shapes)
        whole = _Recorder(model)(i, m)
        keep = m.bool()
        torch.testing.assert_close(capped[0][keep], whole[0][keep], atol=1e-5, rtol=1e-4)
    # one row longer than the cap still runs, alone
    recorder = _Recorder(model)
    run_in_groups(recorder, ids[:2], mask[:2], 32, max_positions=4)
    assert [rows for rows, _ in recorder.shapes] == [1, 1]


@pytest.mark.parametrize("buckets", [True, False])
def test_row_cap_runs_rows_alone_at_their_own_length(bert, buckets):
    """max_rows=1: every row is one call, padded to nothing but itself, whatever buckets say."""
    model, tokenizer = bert
    texts = generate_sentences(9, seed=7, long_every=0)
    ids, mask = _batch(tokenizer, texts)
    lengths = mask.sum(1).tolist()
    recorder = _Recorder(model)
    rows = run_in_groups(recorder, ids, mask, 32, buckets=buckets, max_rows=1)
    assert sorted(recorder.shapes) == sorted((1, n) for n in lengths)
    for row, n in enumerate(lengths):
        alone = _Recorder(model)(ids[row : row + 1, :n], mask[row : row + 1, :n])
        torch.testing.assert_close(rows[0][row, :n], alone[0][0], atol=1e-6, rtol=1e-5)
    recorder = _Recorder(model)
    run_in_groups(recorder, ids, mask, 32, buckets=buckets, max_rows=4)
    assert max(r for r, _ in recorder.shapes) <= 4 and sum(r for r, _ in recorder.shapes) == len(texts)


def test_runtime_options_are_type_checked():
    with pytest.raises(ConfigError, match="encoder_workers"):
        RuntimeOptions(encoder_workers=0)
    with pytest.raises(ConfigError, match="max_call_rows"):
        RuntimeOptions(max_call_rows=-1)
    with pytest.raises(ConfigError, match="length_buckets must be true or false"):
        RuntimeOptions().updated({"length_buckets": "false"})
    with pytest.raises(ConfigError, match="allow_spinning must be true or false"):
        RuntimeOptions(allow_spinning=1)


def test_left_padding_and_single_rows_go_through_unchanged(bert):
    model, tokenizer = bert
    texts = ["short one", "a much longer sentence with many more words than the first one has"]
    left_ids, left_mask = _batch(tokenizer, texts, side="left")
    recorder = _Recorder(model)
    run_in_groups(recorder, left_ids, left_mask, hidden_size=32)
    assert recorder.shapes == [tuple(left_ids.shape)]
    single_ids, single_mask = _batch(tokenizer, texts[:1])
    recorder = _Recorder(model)
    run_in_groups(recorder, single_ids, single_mask, hidden_size=32)
    assert recorder.shapes == [tuple(single_ids.shape)]


def test_bundle_tags_the_same_with_and_without_buckets(tiny_tagger, tmp_path):
    texts = generate_sentences(40, seed=9, long_every=8, long_words=90)
    info = save_bundle(tiny_tagger, tmp_path / "b", ExportConfig(parity_sentences=tuple(texts[:8])))
    assert info.manifest["runtime"]["length_buckets"] is True
    bucketed = load_bundle(info.path)
    plain = load_bundle(info.path, runtime={"length_buckets": False})
    parallel = load_bundle(info.path, runtime={"intra_op_num_threads": 1, "encoder_workers": 2})
    threads: set[str] = set()
    encoder = parallel.embeddings.model.encoder

    def recording(input_ids, attention_mask):
        threads.add(threading.current_thread().name)
        return encoder(input_ids, attention_mask)

    parallel.embeddings.model.encoder = recording
    assert bucketed.embeddings.model.batching.buckets and not plain.embeddings.model.batching.buckets
    assert parallel.embeddings.model.batching.workers == 2
    expected = entities_of(tiny_tagger, texts)
    assert entities_of(bucketed, texts) == expected
    assert entities_of(plain, texts) == expected
    assert entities_of(parallel, texts) == expected
    assert threads and all(name.startswith("flair-mlflow-encoder") for name in threads)


def test_static_shapes_are_never_bucketed(tiny_tagger, tmp_path):
    config = ExportConfig(
        backend="torchscript",
        torchscript=TorchScriptOptions(force_max_length=True),
        runtime=RuntimeOptions(length_buckets=True),
        parity_sentences=tuple(generate_sentences(6, seed=2)),
    )
    model = load_bundle(save_bundle(tiny_tagger, tmp_path / "ts", config).path)
    assert model.embeddings.model.batching == AS_PADDED


def _encoder_widths(model) -> tuple[list[int], Any]:
    """The sequence widths the first transformer layer sees while ``model`` tags."""
    widths: list[int] = []
    layer = model.embeddings.model.encoder.layer[0]
    handle = layer.register_forward_pre_hook(lambda module, args: widths.append(args[0].shape[1]))
    return widths, handle


@pytest.mark.parametrize("kind", ["tagger", "classifier"])
def test_torch_bundles_run_flairs_own_transformer_in_buckets(tiny_bert, tiny_tagger, tmp_path, kind):
    from flair.data import Sentence
    from tinymodels import build_tiny_classifier

    from exporter.backends.torch import has_length_buckets

    model = tiny_tagger if kind == "tagger" else build_tiny_classifier(tiny_bert, cls_pooling="mean")
    texts = generate_sentences(24, seed=13, long_every=8, long_words=40)
    info = save_bundle(model, tmp_path / "torch", ExportConfig(backend="torch", parity_sentences=tuple(texts)))
    assert info.manifest["parity"]["identical_sentences"] == len(texts)
    bucketed = load_bundle(info.path)
    plain = load_bundle(info.path, runtime={"length_buckets": False})
    assert has_length_buckets(bucketed) and not has_length_buckets(plain)

    def tag(m):
        sentences = [Sentence(t) for t in texts]
        widths, handle = _encoder_widths(m)
        m.predict(sentences, mini_batch_size=24)
        handle.remove()
        labels = [[(lb.data_point.text, lb.value) for lb in s.get_labels()] for s in sentences]
        return labels, widths

    (expected, plain_widths), (got, widths) = tag(plain), tag(bucketed)
    assert got == expected
    assert len(plain_widths) == 1 and len(widths) > 1  # one padded call became several narrower ones
    assert max(widths) == plain_widths[0] and min(widths) < plain_widths[0]


def test_a_bucketed_torch_bundle_still_saves_as_a_plain_flair_model(tiny_tagger, tmp_path):
    from flair.models import SequenceTagger

    gate = ParityConfig(num_sentences=16)  # this test is about the saved state, not the gate
    info = save_bundle(tiny_tagger, tmp_path / "torch", ExportConfig(backend="torch", parity=gate))
    model = load_bundle(info.path)
    assert set(model.state_dict()) == set(tiny_tagger.state_dict())
    model.save(tmp_path / "again.pt")
    reloaded = SequenceTagger.load(tmp_path / "again.pt")
    texts = generate_sentences(12, seed=21)
    assert entities_of(reloaded, texts) == entities_of(tiny_tagger, texts) == entities_of(model, texts)


@pytest.mark.parametrize("half_stride", [0, 3, 8])
def test_combine_windows_equals_flairs_combine_strided_tensors(half_stride):
    from flair.embeddings.transformer import combine_strided_tensors

    from exporter.runtime.fastpath import combine_windows

    generator = torch.Generator().manual_seed(half_stride)
    max_length = 24
    mapping = torch.tensor([0, 0, 0, 1, 2, 2, 3, 3, 3, 3, 3])
    hidden = torch.randn(len(mapping), max_length, 5, generator=generator)
    word_ids = torch.randint(-100, 40, (len(mapping), max_length), generator=generator)
    for values, default in ((hidden, 0), (word_ids, -100)):
        expected = combine_strided_tensors(values, mapping, half_stride, max_length, default)
        assert torch.equal(combine_windows(values, mapping, half_stride, max_length, default), expected)
    # one window per sentence, narrower than max_length
    narrow = hidden[:3, :10]
    single = torch.tensor([0, 1, 2])
    assert torch.equal(
        combine_windows(narrow, single, half_stride, max_length, 0),
        combine_strided_tensors(narrow, single, half_stride, max_length, 0),
    )


def test_invariant_calls_hold_rows_of_one_canonical_width_and_answer_as_alone(bert):
    """Each call: rows of one canonical width (padding added beyond the batch's own where the grid asks);
    a row's hidden states bit for bit those of the row alone, in two workers' parts or capped calls too."""
    from exporter.runtime.buckets import canonical_width

    model, tokenizer = bert
    texts = generate_sentences(14, seed=8, long_every=0) + ["Paris ."]
    ids, mask = _batch(tokenizer, texts)
    lengths = mask.sum(1).tolist()
    recorder = _Recorder(model)
    grouped = run_in_groups(recorder, ids, mask, 32, invariant=True, width_limit=64)
    widths = {canonical_width(n, 64) for n in lengths}
    assert sorted({t for _, t in recorder.shapes}) == sorted(widths)
    assert sum(rows for rows, _ in recorder.shapes) == len(texts)
    with ThreadPoolExecutor(2) as pool:
        parts = run_in_groups(_Recorder(model), ids, mask, 32, invariant=True, executor=pool, workers=2, max_rows=3)
    for row, n in enumerate(lengths):
        alone = run_in_groups(_Recorder(model), ids[row : row + 1, :n], mask[row : row + 1, :n], 32, invariant=True)
        assert torch.equal(grouped[0][row, :n], alone[0][0, :n])
        assert torch.equal(parts[0][row, :n], alone[0][0, :n])
