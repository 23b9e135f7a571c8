"""Verified downloads: no progress bar for internal steps, and a changed cache named as the culprit."""

from __future__ import annotations

import logging
import os

import pytest
from conftest import log_and_stage

from mlflow_flavor.fetch import PROGRESS_BAR_VARIABLE, fetch_model

BAR = "Downloading artifacts"


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FLAIR_MLFLOW_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(PROGRESS_BAR_VARIABLE, raising=False)
    return tmp_path / "cache" / "models"


def test_internal_downloads_show_no_progress_bar(tiny_bundle, cache, capfd, monkeypatch):
    import mlflow_flavor.fetch

    capfd.readouterr()
    log_and_stage(str(tiny_bundle))  # registration downloads the version again to seal it
    assert BAR not in capfd.readouterr().err
    fetch_model("models:/ner/1", use_cache=False)  # a real download, into a log (no terminal): no bar either
    assert BAR not in capfd.readouterr().err
    monkeypatch.setattr(mlflow_flavor.fetch, "_on_a_terminal", lambda: True)
    fetch_model("models:/ner/1")  # on a terminal, a real download keeps MLflow's bar (stderr is captured)
    assert BAR in capfd.readouterr().err
    fetch_model("models:/ner@production")  # from the cache: only MLmodel is downloaded
    assert BAR not in capfd.readouterr().err
    assert PROGRESS_BAR_VARIABLE not in os.environ  # switched off only around those downloads


def test_a_cache_changed_after_download_is_named_and_fetched_again(tiny_bundle, cache, caplog):
    log_and_stage(str(tiny_bundle))
    first = fetch_model("models:/ner/1")
    original = (first / "MLmodel").read_bytes()
    (first / "MLmodel").write_bytes(original + b"# edited here\n")  # consistent with its bundle, not with the registry
    with caplog.at_level(logging.WARNING, logger="mlflow_flavor.fetch"):
        again = fetch_model("models:/ner/1")
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"in the local cache ({first}) after download" in warning and "downloading again" in warning
    assert "artifact store" not in warning
    assert again == first and (again / "MLmodel").read_bytes() == original
