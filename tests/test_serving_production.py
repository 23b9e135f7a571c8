"""A served model meets bad input, many clients at once, and machines without the GPU it was exported for."""

from __future__ import annotations

import json
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import mlflow
import pytest
from conftest import log_and_stage
from servers import model_server, post_json
from test_batching import same_answers

import mlflow_flavor
from exporter import RuntimeOptions
from mlflow_flavor.tools.serving import ServerError

pytestmark = pytest.mark.slow

TEXTS = [
    "Angela Merkel met Tim Cook in Paris .",
    "Siemens opened a new office in Munich , Germany .",
    "Shares of Google fell after John Smith warned about sales in Japan .",
    "It rained all day in London , said Mary Brown .",
]

BAD = {
    "None in a record": ({"dataframe_records": [{"text": None}]}, ("missing", "string")),
    "numbers": ({"inputs": [1, 2]}, ("string",)),
    "nested objects": ({"inputs": [{"text": {"deep": 1}}]}, ("string", "text")),
    "no text column": ({"dataframe_split": {"columns": ["body"], "data": [["x"]]}}, ("text",)),
    "wrong payload key": ({"wrong": ["x"]}, ("dataframe_split", "inputs", "instances")),
    "not json": (b"this is not json", ("json", "JSON")),
    "too many rows": ({"inputs": ["x"] * 1001}, ("limit",)),
    "bad param value": ({"inputs": ["x"], "params": {"mini_batch_size": 0}}, ("mini_batch_size",)),
}


@pytest.fixture()
def served(tiny_tagger, tracking, tmp_path):
    log_and_stage(tiny_tagger)
    with model_server("models:/ner/Production", tmp_path / "serve.log", env={"MLFLOW_TRACKING_URI": tracking}) as url:
        yield url


def test_bad_input_gets_4xx_and_the_server_keeps_answering(served):
    status, good = post_json(f"{served}/invocations", {"inputs": TEXTS})
    assert status == 200
    for name, (payload, hints) in BAD.items():
        status, body = post_json(f"{served}/invocations", payload)
        assert 400 <= status < 500, (name, status, body)
        message = body.get("message", "")
        assert any(h in message for h in hints), (name, message)
    status, body = post_json(f"{served}/invocations", {"inputs": ["", "   ", "\n"]})
    assert status == 200 and body["predictions"] == [[], [], []]
    status, body = post_json(f"{served}/invocations", {"inputs": TEXTS})
    assert status == 200 and body == good


def test_eight_concurrent_clients_get_the_sequential_answers(served):
    rng = random.Random(0)
    requests = [rng.sample(TEXTS, rng.randint(1, len(TEXTS))) for _ in range(8 * 200)]
    expected = {}
    for texts in {json.dumps(r) for r in requests}:
        status, body = post_json(f"{served}/invocations", {"inputs": json.loads(texts)})
        assert status == 200
        expected[texts] = body["predictions"]
    warm_rss = served.rss_mb()
    errors, mismatches, lock = [], [], threading.Lock()

    def client(chunk):
        for texts in chunk:
            status, body = post_json(f"{served}/invocations", {"inputs": texts})
            with lock:
                if status != 200:
                    errors.append((status, body))
                # adaptive batching merges concurrent requests: same entities, scores up to float order
                elif not same_answers(body["predictions"], expected[json.dumps(texts)]):
                    mismatches.append(texts)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(client, [requests[i::8] for i in range(8)]))
    assert errors == [] and mismatches == []
    assert served.rss_mb() <= warm_rss * 1.10, (warm_rss, served.rss_mb())


def test_cuda_exported_bundle_serves_on_cpu_with_a_warning_and_strict_refuses(tiny_tagger, tracking, tmp_path):
    with mlflow.start_run():
        info = mlflow_flavor.log_model(
            tiny_tagger, name="ner", providers=["CUDAExecutionProvider", "CPUExecutionProvider"], parity_sentences=TEXTS
        )
    log = tmp_path / "serve.log"
    with model_server(info.model_uri, log, env={"MLFLOW_TRACKING_URI": tracking}) as url:
        status, body = post_json(f"{url}/invocations", {"inputs": TEXTS})
        assert status == 200 and any(body["predictions"])
    assert "CUDAExecutionProvider" in log.read_text() and "falling back" in log.read_text()
    strict_log = tmp_path / "strict.log"
    env = {"MLFLOW_TRACKING_URI": tracking, "MLFLOW_PYFUNC_INFERENCE_CONFIG": json.dumps({"strict_providers": True})}
    with pytest.raises(ServerError):
        with model_server(info.model_uri, strict_log, env=env, timeout=120):
            pass
    assert "strict" in strict_log.read_text() and "CUDAExecutionProvider" in strict_log.read_text()
    assert RuntimeOptions(strict_providers=True).strict_providers
