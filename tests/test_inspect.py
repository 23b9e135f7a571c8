"""`flair-mlflow inspect` says why a bundle serves with Flair's code, for every backend and model kind (a new user
saw `serving_path: flair` with no reason for a character-LM int8 model and a torchscript bundle)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from tinymodels import build_classic_tagger

from exporter import ExportConfig, OnnxOptions, ParityConfig, save_bundle
from exporter.backends.kinds import flair_path_reason
from mlflow_flavor.cli.commands import main
from mlflow_flavor.tools.inspect import describe_model

OFF = ParityConfig(enabled=False)


@pytest.mark.parametrize(
    "backend, options, reason",
    [
        ("onnx", OnnxOptions(quantize="int8"), "Flair's character language models"),
        ("torchscript", OnnxOptions(), "Flair's character language models"),
        ("torch", OnnxOptions(), "Flair's character language models"),
    ],
    ids=["charlm-onnx-int8", "torchscript", "torch"],
)
def test_every_flair_path_bundle_records_and_shows_why(backend, options, reason, tmp_path):
    tagger = build_classic_tagger("flair")
    info = save_bundle(tagger, tmp_path / "bundle", ExportConfig(backend=backend, onnx=options, parity=OFF))
    assert info.manifest["serving_path"] == "flair"
    assert reason in info.manifest["serving_path_reason"]
    facts = describe_model(str(info.path))
    assert facts["serving_path_reason"] == info.manifest["serving_path_reason"]
    shown = CliRunner().invoke(main, ["inspect", str(info.path)])
    assert shown.exit_code == 0, shown.output
    assert f"serving_path_reason: {info.manifest['serving_path_reason']}" in shown.output


def test_a_transformer_bundle_on_torchscript_says_why(tiny_tagger, tmp_path):
    for backend in ("torchscript", "torch"):  # a model the onnx backend would serve lean: the backend is the reason
        info = save_bundle(tiny_tagger, tmp_path / backend, ExportConfig(backend=backend, parity=OFF))
        facts = json.loads(CliRunner().invoke(main, ["inspect", str(info.path), "--json"]).stdout)
        assert facts["serving_path"] == "flair"
        assert f"a {backend} bundle (lean serving needs onnx" in facts["serving_path_reason"]


def test_bundles_written_before_serving_paths_get_a_reason_too():
    """Manifests of earlier releases record no serving path: the reason comes from their backend and files."""
    assert "torch bundle" in flair_path_reason({"backend": "torch"})
    assert "character language models" in flair_path_reason({"backend": "onnx", "onnx": {"char_lms": []}})
    assert "export it again" in flair_path_reason({"backend": "onnx", "onnx": {"model_file": "encoder.onnx"}})
    assert flair_path_reason({"backend": "onnx", "serving_path_reason": "asked"}) == "asked"


def test_a_model_that_runs_as_flairs_code_is_not_told_to_export_with_onnx(tmp_path):
    """A multitask model asked for with backend onnx is bundled as Flair's own model (torch): the reason names the
    model, not the backend (exporting it with onnx again would give the same bundle)."""
    from flair.models import MultitaskModel
    from tinymodels import build_classic_classifier

    model = MultitaskModel([build_classic_tagger("words", use_crf=False), build_classic_classifier("pool")])
    info = save_bundle(model, tmp_path / "multi", ExportConfig(backend="onnx", parity=OFF))
    assert info.manifest["backend"] == "torch"
    assert "a MultitaskModel" in info.manifest["serving_path_reason"]
    assert "backend onnx" not in info.manifest["serving_path_reason"]
    words = save_bundle(build_classic_tagger("words"), tmp_path / "words", ExportConfig(backend="onnx", parity=OFF))
    assert "hold no single transformer" in words.manifest["serving_path_reason"]
