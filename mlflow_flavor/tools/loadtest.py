"""Load test: how much of the in-process speed survives ``mlflow models serve`` under concurrent clients.

For each backend the model is saved once as an MLflow model. Then, in one run, side by side:

1. **in process**: the pyfunc loaded in this process, ``predict`` on the texts in batches of 32
   (the rate a user measures offline);
2. for each server (:data:`SERVERS`: ``mlflow models serve`` with one or two uvicorn workers, MLServer with
   its parallel workers or its own adaptive batching) and each setting of the pyfunc's adaptive batching
   (``off``: one request at a time; ``on``), a real server process (``--env-manager local``), and against it:
   - **1 x 1**: one client sending one text per request: latency p50 (the cost of batching at low load);
   - **1 x 32**: one client sending 32 texts per request: the served rate without concurrency;
   - **N x k**: ``clients`` concurrent clients sending ``texts_per_request`` texts per request: rate,
     latency percentiles, errors;
   the server's resident memory is sampled during the last two phases.

The efficiency is the concurrent served rate over the in-process rate. Clients run in this process on the
same cores as the server: the ceiling is below 1 (MLflow's server alone costs about 1 ms of CPU per
request here).
"""

from __future__ import annotations

import contextlib
import json
import logging
import statistics
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter.config import LEAN, Backend, OnnxOptions, ParityConfig, check_integer
from exporter.errors import ConfigError
from exporter.tools.report import benchmark_sentences, percentile, write_report
from mlflow_flavor.flavor import save_model
from mlflow_flavor.loading import INFERENCE_CONFIG_ENV
from mlflow_flavor.mlmodel import FLAVOR_NAME
from mlflow_flavor.tools.mlserver_config import MLServerConfig, write_mlserver_config
from mlflow_flavor.tools.model_env import model_environment, site_packages_mb
from mlflow_flavor.tools.serving import ServerError, free_port, group_rss_mb, serve_model, serve_on_mlserver

__all__ = ["BACKENDS", "LoadTestConfig", "load_test_report", "run_load_test"]

log = logging.getLogger(__name__)

#: The backends a load test can compare, and what each saves (``onnx`` and ``int8`` serve lean where the model can;
#: ``onnx-flair`` is the ONNX bundle served by Flair's code).
BACKENDS = ("torch", "onnx", "int8", "onnx-flair")
DEFAULT_BACKENDS = ("torch", "onnx", "int8")
BATCHING = ("off", "on")
#: The servers a load test can run: MLflow's (uvicorn workers) and MLServer (V2 protocol; parallel workers, its
#: own adaptive batching of V2 requests), with what each sets.
#: ``-2workers`` servers give each worker process one thread of torch and ONNX Runtime (two processes of two
#: threads each on two cores oversubscribe them: measured 0.28 of the in-process rate on MLServer).
SERVERS: dict[str, dict[str, Any]] = {
    "mlflow": {"workers": 1},
    "mlflow-2workers": {"workers": 2, "threads": 1},
    "mlserver": {"parallel_workers": 0},
    "mlserver-batching": {"parallel_workers": 0, "max_batch_size": 32, "max_batch_time": 0.01},
    "mlserver-2workers": {"parallel_workers": 2, "threads": 1},
}
#: timed passes over the texts in process (after one untimed pass: every batch shape seen once); the median
IN_PROCESS_PASSES = 3


