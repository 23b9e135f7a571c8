"""Defects found while putting the house in layers (issue 19), each with a test that fails without its fix."""

from __future__ import annotations

import logging
import os
import stat
import threading

import mlflow
import pytest

import mlflow_flavor
from exporter import ConfigError, ExportConfig, OnnxOptions, ParityConfig, ProviderError, RuntimeOptions, save_bundle
from exporter.backends.onnx import check_session_providers
from exporter.config import check_integer


def test_a_save_never_switches_the_process_umask_under_other_threads(tiny_tagger, tmp_path, monkeypatch):
    """Reading the umask means setting it (os.umask(0) and back): a file another thread creates meanwhile gets
    0666. The save creates its folder with os.mkdir instead, which applies the umask without changing it."""
    calls = []
    real_umask = os.umask
    monkeypatch.setattr(os, "umask", lambda mask: calls.append(mask) or real_umask(mask))
    other = tmp_path / "other"
    other.mkdir()
    stop = threading.Event()

    def create_files():
        i = 0
        while not stop.is_set():
            (other / f"f{i}").touch()
            i += 1

    previous = real_umask(0o022)
    thread = threading.Thread(target=create_files)
    thread.start()
    try:
        bundle = save_bundle(
            tiny_tagger, tmp_path / "bundle", ExportConfig(backend="torch", parity=ParityConfig(enabled=False))
        ).path
    finally:
        stop.set()
        thread.join()
        real_umask(previous)
    assert calls == []
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o755
    modes = {stat.S_IMODE(p.stat().st_mode) for p in other.iterdir()}
    assert modes == {0o644}, modes


def test_a_config_error_names_its_option_in_a_field():
    with pytest.raises(ConfigError) as raised:
        OnnxOptions(opset=9)
    assert raised.value.option == "opset"
    with pytest.raises(ConfigError) as raised:
        RuntimeOptions(encoder_workers=0)
    assert raised.value.option == "encoder_workers" and "encoder_workers must be a positive integer" in str(
        raised.value
    )
    with pytest.raises(ConfigError) as raised:
        ParityConfig(min_tag_agreement=2)
    assert raised.value.option == "min_tag_agreement"


def test_one_integer_check_for_every_integer_option():
    check_integer("n", 3, 1, 5)
    for value in (0, 6, True, 2.0, "3"):
        with pytest.raises(ConfigError, match=r"n must be a positive integer \(at most 5\)"):
            check_integer("n", value, 1, 5)
    with pytest.raises(ConfigError, match=r"n must be an integer between 14 and 21, got 9"):
        check_integer("n", 9, 14, 21)
    with pytest.raises(ConfigError, match=r"threads must be a non-negative integer \(0 = auto\), got -1"):
        check_integer("threads", -1, 0, note="0 = auto")


class _Session:
    """A stand-in for an ONNX Runtime session that started only some of the providers it was given (as ONNX
    Runtime does where CUDA's libraries are missing); no machine here has a provider that fails to start."""

    def __init__(self, running):
        self.running = running

    def get_providers(self):
        return self.running


def test_providers_a_session_did_not_start_are_said(caplog):
    asked = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with caplog.at_level(logging.WARNING, logger="exporter.backends.onnx"):
        running = check_session_providers(_Session(["CPUExecutionProvider"]), asked, strict=False)
    assert running == ["CPUExecutionProvider"]
    assert "did not start execution provider(s) CUDAExecutionProvider" in caplog.text
    with pytest.raises(ProviderError, match="CUDAExecutionProvider"):
        check_session_providers(_Session(["CPUExecutionProvider"]), asked, strict=True)
    assert check_session_providers(_Session(asked), asked, strict=True) == asked


def test_the_pyfunc_gives_the_model_it_serves(tiny_bundle, tmp_path):
    """Lean where the bundle serves lean (issue 25), Flair's model where it is asked for; load_model always gives
    the Flair model."""
    from flair.models import SequenceTagger

    from exporter.runtime.lean.model import LeanModel

    mlflow_flavor.save_model(str(tiny_bundle), tmp_path / "model")
    raw = mlflow.pyfunc.load_model(str(tmp_path / "model")).get_raw_model()
    assert isinstance(raw, LeanModel) and raw.flair_mlflow_manifest["backend"] == "onnx"
    as_flair = mlflow.pyfunc.load_model(str(tmp_path / "model"), model_config={"serving_path": "flair"})
    raw = as_flair.get_raw_model()
    assert isinstance(raw, SequenceTagger) and raw.flair_mlflow_manifest["backend"] == "onnx"
    assert isinstance(mlflow_flavor.load_model(str(tmp_path / "model")), SequenceTagger)


def test_an_unsafe_model_file_error_carries_its_reason(tmp_path):
    import pickle

    from exporter.errors import UnsafeModelFileError
    from exporter.format.modelfile import load_state

    path = tmp_path / "model.pt"
    import torch

    torch.save({"state": logging.getLogger}, path, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    with pytest.raises(UnsafeModelFileError) as raised:
        load_state(path)
    assert raised.value.reason and raised.value.reason in str(raised.value)
