"""Run ``mlflow models serve`` (or ``mlserver start``) as a child process: free loopback port, readiness, memory,
clean stop."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

from exporter.errors import FlairMlflowError, MissingDependencyError

__all__ = ["ServerError", "ServedModel", "free_port", "group_rss_mb", "serve_model", "serve_on_mlserver"]


class ServerError(FlairMlflowError, RuntimeError):
    """A model server (``mlflow models serve``) did not start or stopped answering."""

    mlflow_code = "TEMPORARILY_UNAVAILABLE"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_rss_mb(pgid: int) -> float:
    """Resident memory of every process in process group ``pgid``, in MB."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ProcessLookupError):
            continue
    return total / 1024


class ServedModel(str):
    """The base URL of a running server (a ``str``), with its process group id."""

    pid: int

    def rss_mb(self) -> float:
        return group_rss_mb(self.pid)


def _wait_ready(url: str, process: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"The model server exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        time.sleep(0.1)
    raise ServerError(f"{url} did not answer within {timeout:.0f} s:\n{log.read_text()[-4000:]}")


@contextlib.contextmanager
def serve_model(
    model_uri: str,
    log: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 180,
    env_manager: str = "local",
    workers: int = 1,
    python: str | Path | None = None,
) -> Iterator[ServedModel]:
    """``mlflow models serve`` on a free loopback port (``workers`` uvicorn workers; run by ``python``, another
    environment's interpreter, or this one); yields its base URL (with ``.pid``)."""
    port = free_port()
    command = [
        str(python or sys.executable),
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        str(model_uri),
        "--env-manager",
        env_manager,
    ]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    with _server(command, f"http://127.0.0.1:{port}", "/ping", log, env, timeout) as server:
        yield server


@contextlib.contextmanager
def serve_on_mlserver(
    directory: Path, port: int, log: Path, env: Mapping[str, str] | None = None, timeout: float = 180
) -> Iterator[ServedModel]:
    """``mlserver start directory`` (its settings name HTTP port ``port``); yields the base URL once every model
    in it is ready."""
    mlserver = Path(sys.executable).with_name("mlserver")
    if not mlserver.exists():
        raise MissingDependencyError("mlserver", extra="mlserver", purpose="serving on MLServer")
    command = [str(mlserver), "start", str(directory)]
    with _server(command, f"http://127.0.0.1:{port}", "/v2/health/ready", log, env, timeout) as server:
        yield server


@contextlib.contextmanager
def _server(
    command: list[str], base: str, ready: str, log: Path, env: Mapping[str, str] | None, timeout: float
) -> Iterator[ServedModel]:
    with open(log, "w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True
        )
    try:
        _wait_ready(base + ready, process, timeout, log)
        server = ServedModel(base)
        server.pid = process.pid
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
