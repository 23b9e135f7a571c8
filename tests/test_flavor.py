"""The MLflow flavor: log, register, stage, alias, load by models:/ URI, predict from raw text."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from conftest import entities_of, log_and_stage
from mlflow.exceptions import MlflowException

import mlflow_flavor

TEXTS = [
    "Angela Merkel met Tim Cook in Paris .",
    "Siemens opened a new office in Munich , Germany , on Tuesday .",
    "  Shares of   Google fell after   John Smith warned about sales in Japan .  ",
]


def _as_tuples(predictions):
    return [[(e["start"], e["end"], e["label"]) for e in entities] for entities in predictions]


@pytest.fixture()
def registered(tiny_bundle):
    """The tiny tagger's bundle (exported once a session) logged, registered and staged in this test's store."""
    return log_and_stage(str(tiny_bundle))


@pytest.mark.parametrize("backend", ["onnx", pytest.param("torch", marks=pytest.mark.slow)])
def test_log_register_stage_load_predict_round_trip(tiny_tagger, backend):
    info = log_and_stage(tiny_tagger, backend=backend)
    expected = entities_of(tiny_tagger, TEXTS)
    assert any(expected), "the tiny tagger should predict some entities"
    for uri in ("models:/ner/Production", "models:/ner@production", info.model_uri):
        pyfunc = mlflow.pyfunc.load_model(uri)
        predictions = pyfunc.predict(pd.DataFrame({"text": TEXTS}))
        assert _as_tuples(predictions) == [sorted(e, key=lambda x: x[0]) for e in expected]
        for text, entities in zip(TEXTS, predictions):
            for e in entities:
                assert e["text"] == text[e["start"] : e["end"]]
                assert 0.0 <= e["score"] <= 1.0
    native = mlflow_flavor.load_model("models:/ner/Production")
    assert entities_of(native, TEXTS) == expected
    conf = mlflow.models.Model.load(info.model_uri).flavors["flair_mlflow"]
    assert conf["backend"] == backend and len(conf["manifest_sha256"]) == 64


def test_second_version_archives_the_first(tiny_tagger, registered):
    log_and_stage(tiny_tagger)
    client = mlflow.MlflowClient()
    assert client.get_model_version("ner", "1").current_stage == "Archived"
    assert client.get_model_version("ner", "2").current_stage == "Production"
    assert str(client.get_model_version_by_alias("ner", "production").version) == "2"


def test_input_shapes(registered):
    pyfunc = mlflow.pyfunc.load_model("models:/ner/Production")
    by_frame = pyfunc.predict(pd.DataFrame({"text": TEXTS}))
    assert pyfunc.predict(TEXTS) == by_frame
    assert pyfunc.predict(TEXTS[0]) == by_frame[:1]
    assert pyfunc.predict(pd.DataFrame({"text": ["", "   ", TEXTS[0]]})) == [[], [], by_frame[0]]
    with_tokens = pyfunc.predict([TEXTS[0]], params={"return_tokens": True})
    tokens = with_tokens[0]["tokens"]
    assert [t["text"] for t in tokens] == TEXTS[0].split()
    assert pyfunc.predict([TEXTS[0]], params={"min_score": 1.0}) == [[e for e in by_frame[0] if e["score"] >= 1.0]]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (pd.DataFrame({"x": ["a"], "y": ["b"]}), "no 'text' column"),
        (pd.DataFrame({"text": ["fine", None]}), "missing"),
        ([1, 2], "string"),
    ],
)
def test_bad_input_gets_a_clear_error(registered, bad, message):
    pyfunc = mlflow.pyfunc.load_model("models:/ner/Production")
    with pytest.raises(MlflowException, match=message):
        pyfunc.predict(bad)


def test_unknown_params_and_model_config_are_named(registered):
    pyfunc = mlflow.pyfunc.load_model("models:/ner/Production")
    with pytest.raises(MlflowException, match="mini_batch_size"):
        pyfunc.predict(TEXTS, params={"mini_batch_size": 0})
    with pytest.raises(MlflowException, match="Unknown model_config key.*threads.*allowed"):
        mlflow_flavor.load_model("models:/ner/Production", model_config={"threads": 4})
    with pytest.raises(MlflowException, match="intra_op_num_threads must be a non-negative integer"):
        mlflow.pyfunc.load_model("models:/ner/Production", model_config={"intra_op_num_threads": -1})
    with pytest.raises(MlflowException, match="max_texts must be a positive integer"):
        mlflow.pyfunc.load_model("models:/ner/Production", model_config={"max_texts": 0})
    limited = mlflow.pyfunc.load_model("models:/ner/Production", model_config={"max_texts": 2, "torch_num_threads": 1})
    with pytest.raises(MlflowException, match="limit is 2"):
        limited.predict(TEXTS)


def test_model_carries_code_signature_example_and_requirements(registered):
    local = Path(mlflow.artifacts.download_artifacts(registered.model_uri))
    assert (local / "code" / "exporter" / "bundle" / "load.py").is_file()
    assert (local / "code" / "mlflow_flavor" / "loading.py").is_file()
    # the runtime only: not the writing side, the registry, the CLI or the check set
    assert not (local / "code" / "mlflow_flavor" / "flavor.py").exists()
    assert not (local / "code" / "mlflow_flavor" / "cli").exists()
    assert not (local / "code" / "exporter" / "quality").exists()
    requirements = (local / "requirements.txt").read_text()
    # a transformer tagger exported to ONNX serves lean (issue 25): ONNX Runtime and tokenizers, no Flair or torch
    for package in ("onnxruntime==", "tokenizers==", "numpy==", "pandas==", "safetensors==", "segtok=="):
        assert package in requirements
    assert "flair" not in requirements and "torch" not in requirements and "transformers" not in requirements
    model = mlflow.models.Model.load(str(local))
    assert model.signature is not None and model.signature.params is not None
    assert model.saved_input_example_info is not None


@pytest.mark.slow
def test_loads_where_the_project_is_not_installed(registered, tracking, tmp_path):
    """A fresh interpreter that refuses to import our packages from anywhere but the model's code/ dir."""
    script = textwrap.dedent(
        f"""
        import sys, importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("exporter", "mlflow_flavor"):
                    for entry in sys.path:
                        if entry.endswith("/code"):
                            return None
                    raise ImportError("project blocked: " + name)
        sys.meta_path.insert(0, Block())
        sys.path = [p for p in sys.path if "work/main" not in p and p not in ("", ".")]
        import mlflow
        mlflow.set_tracking_uri({tracking!r})
        model = mlflow.pyfunc.load_model("models:/ner/Production")
        import mlflow_flavor
        assert "/code/mlflow_flavor" in mlflow_flavor.__file__, mlflow_flavor.__file__
        print(model.predict(["Angela Merkel met Tim Cook in Paris ."]))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "'start': 0" in out.stdout or "[[]]" in out.stdout


def test_mlflow_2s_artifact_path_gets_the_name_to_use(tiny_tagger):
    with pytest.raises(TypeError, match=r"not artifact_path= \(MLflow 2\): use name='ner'"):
        mlflow_flavor.log_model(tiny_tagger, artifact_path="ner")
    assert mlflow.active_run() is None and mlflow.search_runs().empty


class _Messages(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_requirements_pin_versions_pip_finds_anywhere_without_mlflows_warning(monkeypatch):
    """A local version label (torch's "+cpu") installs only from its maker's index: pinned without it, quietly."""
    import importlib.metadata

    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: real(name).split("+")[0] + "+cpu")
    messages = _Messages()
    logging.getLogger("mlflow").addHandler(messages)  # MLflow's loggers do not propagate to pytest's
    try:
        requirements = mlflow_flavor.get_default_pip_requirements()
    finally:
        logging.getLogger("mlflow").removeHandler(messages)
    assert f"torch=={real('torch').split('+')[0]}" in requirements
    assert not any("+" in r for r in requirements), requirements
    assert not any("local version label" in m for m in messages.messages), messages.messages
