"""Lean serving (issue 25): a transformer tagger or text classifier exported to ONNX is served by
``exporter.runtime.lean`` (ONNX Runtime, tokenizers, numpy) and answers as the bundle's Flair path does: the same
entities, labels, offsets and tokens, scores equal to float precision; every other model keeps the Flair path and
its requirements. The comparisons run both paths of one bundle on the same texts (the Flair path is itself checked
against the original model by the parity gate at export)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from tinymodels import build_tiny_classifier, build_tiny_tagger

from exporter.config import Backend, ExportConfig, ParityConfig, RuntimeOptions
from exporter.errors import ConfigError

#: texts built to be awkward for a reimplementation of Flair's text handling
AWKWARD = [
    "",
    "   ",
    "\u200b",
    "\u200bJohn\u200c Smith met Angela\ufeff Merkel in Berlin.",
    "\x93Quoted\x94 words from Paris \x85 and \x81 London.",
    "Zoë Müller visited Ñandú in 東京 🙂 today with José.",
    "مرحبا Berlin שלום Tel Aviv",
    "I can't go to New York, isn't it? We'll see Dr. Smith's office.",
    "See https://example.com/a?b=1 or mail john@example.com for Acme Inc.",
    "Line one in Rome.\nLine two in Paris.\n\nParagraph three by Angela Merkel.\u2028Next: Madrid.",
    "A" * 300,
    "unknownword " * 3 + "[PAD] [CLS] [SEP] [UNK] [FLERT] Berlin",
]


def _texts(count: int = 40) -> list[str]:
    from exporter.quality.corpus import check_sentences

    long_text = " ".join(check_sentences(60))  # far beyond the tiny encoder's 64 subtokens: windows
    return [*check_sentences(count), *AWKWARD, long_text]


def _export(model, path: Path, backend: Backend = Backend.ONNX, **runtime):
    from exporter import save_bundle

    config = ExportConfig(backend=backend, runtime=RuntimeOptions(**runtime), parity=ParityConfig(num_sentences=16))
    return save_bundle(model, path, config)


def _pyfuncs(bundle: Path):
    """The bundle's pyfunc served lean and served by Flair's code."""
    from exporter.bundle.load import load_for_serving
    from exporter.runtime.lean.model import LeanModel
    from mlflow_flavor.pyfunc import FlairPyfuncModel

    lean = load_for_serving(bundle)
    flair = load_for_serving(bundle, runtime={"serving_path": "flair"})
    assert isinstance(lean, LeanModel) and not isinstance(flair, LeanModel)
    return FlairPyfuncModel(lean, lean.flair_mlflow_manifest), FlairPyfuncModel(flair, flair.flair_mlflow_manifest)


def _split_scores(answer):
    """An answer without its scores, and its scores in order."""
    scores: list[float] = []

    def strip(value):
        if isinstance(value, dict):
            if "score" in value:
                scores.append(value["score"])
            return {k: strip(v) for k, v in value.items() if k != "score"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(answer), scores


def assert_same_answers(lean_answers, flair_answers, tolerance: float = 1e-5) -> None:
    """The same labels, spans, offsets and tokens; every score within ``tolerance``."""
    assert len(lean_answers) == len(flair_answers)
    for i, (a, b) in enumerate(zip(lean_answers, flair_answers)):
        shape_a, scores_a = _split_scores(a)
        shape_b, scores_b = _split_scores(b)
        assert shape_a == shape_b, f"text {i}"
        assert all(math.isclose(x, y, abs_tol=tolerance) for x, y in zip(scores_a, scores_b)), (i, scores_a, scores_b)


TAGGER_PARAMS = [
    {},
    {"return_tokens": True},
    {"split_sentences": True},
    {"split_sentences": True, "return_tokens": True},
]


@pytest.fixture(scope="module")
def tagger_bundle(tiny_bert, tmp_path_factory):
    """A CRF tagger with its reprojection layer, first-subtoken pooling, windows over long texts."""
    model = build_tiny_tagger(tiny_bert, seed=1)
    return _export(model, tmp_path_factory.mktemp("lean") / "tagger").path


def test_a_transformer_tagger_serves_lean_and_answers_as_its_flair_path(tagger_bundle):
    from exporter.format.manifest import read_manifest

    manifest, _ = read_manifest(tagger_bundle)
    assert manifest["serving_path"] == "lean" and manifest["lean"]["head_file"] in manifest["files"]
    lean, flair = _pyfuncs(tagger_bundle)
    texts = _texts()
    for params in TAGGER_PARAMS:
        lean_answers = lean.predict(texts, params)
        assert_same_answers(lean_answers, flair.predict(texts, params))
    assert sum(1 for answer in lean.predict(texts) if answer) > len(texts) // 3  # entities found: not a vacuous test
    assert lean.predict([""]) == [[]] and lean.predict(["\u200b"]) == [[]]


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param(
            {"subtoken_pooling": "mean", "use_crf": False, "use_context": 24, "layers": "-1,-2", "layer_mean": False},
            marks=pytest.mark.slow,
        ),
        pytest.param({"subtoken_pooling": "last", "layers": "-1,-2,-3", "layer_mean": True}, marks=pytest.mark.slow),
        pytest.param({"subtoken_pooling": "first_last", "use_context": 24}, marks=pytest.mark.slow),
        pytest.param({"subtoken_pooling": "first", "allow_long_sentences": False}, marks=pytest.mark.slow),
        pytest.param({"subtoken_pooling": "mean", "use_context": 24, "separator": False}, marks=pytest.mark.slow),
        pytest.param({"tags": ("NOUN", "VERB", "ADJ", "DET", "PUNCT", "X"), "use_crf": False}, marks=pytest.mark.slow),
        # Flair's BiLSTM between reprojection and head (numpy LSTM, float64)
        pytest.param({"use_rnn": True}, marks=pytest.mark.slow),
        pytest.param({"use_rnn": True, "rnn_layers": 2, "use_crf": False, "use_context": 24}, marks=pytest.mark.slow),
    ],
    ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()),
)
def test_every_pooling_layer_and_context_setting_answers_as_the_flair_path(tiny_bert, tmp_path, settings):
    settings = dict(settings)
    separator = settings.pop("separator", True)
    model = build_tiny_tagger(tiny_bert, seed=2, **settings)
    if not separator:
        model.embeddings.use_context_separator = False
    bundle = _export(model, tmp_path / "tagger").path
    lean, flair = _pyfuncs(bundle)
    texts = _texts(24)
    # an LSTM: PyTorch's float32 steps drift from the lean float64 ones over long texts (4.4e-5 over 2,278 words)
    tolerance = 1e-4 if settings.get("use_rnn") else 1e-5
    for params in TAGGER_PARAMS:
        assert_same_answers(lean.predict(texts, params), flair.predict(texts, params), tolerance)


@pytest.mark.parametrize(
    "settings",
    [
        {"cls_pooling": "cls"},
        pytest.param({"cls_pooling": "mean", "layers": "-1,-2", "layer_mean": False}, marks=pytest.mark.slow),
        pytest.param({"cls_pooling": "max"}, marks=pytest.mark.slow),
        pytest.param({"cls_pooling": "mean", "multi_label": True}, marks=pytest.mark.slow),
        pytest.param({"cls_pooling": "max", "allow_long_sentences": True}, marks=pytest.mark.slow),
    ],
    ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()),
)
def test_a_transformer_classifier_serves_lean_and_answers_as_its_flair_path(tiny_bert, tmp_path, settings):
    model = build_tiny_classifier(tiny_bert, seed=3, **settings)
    bundle = _export(model, tmp_path / "classifier").path
    lean, flair = _pyfuncs(bundle)
    texts = _texts(24)
    for params in ({}, {"top_k": 3}, {"output": "records", "min_score": 0.2}):
        assert_same_answers(lean.predict(texts, params), flair.predict(texts, params))
    assert len({answer[0]["label"] for answer in lean.predict(texts) if answer}) > 1


def test_lean_answers_do_not_depend_on_the_other_texts_of_a_request(tagger_bundle):
    lean, _ = _pyfuncs(tagger_bundle)
    texts = _texts(32)
    together = lean.predict(texts, {"return_tokens": True})
    alone = [lean.predict([t], {"return_tokens": True})[0] for t in texts]
    assert together == alone  # exactly: scores too
    assert lean.predict(texts[::-1], {"mini_batch_size": 3}) == lean.predict(texts)[::-1]


def test_models_the_lean_path_cannot_reproduce_keep_the_flair_path(tiny_bert, tmp_path):
    from exporter.bundle.load import load_for_serving
    from exporter.runtime.lean.model import LeanModel

    recurrent = build_tiny_tagger(tiny_bert, use_rnn=True, rnn_type="GRU", seed=4)
    info = _export(recurrent, tmp_path / "rnn")
    assert info.manifest["serving_path"] == "flair" and "lean" not in info.manifest
    assert "recurrent layer other than Flair's LSTM (GRU)" in info.manifest["serving_path_reason"]
    assert not isinstance(load_for_serving(info.path), LeanModel)
    with pytest.raises(ConfigError, match="recurrent layer"):
        load_for_serving(info.path, runtime={"serving_path": "lean"})
    with pytest.raises(ConfigError, match="serving_path='lean' cannot serve this model exactly: a recurrent layer"):
        _export(recurrent, tmp_path / "rnn-lean", serving_path="lean")
    assert not (tmp_path / "rnn-lean").exists()  # nothing half-written

    torch_bundle = _export(build_tiny_tagger(tiny_bert, seed=4), tmp_path / "torch", backend=Backend.TORCH)
    assert "lean" not in torch_bundle.manifest
    assert not isinstance(load_for_serving(torch_bundle.path), LeanModel)
    with pytest.raises(ConfigError, match="lean serving needs onnx"):
        _export(
            build_tiny_tagger(tiny_bert, seed=4), tmp_path / "torch-lean", backend=Backend.TORCH, serving_path="lean"
        )
    assert not (tmp_path / "torch-lean").exists()


def test_serving_path_flair_at_export_keeps_flair_and_its_requirements(tiny_bert, tmp_path):
    import mlflow_flavor

    bundle = _export(build_tiny_tagger(tiny_bert, seed=5), tmp_path / "flair", serving_path="flair")
    assert bundle.manifest["serving_path"] == "flair" and "lean" in bundle.manifest  # can still be asked for lean
    mlflow_flavor.save_model(str(bundle.path), tmp_path / "model")
    requirements = (tmp_path / "model" / "requirements.txt").read_text()
    assert "flair==" in requirements and "torch==" in requirements


def _requirement_names(path: Path) -> set[str]:
    import re

    return {re.split(r"[=<>~!\[ ]", line)[0].lower() for line in path.read_text().splitlines() if line.strip()}


def test_a_lean_model_requires_neither_flair_nor_torch_and_loads_without_them(tagger_bundle, tmp_path):
    """The logged model's requirements name what the lean path imports; a process where torch, flair and
    transformers cannot be imported loads it through MLflow and answers as the Flair path does."""
    import mlflow_flavor

    model_dir = tmp_path / "model"
    mlflow_flavor.save_model(str(tagger_bundle), model_dir)
    names = _requirement_names(model_dir / "requirements.txt")
    assert {"mlflow", "onnxruntime", "tokenizers", "numpy", "pandas", "safetensors", "segtok"} <= names
    assert not names & {"flair", "torch", "transformers"}
    conda = (model_dir / "conda.yaml").read_text()
    assert "flair" not in conda and "torch" not in conda

    # a logged model served with serving_path=flair keeps Flair's requirements
    mlflow_flavor.save_model(str(tagger_bundle), tmp_path / "as-flair", model_config={"serving_path": "flair"})
    assert {"flair", "torch", "transformers"} <= _requirement_names(tmp_path / "as-flair" / "requirements.txt")

    texts = _texts(16)
    script = f"""
