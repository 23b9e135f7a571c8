"""A real `mlflow models serve` process answers /invocations with entities."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import mlflow
import pytest
from conftest import log_and_stage
from servers import model_server, post_json

pytestmark = pytest.mark.slow

TEXTS = ["Angela Merkel met Tim Cook in Paris .", "Siemens opened a new office in Munich , Germany ."]


def test_models_serve_answers_every_payload_format(tiny_tagger, tracking, tmp_path):
    log_and_stage(tiny_tagger)
    expected = mlflow.pyfunc.load_model("models:/ner/Production").predict(TEXTS)
    assert any(expected)

    with model_server("models:/ner/Production", tmp_path / "serve.log", env={"MLFLOW_TRACKING_URI": tracking}) as url:
        payloads = {
            "dataframe_split": {"dataframe_split": {"columns": ["text"], "data": [[t] for t in TEXTS]}},
            "dataframe_records": {"dataframe_records": [{"text": t} for t in TEXTS]},
            "inputs": {"inputs": TEXTS},
            "instances": {"instances": TEXTS},
        }
        for name, payload in payloads.items():
            status, body = post_json(f"{url}/invocations", payload)
            assert status == 200, (name, body)
            assert body["predictions"] == expected, name
        status, body = post_json(f"{url}/invocations", {"inputs": TEXTS, "params": {"min_score": 0.99}})
        assert status == 200
        assert all(e["score"] >= 0.99 for entities in body["predictions"] for e in entities)
        status, body = post_json(f"{url}/invocations", {"inputs": TEXTS[0]})
        assert status == 200 and body["predictions"] == expected[:1], body
        for bad in ({"dataframe_records": [{"text": None}]}, {"inputs": [1, 2]}, {"inputs": ["a", None]}):
            status, body = post_json(f"{url}/invocations", bad)
            assert 400 <= status < 500, (bad, body)
            assert "string" in body.get("message", ""), (bad, body)
        # still answers correctly afterwards
        status, body = post_json(f"{url}/invocations", payloads["inputs"])
        assert status == 200 and body["predictions"] == expected
        # CSV, which the server lists as supported: one text per row under a `text` header (quoted as CSV quotes)
        csv_body = "text\n" + "".join(f'"{t}"\n' for t in TEXTS)
        status, body = _post_csv(f"{url}/invocations", csv_body)
        assert status == 200, body
        assert body["predictions"] == expected
        status, body = _post_csv(f"{url}/invocations", "words\nAngela Merkel\n")
        assert status == 400 and "no 'text' column" in body["message"], body


def _post_csv(url: str, text: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=text.encode(), headers={"Content-Type": "text/csv"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")
