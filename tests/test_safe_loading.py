"""Loading is not executing: a model.pt that would run code is refused, even with every checksum recomputed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import pytest
from conftest import entities_of
from servers import model_server

import mlflow_flavor
from exporter import ExportConfig, load_bundle, save_bundle
from exporter.config import Backend
from exporter.errors import UnsafeModelFileError
from exporter.format.manifest import MANIFEST_FILE, file_entry, sha256_bytes, verify_bundle
from exporter.quality.corpus import generate_sentences
from mlflow_flavor.tools.serving import ServerError

TEXTS = generate_sentences(12, seed=5, long_every=0)


class CreateFile:
    """Unpickling this runs ``touch PATH`` in a shell: the file appears exactly when the pickle is executed."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch '{self.path}'",))


def _rewrite_manifest(bundle: Path, change) -> str:
    """Apply ``change`` to the manifest, recompute every file entry, write it as the exporter does; return its sha256."""
    manifest = json.loads((bundle / MANIFEST_FILE).read_text())
    change(manifest)
    manifest["files"] = {name: file_entry(bundle, name) for name in manifest["files"]}
    data = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")
    (bundle / MANIFEST_FILE).write_bytes(data)
    return sha256_bytes(data)


def _plant_payload(bundle: Path, marker: Path) -> str:
    """Put the payload into model.pt next to the real state; make bundle.json match again. Returns its sha256."""
    import torch

    state = torch.load(bundle / "model.pt", map_location="cpu", weights_only=False)
    state["extra"] = CreateFile(marker)
    torch.save(state, bundle / "model.pt")
    digest = _rewrite_manifest(bundle, lambda manifest: None)
    assert verify_bundle(bundle, digest)  # every checksum matches: only the loader can stop it
    assert not marker.exists()
    return digest


def _plant_in_model_dir(model_dir: Path, marker: Path) -> None:
    """The same in an MLflow model directory, with the digest in MLmodel recomputed too."""
    from mlflow.models import Model

    digest = _plant_payload(model_dir / "bundle", marker)
    mlmodel = Model.load(str(model_dir / "MLmodel"))
    mlmodel.flavors["flair_mlflow"]["manifest_sha256"] = digest
    mlmodel.save(str(model_dir / "MLmodel"))


@pytest.mark.parametrize("backend", ["onnx", "torchscript", "torch"])
def test_bundle_with_a_code_payload_is_refused_by_load_bundle(tiny_tagger, tmp_path, backend):
    info = save_bundle(tiny_tagger, tmp_path / "bundle", ExportConfig(backend=Backend.parse(backend)))
    assert info.manifest["schema_version"] == 3
    assert info.manifest["model_pickle"] == "weights-only"
    reference = entities_of(load_bundle(info.path), TEXTS)  # a clean bundle loads without any opt-in
    marker = tmp_path / "pwned"
    _plant_payload(info.path, marker)
    with pytest.raises(UnsafeModelFileError, match=r"not plain data .*posix\.system.*allow_pickle=True"):
        load_bundle(info.path)
    assert not marker.exists()
    # the payload is real: full unpickling (what loading did before schema 3) creates the file
    import torch

    torch.load(info.path / "model.pt", weights_only=False)
    assert marker.exists()
    assert reference == entities_of(tiny_tagger, TEXTS)


@pytest.mark.slow
def test_mlflow_model_with_a_code_payload_is_refused_everywhere(tiny_tagger, tmp_path, monkeypatch):
    """Every loader that reads model.pt refuses the payload; the lean path (issue 25) never reads model.pt, so it
    serves without running it."""
    import json

    from mlflow.exceptions import MlflowException

    model_dir = tmp_path / "model"
    mlflow_flavor.save_model(tiny_tagger, model_dir, backend="onnx")
    marker = tmp_path / "pwned"
    _plant_in_model_dir(model_dir, marker)
    why = r"not plain data .*posix\.system"
    flair_path = {"serving_path": "flair"}

    with pytest.raises(UnsafeModelFileError, match=why):
        load_bundle(model_dir / "bundle")
    with pytest.raises(MlflowException, match=why):
        mlflow_flavor.load_model(str(model_dir))
    with pytest.raises(MlflowException, match=why + ".*FLAIR_MLFLOW_ALLOW_PICKLE=1"):
        mlflow.pyfunc.load_model(str(model_dir), model_config=flair_path)
    # a model_config cannot opt in: whoever wrote the MLmodel could have set it
    with pytest.raises(MlflowException, match=why):
        mlflow.pyfunc.load_model(str(model_dir), model_config={**flair_path, "allow_pickle": True})
    with pytest.raises(ServerError, match=r"not plain data") as served:
        env = {"MLFLOW_PYFUNC_INFERENCE_CONFIG": json.dumps(flair_path)}
        with model_server(str(model_dir), tmp_path / "serve.log", timeout=120, env=env):
            pass
    assert "posix.system" in str(served.value)
    lean = mlflow.pyfunc.load_model(str(model_dir))  # lean: model.pt is never opened
    assert lean.predict(TEXTS) and not marker.exists()