import importlib.abc, json, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "flair", "transformers"):
            raise ImportError(f"{{name}} is not installed here")
sys.meta_path.insert(0, Refuse())
import mlflow.pyfunc
model = mlflow.pyfunc.load_model({str(model_dir)!r})
texts = json.loads(sys.stdin.read())
answers = model.predict(texts, params={{"return_tokens": True}})
assert not [m for m in sys.modules if m.split(".")[0] in ("torch", "flair", "transformers")]
print(json.dumps(answers))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], input=json.dumps(texts), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    _, flair = _pyfuncs(tagger_bundle)
    assert_same_answers(answers, flair.predict(texts, {"return_tokens": True}))


def test_the_lean_section_and_head_file_are_covered_by_the_checksums(tagger_bundle, tmp_path):
    import shutil

    from exporter.bundle.load import load_for_serving
    from exporter.errors import ChecksumError

    copy = tmp_path / "bundle"
    shutil.copytree(tagger_bundle, copy)
    head = copy / "head.safetensors"
    data = bytearray(head.read_bytes())
    data[-1] ^= 1
    head.write_bytes(bytes(data))
    with pytest.raises(ChecksumError):
        load_for_serving(copy)


def test_a_lean_section_that_does_not_fit_its_bundle_is_refused_at_load(tagger_bundle, tmp_path):
    """The lean section is read as data and checked: complete, naming only the bundle's own files, its head fitting
    its labels (a manifest edited by hand, without the digest MLmodel records)."""
    import shutil

    from exporter.bundle.load import load_for_serving
    from exporter.errors import BundleError

    def edited(name: str, change) -> Path:
        copy = tmp_path / name
        shutil.copytree(tagger_bundle, copy)
        manifest = json.loads((copy / "bundle.json").read_text())
        change(manifest["lean"])
        (copy / "bundle.json").write_text(json.dumps(manifest))
        return copy

    cases = {
        "missing": (lambda lean: lean.pop("labels"), "incomplete"),
        "outside": (lambda lean: lean.update(head_file="../../etc/passwd"), "not one of its files"),
        "labels": (lambda lean: lean.update(labels=lean["labels"][:-3]), "scores for"),
        "tags": (lambda lean: lean.update(start_tag=99), "start_tag"),
        "format": (lambda lean: lean.update(format=2), "format 2"),
    }
    for name, (change, message) in cases.items():
        with pytest.raises(BundleError, match=message):
            load_for_serving(edited(name, change))


