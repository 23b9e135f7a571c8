"""Real server processes for tests (the helpers live in mlflow_flavor.tools.serving) and a JSON client."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from mlflow_flavor.tools.serving import free_port, serve_model

model_server = serve_model

__all__ = ["free_port", "model_server", "post_json"]


def post_json(url: str, payload: dict | bytes, timeout: float = 60) -> tuple[int, dict]:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        body = e.read() or b"{}"
        try:
            return e.code, json.loads(body)
        except ValueError:
            return e.code, {"message": body.decode(errors="replace")}