def test_bundle_of_the_previous_schema_loads_with_the_opt_in_the_error_names(tiny_tagger, tmp_path, monkeypatch):
    """A schema-2 bundle (model.pt in pickle protocol 4, as flair-mlflow wrote it before) needs allow_pickle."""
    import torch

    info = save_bundle(tiny_tagger, tmp_path / "bundle")
    state = torch.load(info.path / "model.pt", map_location="cpu", weights_only=False)
    torch.save(state, info.path / "model.pt", pickle_protocol=4)

    def to_schema_2(manifest):
        manifest["schema_version"] = 2
        del manifest["model_pickle"]

    digest = _rewrite_manifest(info.path, to_schema_2)
    with pytest.raises(UnsafeModelFileError, match=r"schema version 2.*export the model again.*allow_pickle=True"):
        load_bundle(info.path, expected_manifest_sha256=digest)
    reference = entities_of(tiny_tagger, TEXTS)
    assert entities_of(load_bundle(info.path, expected_manifest_sha256=digest, allow_pickle=True), TEXTS) == reference
    monkeypatch.setenv("FLAIR_MLFLOW_ALLOW_PICKLE", "1")
    assert entities_of(load_bundle(info.path), TEXTS) == reference
    monkeypatch.setenv("FLAIR_MLFLOW_ALLOW_PICKLE", "maybe")
    with pytest.raises(ValueError, match="FLAIR_MLFLOW_ALLOW_PICKLE must be"):
        load_bundle(info.path)


def test_a_bundle_cannot_choose_its_embeddings_class(tiny_tagger, tmp_path):
    """A torch bundle's model.pt names its embeddings class: without the opt-in only Flair's transformers pass."""
    import torch

    info = save_bundle(tiny_tagger, tmp_path / "bundle", ExportConfig(backend=Backend.TORCH))
    state = torch.load(info.path / "model.pt", map_location="cpu", weights_only=False)
    state["embeddings"]["__cls__"] = "TransformerOnnxWordEmbeddings"
    torch.save(state, info.path / "model.pt")
    _rewrite_manifest(info.path, lambda manifest: None)
    with pytest.raises(UnsafeModelFileError, match="names embeddings 'TransformerOnnxWordEmbeddings'"):
        load_bundle(info.path)


def test_users_own_flair_file_loads_through_the_safe_reader_or_says_it_needs_pickle(
    tiny_tagger, tiny_tagger_file, tmp_path, caplog
):
    import torch

    from exporter.format.modelfile import load_flair_model

    reference = entities_of(tiny_tagger, TEXTS)
    plain = tmp_path / "plain.pt"
    torch.save(tiny_tagger._get_state_dict(), plain)
    with caplog.at_level("WARNING", logger="exporter.format.modelfile"):
        assert entities_of(load_flair_model(plain, allow_pickle=False), TEXTS) == reference
        assert entities_of(load_flair_model(plain), TEXTS) == reference
    assert "unpickling" not in caplog.text
    # Flair's own model.save writes pickle protocol 4: the safe reader says so, the default takes the full path
    import shutil

    saved = shutil.copy(tiny_tagger_file, tmp_path / "flair-save.pt")  # a file this process has not warned about
    with pytest.raises(UnsafeModelFileError, match="protocol 4.*allow_pickle=True if it is your own file"):
        load_flair_model(saved, allow_pickle=False)
    with caplog.at_level("WARNING", logger="exporter.format.modelfile"):
        assert entities_of(load_flair_model(saved), TEXTS) == reference
    assert "needs full unpickling" in caplog.text and "protocol 4" in caplog.text
    assert "save_plain(model, path)" in caplog.text  # how to make it go away
    # said once per file: the next export of the same file loads it without repeating it (issue 23 item 14)
    caplog.clear()
    with caplog.at_level("WARNING", logger="exporter.format.modelfile"):
        load_flair_model(saved)
    assert "unpickling" not in caplog.text
    caplog.clear()
    marker = tmp_path / "ran"
    state = torch.load(plain, map_location="cpu", weights_only=False)
    state["extra"] = CreateFile(marker)
    own = tmp_path / "own.pt"
    torch.save(state, own)
    with pytest.raises(UnsafeModelFileError, match=r"posix\.system.*allow_pickle=True if it is your own file"):
        load_flair_model(own, allow_pickle=False)
    assert not marker.exists()
    with caplog.at_level("WARNING", logger="exporter.format.modelfile"):
        assert entities_of(load_flair_model(own), TEXTS) == reference  # the user's own file: trusted, with a warning
    assert marker.exists()
    assert "needs full unpickling" in caplog.text and "posix.system" in caplog.text
