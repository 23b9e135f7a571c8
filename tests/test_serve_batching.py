"""Adaptive batching behind a real `mlflow models serve`: mixed concurrent requests, each answered alone."""

from __future__ import annotations

import json
import random
import re
from concurrent.futures import ThreadPoolExecutor

import mlflow
import pytest
from servers import model_server, post_json
from test_batching import DOCUMENTS, _same

import mlflow_flavor
from exporter.quality.corpus import generate_sentences

pytestmark = pytest.mark.slow

VALID_PARAMS = [
    {},
    {"min_score": 0.3},
    {"return_tokens": True},
    {"mini_batch_size": 8},
    {"output": "records"},
    {"split_sentences": True},
]
INVALID = [
    ({"inputs": ["fine", None]}, "missing"),
    # MLflow's server keeps a number's type in DataFrame formats (in a mixed "inputs" list it makes it a string)
    ({"dataframe_split": {"columns": ["text"], "data": [["fine"], [3]]}}, "string"),
    ({"inputs": ["fine"], "params": {"mini_batch_size": 0}}, "mini_batch_size"),
    ({"inputs": ["fine"], "params": {"output": "labels"}}, "entities, records"),
]


def _requests(seed: int = 0, count: int = 64) -> list[tuple[dict, str | None]]:
    rng = random.Random(seed)
    texts = generate_sentences(200, seed=8, long_every=9, long_words=60) + DOCUMENTS
    requests = []
    for i in range(count):
        if i % 8 == 5:
            requests.append(INVALID[(i // 8) % len(INVALID)])
            continue
        payload = {"inputs": rng.sample(texts, rng.randint(1, 40))}
        params = rng.choice(VALID_PARAMS)
        if params:
            payload["params"] = params
        requests.append((payload, None))
    return requests


def test_sixteen_clients_with_mixed_requests_get_their_own_answers_and_batches_merge(tiny_tagger, tmp_path):
    path = tmp_path / "model"
    mlflow_flavor.save_model(tiny_tagger, path)
    alone = mlflow.pyfunc.load_model(str(path), model_config={"adaptive_batching": False})
    requests = _requests()
    expected = [alone.predict(p["inputs"], params=p.get("params")) if error is None else None for p, error in requests]
    assert sum(e is None for e in expected) == 8 and any(any(e) for e in expected if e)
    config = {"log_batches": True, "max_wait_ms": 20}
    env = {"MLFLOW_PYFUNC_INFERENCE_CONFIG": json.dumps(config)}
    log = tmp_path / "serve.log"
    with model_server(str(path), log, env=env) as url:
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda r: post_json(f"{url}/invocations", r[0], timeout=120), requests))
    for (payload, error), want, (status, body) in zip(requests, expected, answers):
        if error is not None:
            assert 400 <= status < 500, (payload, status, body)
            assert error in body.get("message", ""), body
            continue
        assert status == 200, (payload, body)
        _same(body["predictions"], want)
    merged = [int(m) for m in re.findall(r"Merged run: (\d+) requests", log.read_text())]
    assert merged and max(merged) > 1, "no merged run seen in the server log"
