"""The demo models' cache: a cached model is reused, a missing or rebuilt one is trained once."""

from __future__ import annotations

import pytest

from exporter.tools import demo


@pytest.mark.parametrize(
    ("path_of", "trainer", "file_name"),
    [
        (demo.demo_model_path, "train_demo_tagger", f"demo-ner-v{demo.DEMO_VERSION}.pt"),
        (demo.demo_classifier_path, "train_demo_classifier", f"demo-topics-v{demo.DEMO_VERSION}.pt"),
    ],
)
def test_demo_paths_train_only_what_is_not_cached(path_of, trainer, file_name, tmp_path, monkeypatch):
    monkeypatch.setenv("FLAIR_MLFLOW_CACHE", str(tmp_path))
    trained = []

    def train(target):
        trained.append(target)
        target.write_bytes(b"model")
        return target

    monkeypatch.setattr(demo, trainer, train)
    assert path_of() == tmp_path / file_name and trained == [tmp_path / file_name]
    assert path_of() == tmp_path / file_name and len(trained) == 1  # cached: not trained again
    assert path_of(rebuild=True) == tmp_path / file_name and len(trained) == 2