@dataclass(frozen=True)
class LoadTestConfig:
    """What to serve and how hard to press it.

    Attributes:
        model_path: the Flair ``.pt`` to save once per backend.
        backends: from :data:`BACKENDS` (``int8``: ONNX with dynamic int8 weights).
        batching: adaptive batching settings to compare, from :data:`BATCHING`.
        servers: the servers to run each setting on, from :data:`SERVERS` (MLServer's need the ``mlserver``
            extra).
        clients / requests / texts_per_request: the concurrent phase (requests per client).
        conll: take the texts from this CoNLL file (sentences of at least ``min_words`` words), else
            generated sentences; ``num_sentences`` of them.
        long_words: above 0, also tag one text of that many words (and one of 1,000) in a fresh process
            per backend: peak memory above the warmed-up model, and time per word.
        cold_start: also time, per backend and for a do-nothing pyfunc in the same run, launching
            ``mlflow models serve`` until its first answer.
        cold_start_env: with ``cold_start``, also time the backends whose model serves lean (and the do-nothing
            pyfunc) served from a virtual environment at this path made only from the model's requirements
            (``mlflow_flavor.tools.model_env``; made once, reused while the requirements are the same).
    """

    model_path: Path
    backends: tuple[str, ...] = DEFAULT_BACKENDS
    batching: tuple[str, ...] = BATCHING
    servers: tuple[str, ...] = ("mlflow",)
    clients: int = 8
    requests: int = 64
    texts_per_request: int = 1
    conll: Path | None = None
    num_sentences: int = 256
    min_words: int = 5
    long_words: int = 0
    cold_start: bool = True
    cold_start_env: Path | None = None
    command: str = ""

    def __post_init__(self) -> None:
        check_integer("long_words", self.long_words, 0, note="0: off")
        for name in ("clients", "requests", "texts_per_request", "num_sentences", "min_words"):
            check_integer(name, getattr(self, name), 1)
        for name, allowed in (("backends", BACKENDS), ("batching", BATCHING), ("servers", tuple(SERVERS))):
            values = tuple(getattr(self, name))
            unknown = [v for v in values if v not in allowed]
            if unknown or not values:
                raise ConfigError(f"{name} must be among {', '.join(allowed)}, got {', '.join(values) or 'none'}.")
            object.__setattr__(self, name, values)


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


class _MemorySampler:
    """The largest resident memory of a process group while the block runs (sampled every 0.2 s)."""

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid
        self.max_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.max_mb = max(self.max_mb, group_rss_mb(self.pgid))
            self._stop.wait(0.2)

    def __enter__(self) -> _MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class _Protocol:
    """How a client asks a server for texts' answers: MLflow's ``/invocations`` or the V2 ``infer`` request."""

    v2_model: str = ""

    def request(self, texts: Sequence[str]) -> tuple[str, dict]:
        if not self.v2_model:
            return "/invocations", {"inputs": list(texts)}
        text_input = {"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": list(texts)}
        return f"/v2/models/{self.v2_model}/infer", {"parameters": {"content_type": "pd"}, "inputs": [text_input]}

    def answers(self, body: Any) -> list[Any]:
        if not self.v2_model:
            return body["predictions"]
        return [json.loads(cell) for cell in body["outputs"][0]["data"]]


MLFLOW_PROTOCOL = _Protocol()


def _entity_keys(answer: Any) -> list[tuple]:
    return [(e["text"], e["label"], e["start"], e["end"]) for e in answer]


def _drive(
    url: str,
    payloads: Sequence[list[str]],
    clients: int,
    alone: dict[str, list[tuple]] | None = None,
    protocol: _Protocol = MLFLOW_PROTOCOL,
) -> dict[str, Any]:
    """Send ``payloads`` from ``clients`` threads (round robin); rate in texts/s, latencies, errors, and
    how many answered texts got other entities than the text alone (``alone``: text -> entity keys)."""
    latencies: list[float] = []
    errors = 0
    changed = 0
    lock = threading.Lock()

    def client(index: int) -> None:
        nonlocal errors, changed
        for texts in payloads[index::clients]:
            t0 = time.perf_counter()
            path, payload = protocol.request(texts)
            status, body = _post(url + path, payload)
            elapsed = time.perf_counter() - t0
            differ = 0
            if status == 200 and alone is not None:
                differ = sum(_entity_keys(a) != alone[t] for t, a in zip(texts, protocol.answers(body)))
            with lock:
                latencies.append(elapsed)
                errors += status != 200
                changed += differ

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    wall = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "texts_per_s": sum(len(p) for p in payloads) / wall,
        "texts": sum(len(p) for p in payloads),
        "changed": changed,
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": 1000 * percentile(ordered, 0.50),
        "p95_ms": 1000 * percentile(ordered, 0.95),
        "p99_ms": 1000 * percentile(ordered, 0.99),
    }


