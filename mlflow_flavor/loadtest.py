"""Load test: concurrent clients against real ``mlflow models serve`` processes, one backend after another.

For each backend the model is saved as an MLflow model in a temporary directory and served on a free
loopback port (``--env-manager local``). After a warm-up, ``clients`` threads send ``requests`` requests
each; the report gives p50/p95/p99 latency, requests/s, errors, and the server's resident memory
sampled every half second. Rounds alternate the backends (torch, onnx, torch, onnx, ...) so that the
machine's drift hits both alike.
"""

from __future__ import annotations

import json
import logging
import statistics
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter.errors import ConfigError
from mlflow_flavor.serving import group_rss_mb

__all__ = ["LoadTestConfig", "run_load_test"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadTestConfig:
    model_path: Path
    backends: tuple[str, ...] = ("torch", "onnx")
    clients: int = 8
    requests: int = 200
    texts_per_request: int = 4
    rounds: int = 1
    texts: tuple[str, ...] = ()
    command: str = ""

    def __post_init__(self) -> None:
        for name in ("clients", "requests", "texts_per_request", "rounds"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}.")


def _post(url: str, payload: dict, timeout: float = 120) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, None
    except (urllib.error.URLError, OSError):
        return 0, None


def _one_round(url: str, pgid: int, config: LoadTestConfig, payloads: list[list[str]]) -> dict[str, Any]:
    for texts in payloads[:10]:  # warm-up
        _post(f"{url}/invocations", {"inputs": texts})
    memory: list[tuple[float, float]] = []
    stop = threading.Event()
    started = time.perf_counter()

    def sample() -> None:
        while not stop.is_set():
            memory.append((time.perf_counter() - started, group_rss_mb(pgid)))
            stop.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()

    def client(index: int) -> None:
        nonlocal errors
        for r in range(config.requests):
            texts = payloads[(index * config.requests + r) % len(payloads)]
            t0 = time.perf_counter()
            status, _ = _post(f"{url}/invocations", {"inputs": texts})
            elapsed = time.perf_counter() - t0
            with lock:
                latencies.append(elapsed)
                errors += status != 200

    with ThreadPoolExecutor(config.clients) as pool:
        list(pool.map(client, range(config.clients)))
    wall = time.perf_counter() - started
    stop.set()
    sampler.join()
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return 1000 * ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    rss = [m for _, m in memory] or [0.0]
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / wall,
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "rss_start_mb": rss[0],
        "rss_max_mb": max(rss),
        "rss_end_mb": rss[-1],
        "memory": memory,
    }


def run_load_test(config: LoadTestConfig, output: Path | None = None) -> list[dict[str, Any]]:
    """Serve the model once per backend and hammer it; write the Markdown table into ``output``."""
    import random

    from exporter.bench import write_report
    from exporter.corpus import generate_sentences
    from mlflow_flavor.flavor import save_model
    from mlflow_flavor.serving import serve_model

    texts = list(config.texts) or generate_sentences(256, seed=23, long_every=0)
    rng = random.Random(0)
    payloads = [rng.sample(texts, min(config.texts_per_request, len(texts))) for _ in range(512)]
    results: dict[str, list[dict[str, Any]]] = {b: [] for b in config.backends}
    with tempfile.TemporaryDirectory(prefix="flair-mlflow-loadtest-") as work:
        for backend in config.backends:
            save_model(str(config.model_path), Path(work) / backend, backend=backend)
        for _ in range(config.rounds):
            for backend in config.backends:
                log.info("Load test: %s, %d clients x %d requests", backend, config.clients, config.requests)
                with serve_model(str(Path(work) / backend), Path(work) / f"{backend}.log") as url:
                    results[backend].append(_one_round(url, url.pid, config, payloads))
    rows = []
    for backend, rounds in results.items():
        rows.append(
            {
                "backend": backend,
                **{k: statistics.median(r[k] for r in rounds) for k in ("rps", "p50_ms", "p95_ms", "p99_ms")},
                "errors": sum(r["errors"] for r in rounds),
                "requests": sum(r["requests"] for r in rounds),
                "rss_start_mb": rounds[-1]["rss_start_mb"],
                "rss_max_mb": max(r["rss_max_mb"] for r in rounds),
                "rss_end_mb": rounds[-1]["rss_end_mb"],
            }
        )
    if output:
        write_report(output, _markdown(config, rows), section="loadtest")
    return rows


def _markdown(config: LoadTestConfig, rows: Sequence[dict[str, Any]]) -> str:
    from datetime import datetime, timezone

    lines = [
        "## Load test: `mlflow models serve` under concurrent clients",
        "",
        f"Command: `{config.command or 'flair-mlflow loadtest'}`",
        "",
        f"- Date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; model `{config.model_path.name}`; "
        f"{config.clients} clients x {config.requests} requests of {config.texts_per_request} texts; "
        f"{config.rounds} round(s) per backend, alternating; one uvicorn worker, `--env-manager local`",
        "",
        "| backend | requests/s | p50 ms | p95 ms | p99 ms | errors | server RSS start / max / end (MB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['backend']} | {r['rps']:.1f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['p99_ms']:.0f} | "
            f"{r['errors']}/{r['requests']} | {r['rss_start_mb']:.0f} / {r['rss_max_mb']:.0f} / {r['rss_end_mb']:.0f} |"
        )
    return "\n".join(lines) + "\n"
