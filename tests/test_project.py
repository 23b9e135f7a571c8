"""`mlflow run .`: the MLflow project exports, logs, registers, stages and aliases a model."""

from __future__ import annotations

import os
import subprocess
import sys

import mlflow
import pytest
from conftest import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory):
    """One demo-model cache for the session (the demo tagger trains once, in about a minute)."""
    path = os.environ.get("FLAIR_MLFLOW_TEST_CACHE") or str(tmp_path_factory.mktemp("demo-cache"))
    return path


def _mlflow_run(tracking, *args, env=None, timeout=1500, cwd=REPO):
    command = [sys.executable, "-m", "mlflow", "run", str(REPO), *args]
    full_env = {**os.environ, "MLFLOW_TRACKING_URI": tracking, **(env or {})}
    out = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd)
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-5000:])
    return out


def test_project_with_a_user_model_archives_the_previous_version(tiny_tagger_file, tracking, demo_cache):
    env = {"FLAIR_MLFLOW_CACHE": demo_cache}
    _mlflow_run(tracking, "-P", "backend=torch", "-P", f"model={tiny_tagger_file}", "--env-manager", "local", env=env)
    # from the folder holding the model, with a relative path: resolved where `mlflow run` started, not in the
    # project folder where MLflow runs the entry point
    relative = ("-P", "backend=onnx", "-P", f"model={tiny_tagger_file.name}", "--env-manager", "local")
    _mlflow_run(tracking, *relative, env=env, cwd=tiny_tagger_file.parent)
    client = mlflow.MlflowClient()
    assert client.get_model_version("ner", "1").current_stage == "Archived"
    latest = client.get_model_version("ner", "2")
    assert latest.current_stage == "Production"
    assert str(client.get_model_version_by_alias("ner", "production").version) == "2"
    conf = mlflow.models.Model.load("models:/ner/Production").flavors["flair_mlflow"]
    assert conf["backend"] == "onnx"
    assert client.get_run(latest.run_id).data.params["model"] == tiny_tagger_file.name  # as the user gave it

    # the `promote` entry point: verify version 1 and point an alias and a stage at it
    _mlflow_run(
        tracking,
        "-e",
        "promote",
        "-P",
        "version=1",
        "-P",
        "to_alias=rollback",
        "-P",
        "to_stage=Staging",
        "--env-manager",
        "local",
    )
    assert str(client.get_model_version_by_alias("ner", "rollback").version) == "1"
    assert client.get_model_version("ner", "1").current_stage == "Staging"
    assert client.get_model_version("ner", "2").current_stage == "Production"
    assert len(client.search_model_versions("name='ner'")) == 2


@pytest.mark.parametrize("env_manager", ["local", "virtualenv"])
def test_main_job_on_the_demo_model(tracking, demo_cache, env_manager):
    """The README's first command, `mlflow run . -P backend=onnx`, on the built-in demo tagger."""
    args = ["-P", "backend=onnx"] + (["--env-manager", "local"] if env_manager == "local" else [])
    _mlflow_run(tracking, *args, env={"FLAIR_MLFLOW_CACHE": demo_cache})
    for uri in ("models:/ner/Production", "models:/ner@production"):
        model = mlflow.pyfunc.load_model(uri)
        (entities,) = model.predict(["Angela Merkel met Tim Cook in Paris ."])
        found = {(e["text"], e["label"]) for e in entities}
        assert ("Tim Cook", "PER") in found and ("Paris", "LOC") in found, entities
        assert any(label == "PER" and "Merkel" in text for text, label in found), entities
    if env_manager == "virtualenv":
        # the project's own environment runs the default int8 recipe (python_env.yaml once lacked onnx-ir)
        _mlflow_run(
            tracking, "-P", "quantize=int8", "-P", "stage=", "-P", "alias=", env={"FLAIR_MLFLOW_CACHE": demo_cache}
        )
        client = mlflow.MlflowClient()
        version = client.get_model_version("ner", "2")
        assert version.current_stage == "None"
        flavor = mlflow.models.Model.load("models:/ner/2").flavors["flair_mlflow"]
        assert flavor["quantization"]["recipe"] == "int8-block32", flavor
        assert str(client.get_model_version_by_alias("ner", "production").version) == "1"


def test_project_logs_the_demo_classifier(tracking, demo_cache):
    """`mlflow run . -P model=demo-classifier`: the demo topic classifier, registered as `topics`."""
    env = {"FLAIR_MLFLOW_CACHE": demo_cache}
    _mlflow_run(
        tracking,
        *("-P", "model=demo-classifier", "-P", "registered_model_name=topics", "--env-manager", "local"),
        env=env,
    )
    model = mlflow.pyfunc.load_model("models:/topics@production")
    answers = model.predict(
        ["Bayern Munich beat Dortmund 3-0 in the derby .", "Shares of Apple fell after weak sales ."]
    )
    assert [a[0]["label"] for a in answers] == ["sports", "business"], answers
    signature = mlflow.models.Model.load("models:/topics/Production").signature
    assert signature.outputs.input_names() == ["labels"]