def test_the_model_environment_never_deletes_a_folder_it_did_not_make(tmp_path):
    from exporter.errors import FlairMlflowError
    from mlflow_flavor.tools.model_env import model_environment

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "requirements.txt").write_text("numpy\n")
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    with pytest.raises(FlairMlflowError, match="not an environment flair-mlflow made"):
        model_environment(model_dir, work)
    assert (work / "notes.txt").read_text() == "mine"


def test_serving_path_is_checked(tagger_bundle):
    from exporter.bundle.load import load_for_serving

    with pytest.raises(ConfigError, match="did you mean 'lean'"):
        RuntimeOptions(serving_path="lane")
    with pytest.raises(ConfigError, match="serving_path"):
        load_for_serving(tagger_bundle, runtime={"serving_path": "fast"})


@pytest.mark.slow
def test_a_fresh_environment_made_from_the_requirements_serves_the_model(tagger_bundle, tmp_path):
    """The issue's own check: a virtual environment made only from the logged model's requirements.txt holds
    neither torch nor flair, is at most 1.2 GB, and answers exactly as the full environment's lean path (and with
    the same answers as the Flair path)."""
    import subprocess

    import mlflow.pyfunc

    import mlflow_flavor
    from mlflow_flavor.tools.model_env import model_environment, predict_in_environment, site_packages_mb

    model_dir = tmp_path / "model"
    mlflow_flavor.save_model(str(tagger_bundle), model_dir)
    python = model_environment(model_dir, tmp_path / "env")
    for package in ("torch", "flair", "transformers"):
        assert subprocess.run([str(python), "-c", f"import {package}"], capture_output=True).returncode != 0
    assert site_packages_mb(python) < 1200
    texts = _texts(24)
    there = predict_in_environment(python, model_dir, texts, {"return_tokens": True})
    assert there["imported"] == []
    here = mlflow.pyfunc.load_model(str(model_dir)).predict(texts, params={"return_tokens": True})
    assert there["answers"] == here  # exactly, scores too
    _, flair = _pyfuncs(tagger_bundle)
    assert_same_answers(there["answers"], flair.predict(texts, {"return_tokens": True}))


def test_lean_check_compares_answers_but_their_scores():
    from mlflow_flavor.tools.lean_check import compare_answers

    a = [[{"text": "Paris", "label": "LOC", "start": 0, "end": 5, "score": 0.9}], [], [{"label": "x", "score": 0.5}]]
    b = [[{"text": "Paris", "label": "LOC", "start": 0, "end": 5, "score": 0.8}], [], [{"label": "y", "score": 0.5}]]
    report = compare_answers(a, b)
    assert report["texts"] == 3 and report["identical"] == 2
    assert report["max_score_diff"] == pytest.approx(0.1)
    with pytest.raises(ValueError):  # answers of different lengths are not comparable
        compare_answers(a, b[:2])


def test_the_lean_check_runs_and_is_recorded_with_the_parity_gate_off(tiny_bert, tmp_path):
    from exporter import save_bundle

    config = ExportConfig(parity=ParityConfig(enabled=False, num_sentences=16))
    manifest = save_bundle(build_tiny_tagger(tiny_bert, seed=6), tmp_path / "b", config).manifest
    assert manifest.get("parity") is None and manifest["serving_path"] == "lean"
    assert manifest["lean_parity"]["passed"] and manifest["lean_parity"]["texts"] == 16
