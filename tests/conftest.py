from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# two xdist workers share 2 cores: OpenMP threads that spin after each parallel region (GNU OpenMP's default)
# take the core the other worker needs. Measured on tests/test_charlm.py + tests/test_families.py: 85 s
# spinning (one TorchScript test 42 s, 1.9 s alone), 25 s passive. Set before torch loads; workers inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).parent))

from tinymodels import build_tiny_bert, build_tiny_tagger  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
#: test files that must run on the same pytest-xdist worker: both build MLflow virtualenv environments
SHARED_WORKER = {"test_project.py": "virtualenv", "test_serve_virtualenv.py": "virtualenv"}
#: the files that take longest, in that order: started first (list.sort is stable: the rest keep their order)
LONGEST_FIRST = [
    "test_project.py",
    "test_serve_virtualenv.py",
    "test_s3_promotion.py",
    "test_evaluate.py",
    "test_bench.py",
    "test_loadtest.py",
]


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the marks
def pytest_collection_modifyitems(config, items):
    """Under ``pytest -n 2 --dist loadgroup`` each file runs on one worker (its module fixtures, servers
    included, start once), and the files of :data:`SHARED_WORKER` share one."""
    for item in items:
        item.add_marker(pytest.mark.xdist_group(SHARED_WORKER.get(item.path.name, item.path.name)))
    # longest first, so that the two workers finish together (minutes measured under -n 2)
    items.sort(key=lambda item: LONGEST_FIRST.index(item.path.name) if item.path.name in LONGEST_FIRST else 99)


@pytest.fixture(scope="session")
def _tracking_template(tmp_path_factory) -> Path:
    """An empty SQLite tracking store with MLflow's schema: creating one runs MLflow's migrations (about 2 s),
    copying it takes milliseconds, so every test gets a copy."""
    import mlflow

    path = tmp_path_factory.mktemp("tracking-template") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}", registry_uri=f"sqlite:///{path}").search_registered_models()
    return path


@pytest.fixture(autouse=True)
def tracking(tmp_path, monkeypatch, _tracking_template):
    """Every test gets its own SQLite tracking store and artifact root."""
    import shutil

    import mlflow

    shutil.copyfile(_tracking_template, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    # a test that pointed the registry elsewhere must not leak into the next (MLflow also exports it to the
    # environment, where subprocesses would pick it up: monkeypatch restores the variable afterwards)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    mlflow.set_registry_uri(uri)
    # artifacts under tmp_path too (the default ./mlruns depends on the working directory)
    experiment_id = mlflow.create_experiment("tests", artifact_location=(tmp_path / "artifacts").as_uri())
    mlflow.set_experiment(experiment_id=experiment_id)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment_id)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_tagger(tiny_bert):
    return build_tiny_tagger(tiny_bert)


@pytest.fixture(scope="session")
def tiny_tagger_file(tiny_tagger, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny-tagger") / "tagger.pt"
    tiny_tagger.save(path)
    return path


@pytest.fixture(scope="session")
def tiny_bundle(tiny_tagger, tmp_path_factory) -> Path:
    from exporter import save_bundle

    return save_bundle(tiny_tagger, tmp_path_factory.mktemp("bundles") / "tiny").path


def log_and_stage(model, name: str = "ner", **log_kwargs):
    """Log ``model`` with the flavor, register it as ``name`` and move it to Production / @production."""
    import mlflow

    import mlflow_flavor
    from mlflow_flavor.registry.versions import stage_and_alias

    with mlflow.start_run():
        info = mlflow_flavor.log_model(model, name=name, registered_model_name=name, **log_kwargs)
    stage_and_alias(name, info.registered_model_version, "Production", "production")
    return info


def write_conll(path: Path, sentences) -> Path:
    """Labeled sentences (lists of ``(token, tag)``) as a two-column CoNLL file, a blank line after each."""
    path.write_text("".join("".join(f"{w} {t}\n" for w, t in s) + "\n" for s in sentences), encoding="utf-8")
    return path


def entities_of(model, texts: list[str]) -> list[list[tuple[int, int, str]]]:
    """Entities of a Flair model on fresh sentences, as (start, end, label)."""
    from flair.data import Sentence

    from exporter.quality.parity import entity_spans

    sentences = [Sentence(t) for t in texts]
    model.predict(sentences, mini_batch_size=16)
    return [entity_spans(s, model.label_type) for s in sentences]