def _payloads(texts: Sequence[str], count: int, size: int) -> list[list[str]]:
    return [[texts[(i * size + j) % len(texts)] for j in range(size)] for i in range(count)]


def _in_process(model_dir: Path, texts: Sequence[str], batch_size: int = 32) -> tuple[float, dict[str, list[tuple]]]:
    """Texts/s of the pyfunc loaded in this process, ``predict`` in batches of ``batch_size``; and each
    text's entities when it is sent alone."""
    import mlflow

    model = mlflow.pyfunc.load_model(str(model_dir))
    batches = [list(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
    for batch in batches:  # warm-up: the first call of each shape allocates (a served model has seen them all)
        model.predict(batch)
    passes = []
    for _ in range(IN_PROCESS_PASSES):
        started = time.perf_counter()
        for batch in batches:
            model.predict(batch)
        passes.append(time.perf_counter() - started)
    rate = len(texts) / statistics.median(passes)
    return rate, {t: _entity_keys(model.predict([t])[0]) for t in dict.fromkeys(texts)}


def _served_phases(
    url: str,
    pgid: int,
    config: LoadTestConfig,
    texts: Sequence[str],
    alone: dict[str, list[tuple]],
    protocol: _Protocol = MLFLOW_PROTOCOL,
) -> dict[str, Any]:
    """The three served phases against one running server."""
    for payload in _payloads(texts, 8, 4):  # warm-up
        path, body = protocol.request(payload)
        _post(url + path, body)
    single = _drive(url, _payloads(texts, min(len(texts), 64), 1), clients=1, protocol=protocol)
    with _MemorySampler(pgid) as memory_bulk:
        bulk = _drive(url, _payloads(texts, max(1, len(texts) // 32), 32), clients=1, protocol=protocol)
    concurrent_payloads = _payloads(texts, config.clients * config.requests, config.texts_per_request)
    with _MemorySampler(pgid) as memory_concurrent:
        concurrent = _drive(url, concurrent_payloads, clients=config.clients, alone=alone, protocol=protocol)
    return {
        "p50_1x1_ms": single["p50_ms"],
        "bulk_texts_per_s": bulk["texts_per_s"],
        "texts_per_s": concurrent["texts_per_s"],
        **{k: concurrent[k] for k in ("requests", "p50_ms", "p95_ms", "p99_ms")},
        "changed_share": concurrent["changed"] / max(concurrent["texts"], 1),
        "errors": concurrent["errors"] + single["errors"] + bulk["errors"],
        "rss_bulk_mb": memory_bulk.max_mb,
        "rss_concurrent_mb": memory_concurrent.max_mb,
    }


_LONG_TEXT_PROBE = """
import json, sys, time
import mlflow
from exporter.quality.corpus import generate_sentences

def rss(key):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key)) / 1024

def text_of(words):
    out = []
    seed = 0
    while len(out) < words:
        out.extend(" ".join(generate_sentences(64, seed=seed, long_every=0)).split())
        seed += 1
    return " ".join(out[:words])

model = mlflow.pyfunc.load_model(sys.argv[1])
model.predict(generate_sentences(64, seed=3, long_every=0))
warm = rss("VmRSS:")
timings = {}
for words in (1000, int(sys.argv[2])):
    text = text_of(words)
    started = time.perf_counter()
    model.predict([text])
    timings[words] = 1000 * (time.perf_counter() - started) / words
print(json.dumps({"warm_mb": warm, "peak_above_warm_mb": rss("VmHWM:") - warm,
                  "ms_per_word_1000": timings[1000], "ms_per_word_long": timings[int(sys.argv[2])]}))
"""


def long_text_probe(model_dir: Path, words: int) -> dict[str, float]:
    """In a fresh process: the pyfunc warmed up on short texts, then one text of 1,000 words and one of
    ``words`` words (no sentence splitting: one Flair sentence). Peak memory above the warmed-up model
    (VmHWM - VmRSS after warm-up) and time per word of each."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _LONG_TEXT_PROBE, str(model_dir), str(words)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if out.returncode != 0:
        raise ServerError(f"The long-text probe failed for {model_dir.name}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _save(config: LoadTestConfig, backend: str, path: Path) -> None:
    # the load test measures speed: an int8 export that misses the parity gate is still measured
    options = {"backend": Backend.ONNX, "onnx": OnnxOptions(quantize="int8"), "parity": ParityConfig(force=True)}
    if backend == "onnx-flair":  # the same ONNX bundle served by Flair's code (``serving_path: flair``)
        options = {"backend": Backend.ONNX, "model_config": {"serving_path": "flair"}}
    elif backend != "int8":
        options = {"backend": backend}
    save_model(str(config.model_path), path, **options)


def load_texts(config: LoadTestConfig) -> tuple[list[str], str]:
    """The texts the clients send, and where they come from (as the benchmark picks its sentences)."""
    return benchmark_sentences(config.conll, config.num_sentences, config.min_words)


def run_load_test(
    config: LoadTestConfig, output: Path | None = None, progress: Callable[[str], None] | None = None
) -> list[dict[str, Any]]:
    """Measure every backend x batching setting; write the Markdown report (:func:`load_test_report`) into
    ``output`` when given (its ``loadtest`` section replaced); return the rows: served, long text, cold start."""
    say = progress or log.info
    texts, source = load_texts(config)
    rows: list[dict[str, Any]] = []
    long_rows: list[dict[str, Any]] = []
    cold_rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="flair-mlflow-loadtest-") as work:
        if config.cold_start:
            say("[do-nothing pyfunc] launching mlflow models serve until its first answer")
            nothing = _save_do_nothing(Path(work) / "do-nothing")
            cold_rows.append({"cold_start": "do-nothing pyfunc", **first_answer(nothing, Path(work) / "nothing.log")})
        for backend in config.backends:
            model_dir = Path(work) / backend
            say(f"[{backend}] saving the model")
            _save(config, backend, model_dir)
            if config.cold_start:
                say(f"[{backend}] launching mlflow models serve until its first answer")
                cold_rows.append({"cold_start": backend, **first_answer(model_dir, Path(work) / f"{backend}-cold.log")})
                if config.cold_start_env and _serves_lean(model_dir):
                    cold_rows += _cold_in_model_env(config.cold_start_env, backend, model_dir, nothing, Path(work), say)
            say(f"[{backend}] in-process predict, batches of 32")
            in_process, alone = _in_process(model_dir, texts)
            if config.long_words:
                say(f"[{backend}] one text of {config.long_words} words, in a fresh process")
                long_rows.append(
                    {"backend": backend, "words": config.long_words, **long_text_probe(model_dir, config.long_words)}
                )
            for server in config.servers:
                for mode in config.batching:
                    say(
                        f"[{backend}] {server}, adaptive batching {mode}: 1x1, 1x32, "
                        f"{config.clients}x{config.texts_per_request}"
                    )
                    env = {INFERENCE_CONFIG_ENV: json.dumps({"adaptive_batching": mode == "on"})}
                    with _serving(server, model_dir, Path(work) / f"{backend}-{server}-{mode}", env) as (url, protocol):
                        served = _served_phases(url, url.pid, config, texts, alone, protocol)
                    rows.append(
                        {
                            "backend": backend,
                            "server": server,
                            "batching": mode,
                            "in_process_texts_per_s": in_process,
                            **served,
                            "efficiency": served["texts_per_s"] / in_process,
                        }
                    )
    if output:
        write_report(output, load_test_report(config, rows + long_rows + cold_rows, source), section="loadtest")
    return rows + long_rows + cold_rows


def load_test_report(config: LoadTestConfig, rows: Sequence[dict[str, Any]], source: str | None = None) -> str:
    """The Markdown report of :func:`run_load_test`'s rows (``source``: where the texts came from; default: said
    from ``config`` as :func:`load_texts` says it)."""
    served = [r for r in rows if "words" not in r and "cold_start" not in r]
    long_rows = [r for r in rows if "words" in r]
    cold_rows = [r for r in rows if "cold_start" in r]
    source = source if source is not None else load_texts(config)[1]
    return _markdown(config, served, source) + _long_markdown(long_rows) + _cold_markdown(cold_rows)


_DO_NOTHING = """
import mlflow


class DoNothing(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return [[] for _ in range(len(model_input))]


mlflow.models.set_model(DoNothing())
"""


def _save_do_nothing(path: Path) -> Path:
    """A pyfunc that answers ``[]`` per text and imports nothing but MLflow (models from code)."""
    import mlflow

    source = path.with_suffix(".py")
    source.write_text(_DO_NOTHING)
    mlflow.pyfunc.save_model(str(path), python_model=str(source))
    return path


def _serves_lean(model_dir: Path) -> bool:
    """Whether a saved model serves lean (its flavor section says so; its requirements then leave Flair out)."""
    from mlflow.models import Model

    return Model.load(str(model_dir)).flavors[FLAVOR_NAME].get("serving_path") == LEAN


def _cold_in_model_env(
    env_dir: Path, backend: str, model_dir: Path, nothing: Path, work: Path, say: Callable[[str], None]
) -> list[dict[str, Any]]:
    """The cold starts of the do-nothing pyfunc and of ``model_dir``, both served from the model's environment."""
    say(f"[{backend}] the model's own environment (requirements.txt only) at {env_dir}")
    python = model_environment(model_dir, env_dir)
    size = site_packages_mb(python)
    label = f"model's environment ({size:,.0f} MB site-packages)"
    rows = []
    for name, target in ((f"do-nothing pyfunc, {label}", nothing), (f"{backend}, {label}", model_dir)):
        say(f"[{name}] launching mlflow models serve until its first answer")
        rows.append({"cold_start": name, **first_answer(target, work / f"{backend}-env-{len(rows)}.log", python)})
    return rows


def first_answer(model_dir: Path, log: Path, python: Path | None = None) -> dict[str, float]:
    """Seconds from launching ``mlflow models serve`` (one worker, ``--env-manager local``, run by ``python`` or
    this interpreter) to the first answer of one text, and of them until the server said it was up (``/ping``)."""
    started = time.perf_counter()
    with serve_model(str(model_dir), log, python=python) as url:
        up = time.perf_counter() - started
        while True:
            status, _ = _post(f"{url}/invocations", {"inputs": ["Angela Merkel met Tim Cook in Paris ."]})
            if status == 200:
                break
            if time.perf_counter() - started > 300:
                raise ServerError(f"{model_dir.name}: no answer within 300 s of launching the server.")
            time.sleep(0.05)
        return {"server_up_s": up, "first_answer_s": time.perf_counter() - started}


def _cold_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """Each cold start against the do-nothing pyfunc served from the same environment (this one, or the model's)."""
    bases: dict[str, float] = {}
    cells = []
    for r in rows:
        name = r["cold_start"]
        environment = name.split(", ", 1)[1] if ", " in name else "this one"
        if name.startswith("do-nothing pyfunc"):
            bases[environment] = r["first_answer_s"]
        base = bases.get(environment, r["first_answer_s"])
        cells.append(
            [name, f"{r['server_up_s']:.1f}", f"{r['first_answer_s']:.1f}", f"{r['first_answer_s'] / base:.2f}x"]
        )
    return _table(
        "Cold start: launching `mlflow models serve` (one worker, `--env-manager local`) until the first answer to "
        "one text, each model once in this run, beside a do-nothing pyfunc (a model from code that answers `[]`) "
        "served from the same environment (this one, or the model's own, made from its requirements only):",
        ["model", "server up (s)", "first answer (s)", "vs do-nothing"],
        cells,
    )


def _table(intro: str, header: list[str], cells: list[list[str]]) -> str:
    """A paragraph and a Markdown table (first column left-aligned, the others right), or nothing without rows."""
    if not cells:
        return ""
    lines = ["", intro, "", "| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _serving(server: str, model_dir: Path, work: Path, env: dict[str, str]) -> Iterator[tuple[Any, _Protocol]]:
    """Run ``server`` (a key of :data:`SERVERS`) on ``model_dir``; yield its URL and how to ask it."""
    settings = dict(SERVERS[server])
    threads = settings.pop("threads", 0)
    if threads:
        config = {**json.loads(env.get(INFERENCE_CONFIG_ENV, "{}")), "intra_op_num_threads": threads}
        env = {**env, INFERENCE_CONFIG_ENV: json.dumps({**config, "torch_num_threads": threads})}
    if server.startswith("mlflow"):
        with serve_model(str(model_dir), work.with_suffix(".log"), env=env, workers=settings["workers"]) as url:
            yield url, MLFLOW_PROTOCOL
        return
    port = free_port()
    config = MLServerConfig(
        str(model_dir), name="model", http_port=port, grpc_port=free_port(), metrics_port=free_port(), **settings
    )
    write_mlserver_config(config, work)
    with serve_on_mlserver(work, port, work.with_suffix(".log"), env=env) as url:
        yield url, _Protocol(v2_model="model")


def _long_markdown(rows: Sequence[dict[str, Any]]) -> str:
    return _table(
        f"One long text (no sentence splitting: one Flair sentence of {rows[0]['words']:,} words), in a fresh process "
        "per backend after warm-up on short texts:"
        if rows
        else "",
        [
            "backend",
            "peak memory above the warmed-up model (MB)",
            "ms/word, 1,000 words",
            "ms/word, long text",
            "ratio",
        ],
        [
            [
                r["backend"],
                f"{r['peak_above_warm_mb']:.0f}",
                f"{r['ms_per_word_1000']:.3f}",
                f"{r['ms_per_word_long']:.3f}",
                f"{r['ms_per_word_long'] / r['ms_per_word_1000']:.2f}",
            ]
            for r in rows
        ],
    )


def _markdown(config: LoadTestConfig, rows: Sequence[dict[str, Any]], source: str) -> str:
    from datetime import datetime, timezone

    n, k = config.clients, config.texts_per_request
    lines = [
        "## Serving under concurrent clients: `mlflow models serve` and MLServer, adaptive batching off and on",
        "",
        f"Command: `{config.command or 'flair-mlflow loadtest'}`",
        "",
        f"- Date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; model `{config.model_path.name}`; "
        f"{source}; `--env-manager local`; clients on the same cores as the server. Servers: `mlflow` = "
        "`mlflow models serve` with one uvicorn worker (`-2workers`: two); `mlserver` = MLServer in one process "
        "(V2 `infer` requests), `-batching` with MLServer's adaptive batching (32 requests, 10 ms), `-2workers` with "
        "two parallel workers; each of two workers runs one torch and one ONNX Runtime thread. Batching: the "
        f"pyfunc's adaptive batching. In process: the median of {IN_PROCESS_PASSES} passes after one untimed.",
        f"- In process: the pyfunc's `predict` in batches of 32. Served: 1 client x 1 text per request (latency), "
        f"1 client x 32 texts, {n} clients x {k} text(s) ({config.requests} requests each). "
        f"Efficiency: {n} x {k} served rate / in-process rate. Changed: share of texts of the {n} x {k} phase "
        "whose entities differ from the text sent alone. RSS: the server's largest resident memory.",
        "",
        f"| backend | server | batching | in process, texts/s | served 1 x 32 | served {n} x {k} | efficiency | "
        f"1 x 1 p50 ms | {n} x {k} p50 / p95 / p99 ms | changed | errors | RSS 1 x 32 / {n} x {k} (MB) |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['backend']} | {r.get('server', 'mlflow')} | {r['batching']} | {r['in_process_texts_per_s']:.0f} | {r['bulk_texts_per_s']:.0f} | "
            f"{r['texts_per_s']:.0f} | {r['efficiency']:.2f} | {r['p50_1x1_ms']:.1f} | "
            f"{r['p50_ms']:.0f} / {r['p95_ms']:.0f} / {r['p99_ms']:.0f} | {100 * r['changed_share']:.1f} % | "
            f"{r['errors']} | "
            f"{r['rss_bulk_mb']:.0f} / {r['rss_concurrent_mb']:.0f} |"
        )
    return "\n".join(lines) + "\n"
