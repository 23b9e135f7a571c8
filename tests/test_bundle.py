"""Bundles are verified before anything is unpickled, load from anywhere, and are never half-written."""

from __future__ import annotations

import json
import os
import pickle
import shutil

import pytest
from conftest import entities_of

from exporter import (
    BundleError,
    ChecksumError,
    ExportConfig,
    ExportError,
    ParityConfig,
    UnsupportedModelError,
    load_bundle,
    save_bundle,
)
from exporter.format.manifest import MANIFEST_FILE, read_manifest

TEXTS = ["Angela Merkel met Tim Cook in Paris .", "Siemens opened an office in Munich , Germany ."]


def test_manifest_records_files_versions_and_settings(tiny_bundle):
    manifest, _ = read_manifest(tiny_bundle)
    assert manifest["schema_version"] == 3
    assert manifest["model_pickle"] == "weights-only"
    assert manifest["backend"] == "onnx"
    assert {"model.pt", "encoder.onnx"} <= set(manifest["files"])
    assert any(name.startswith("tokenizer/") for name in manifest["files"])
    for name, entry in manifest["files"].items():
        assert (tiny_bundle / name).stat().st_size == entry["size"]
        assert len(entry["sha256"]) == 64
    assert {"flair", "torch", "transformers", "onnx", "onnxruntime"} <= set(manifest["versions"])
    assert manifest["onnx"]["opset"] == 17
    assert manifest["onnx"]["providers"] == ["CPUExecutionProvider"]
    assert "intra_op_num_threads" in manifest["onnx"]["session_options"]
    assert manifest["onnx"]["session_options"]["allow_spinning"] is False
    assert manifest["runtime"]["allow_spinning"] is False and manifest["runtime"]["length_buckets"] is True
    assert "B-PER" in manifest["labels"] and manifest["tag_type"] == "ner"
    assert manifest["embeddings"]["subtoken_pooling"] == "first"
    assert manifest["parity"]["passed"] is True


def test_moved_bundle_loads_from_another_working_directory(tiny_bundle, tiny_tagger, tmp_path, monkeypatch):
    moved = tmp_path / "elsewhere" / "deeper" / "bundle"
    shutil.copytree(tiny_bundle, moved)
    other = tmp_path / "cwd"
    other.mkdir()
    monkeypatch.chdir(other)
    model = load_bundle(os.path.relpath(moved, other))
    assert entities_of(model, TEXTS) == entities_of(tiny_tagger, TEXTS)


def _all_files(directory):
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())


def test_changing_one_byte_of_any_file_fails_before_unpickling(tiny_bundle, tmp_path):
    for name in _all_files(tiny_bundle):
        if name == MANIFEST_FILE:
            continue
        copy = tmp_path / name.replace("/", "_")
        shutil.copytree(tiny_bundle, copy)
        path = copy / name
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
        with pytest.raises(ChecksumError, match=name):
            load_bundle(copy)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_swapped_pickle_is_never_unpickled(tiny_bundle, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    marker = tmp_path / "pwned"
    with open(copy / "model.pt", "wb") as f:
        pickle.dump(_Exploit(marker), f)
    with pytest.raises(ChecksumError):
        load_bundle(copy)
    assert not marker.exists()


def test_tampered_manifest_is_caught_by_its_recorded_digest(tiny_bundle, tmp_path):
    _, digest = read_manifest(tiny_bundle)
    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    manifest["labels"].append("EVIL")
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ChecksumError, match=MANIFEST_FILE):
        load_bundle(copy, expected_manifest_sha256=digest)


def test_unknown_schema_and_missing_manifest_are_refused(tiny_bundle, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    manifest["schema_version"] = 99
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="schema version 99"):
        load_bundle(copy)
    (copy / MANIFEST_FILE).unlink()
    with pytest.raises(BundleError, match="not a flair-mlflow bundle"):
        load_bundle(copy)


def test_wrong_directories_say_what_they_are_and_what_to_do(tiny_bundle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BundleError, match=f"{tmp_path / 'missing'} does not exist"):
        load_bundle("missing")
    model_dir = tmp_path / "mlflow-model"
    shutil.copytree(tiny_bundle, model_dir / "bundle")
    (model_dir / "MLmodel").write_text("flavors: {}\n")
    with pytest.raises(BundleError, match="is an MLflow model directory, not a bundle") as error:
        load_bundle(model_dir)
    assert f"its bundle is {model_dir / 'bundle'}" in str(error.value) and "mlflow_flavor.load_model" in str(
        error.value
    )
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="flair-mlflow export"):
        load_bundle(tmp_path / "empty")


