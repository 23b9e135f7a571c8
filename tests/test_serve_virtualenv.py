"""`mlflow models serve --env-manager virtualenv`: the serving environment is built from the model's own
requirements, where flair-mlflow is not installed, and answers like the in-process pyfunc. A transformer tagger
exported to ONNX serves lean (issue 25): its requirements hold neither Flair nor torch, so this environment is
built without them."""

from __future__ import annotations

import mlflow
import pytest
from servers import model_server, post_json

import mlflow_flavor

pytestmark = pytest.mark.slow

TEXTS = ["Angela Merkel met Tim Cook in Paris .", "Siemens opened a new office in Munich , Germany ."]


def test_virtualenv_served_model_matches_pyfunc(tiny_tagger, tracking, tmp_path):
    with mlflow.start_run():
        info = mlflow_flavor.log_model(tiny_tagger, name="ner", parity_sentences=TEXTS)
    expected = mlflow.pyfunc.load_model(info.model_uri).predict(TEXTS)
    log = tmp_path / "serve.log"
    with model_server(
        info.model_uri, log, env={"MLFLOW_TRACKING_URI": tracking}, timeout=1200, env_manager="virtualenv"
    ) as url:
        status, body = post_json(f"{url}/invocations", {"inputs": TEXTS})
    assert status == 200, body
    assert body["predictions"] == expected
    local = mlflow.artifacts.download_artifacts(info.model_uri)
    requirements = open(f"{local}/requirements.txt").read()
    assert "flair-mlflow" not in requirements  # our code travels in code/
    assert "flair==" not in requirements and "torch==" not in requirements and "tokenizers==" in requirements