def test_export_and_load_keep_tracer_warnings_and_flair_dictionary_chatter_out(tiny_tagger, tmp_path, monkeypatch):
    import contextlib
    import logging
    import warnings

    import torch

    from exporter.backends import onnx as onnx_backend

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("flair").addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            save_bundle(tiny_tagger, tmp_path / "quiet", ExportConfig(parity=ParityConfig(enabled=False)))
            load_bundle(tmp_path / "quiet")
        # the same export with the filter taken away warns: the check above can fail
        monkeypatch.setattr(onnx_backend, "quiet_tracing", contextlib.nullcontext)
        with warnings.catch_warnings(record=True) as unfiltered:
            warnings.simplefilter("always")
            save_bundle(tiny_tagger, tmp_path / "loud", ExportConfig(parity=ParityConfig(enabled=False)))
        tiny_tagger.__class__._init_model_with_state_dict(tiny_tagger._get_state_dict())
    finally:
        logging.getLogger("flair").removeHandler(handler)
    assert not [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    assert [w for w in unfiltered if issubclass(w.category, torch.jit.TracerWarning)]
    chatter = [r for r in records if str(r.msg).startswith("SequenceTagger predicts:")]
    assert len(chatter) == 1  # the tagger built outside flair-mlflow's loaders still says it


def test_failed_export_leaves_no_partial_bundle(tiny_tagger, tmp_path, monkeypatch):
    from exporter.backends import onnx as onnx_backend

    def broken(embeddings, settings, directory, config):
        (directory / "encoder.onnx").write_bytes(b"half")
        raise ExportError("simulated converter crash")

    monkeypatch.setattr(onnx_backend, "export_encoder", broken)
    target = tmp_path / "exports" / "out"
    with pytest.raises(ExportError, match="simulated"):
        save_bundle(tiny_tagger, target)
    assert list(target.parent.iterdir()) == []


def test_existing_target_is_not_overwritten(tiny_tagger, tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("precious")
    with pytest.raises(BundleError, match="already exists"):
        save_bundle(tiny_tagger, target)
    assert (target / "keep.txt").read_text() == "precious"


def test_a_stack_is_bundled_as_flairs_own_model_and_what_is_no_model_is_refused(tiny_bert, tmp_path):
    from flair.data import Dictionary
    from flair.embeddings import StackedEmbeddings, TransformerWordEmbeddings
    from flair.models import SequenceTagger

    tags = Dictionary(add_unk=False)
    for t in ("O", "S-PER", "B-PER", "E-PER", "I-PER"):
        tags.add_item(t)
    stacked = StackedEmbeddings([TransformerWordEmbeddings(str(tiny_bert), fine_tune=False)])
    tagger = SequenceTagger(stacked, tags, "ner", use_rnn=False).eval()
    # no single transformer to export: Flair's own model (issue 20), answering as the original
    info = save_bundle(tagger, tmp_path / "stacked", ExportConfig(parity=ParityConfig(num_sentences=16)))
    assert info.manifest["backend"] == "torch"
    texts = ["Angela Merkel met Tim Cook in Paris .", "George went to Washington ."]
    assert entities_of(load_bundle(info.path), texts) == entities_of(tagger, texts)
    with pytest.raises(UnsupportedModelError, match="Cannot export a builtins.str"):
        save_bundle("not a model", tmp_path / "never")
    assert not (tmp_path / "never").exists()


def _other_flair_models(word, document, labels):
    """Flair models on transformer embeddings whose predict flair-mlflow does not reproduce."""
    import flair.models as m
    from flair.models import SequenceTagger, TextClassifier

    class MyTagger(SequenceTagger):  # a user's subclass may predict differently
        pass

    class MyClassifier(TextClassifier):
        pass

    return {
        "SpanClassifier": lambda: m.SpanClassifier(embeddings=word, label_dictionary=labels, label_type="nel"),
        "TextRegressor": lambda: m.TextRegressor(document, label_name="score"),
        "MyTagger": lambda: MyTagger(word, labels, "ner", use_rnn=False, use_crf=False),
        "MyClassifier": lambda: MyClassifier(document, label_type="topic", label_dictionary=labels),
    }


@pytest.mark.parametrize(
    "model_name",
    [
        "SpanClassifier",
        "TextRegressor",
        "MyTagger",
        "MyClassifier",
    ],
)
@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_other_models_on_transformer_embeddings_are_refused_by_name(tiny_bert, tmp_path, model_name, backend):
    from flair.data import Dictionary
    from flair.embeddings import TransformerDocumentEmbeddings, TransformerWordEmbeddings

    labels = Dictionary(add_unk=False)
    for label in ("S-PER", "O", "B-PER"):
        labels.add_item(label)
    word = TransformerWordEmbeddings(str(tiny_bert), fine_tune=False)
    document = TransformerDocumentEmbeddings(str(tiny_bert), fine_tune=False)
    model = _other_flair_models(word, document, labels)[model_name]()
    embeddings = (
        "TransformerDocumentEmbeddings"
        if model_name in {"TextRegressor", "MyClassifier"}
        else "TransformerWordEmbeddings"
    )
    with pytest.raises(UnsupportedModelError, match=rf"{model_name} \(embeddings: {embeddings}\)"):
        save_bundle(model, tmp_path / "never", ExportConfig(backend=backend))
    assert not (tmp_path / "never").exists()


def test_unlisted_files_and_manifests_without_the_model_are_refused(tiny_bundle, tmp_path):
    copy = tmp_path / "extra"
    shutil.copytree(tiny_bundle, copy)
    (copy / "tokenizer" / "special_tokens_map.json.bak").write_text("{}")
    with pytest.raises(ChecksumError, match="not listed in the manifest"):
        load_bundle(copy)
    copy = tmp_path / "nomodel"
    shutil.copytree(tiny_bundle, copy)
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    del manifest["files"]["model.pt"]
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ChecksumError, match="lists no model.pt"):
        load_bundle(copy)


def test_manifest_holds_no_local_paths(tiny_bundle):
    text = (tiny_bundle / MANIFEST_FILE).read_text()
    assert "/tmp/" not in text and "pytest-of" not in text


def test_spinning_is_applied_to_the_session_and_can_be_turned_back_on(tiny_bundle):
    key = "session.intra_op.allow_spinning"

    def spinning(model):
        return model.embeddings.model.encoder.session.get_session_options().get_session_config_entry(key)

    assert spinning(load_bundle(tiny_bundle)) == "0"
    assert spinning(load_bundle(tiny_bundle, runtime={"allow_spinning": True})) == "1"
