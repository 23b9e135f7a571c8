"""A virtual environment made only from a logged model's ``requirements.txt``: what ``mlflow models serve
--env-manager virtualenv``, ``build-docker`` and Spark build for it, here to measure (its size, the cold start of a
server running in it) and to prove that a lean model needs nothing else (issue 25).

:func:`model_environment` creates it with ``python -m venv`` and ``pip install -r requirements.txt`` (the
machine's own Python, as the model's ``python_env.yaml`` names it) and reuses it while the requirements are the
same; :func:`site_packages_mb` is its installed size.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
from pathlib import Path

from exporter.errors import FlairMlflowError

__all__ = ["model_environment", "predict_in_environment", "site_packages_mb"]

log = logging.getLogger(__name__)

_MARKER = "flair-mlflow-requirements.sha256"


def model_environment(model_dir: Path, directory: Path, timeout: float = 900) -> Path:
    """The Python of a virtual environment at ``directory`` holding exactly ``model_dir``'s requirements (made, or
    reused when ``directory`` already holds those requirements)."""
    requirements = Path(model_dir) / "requirements.txt"
    if not requirements.is_file():
        raise FlairMlflowError(f"{model_dir} has no requirements.txt: save the model with mlflow_flavor first.")
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    directory = Path(directory)
    python = directory / "bin" / "python"
    marker = directory / _MARKER
    if python.is_file() and marker.is_file() and marker.read_text().strip() == digest:
        log.info("Reusing the model's environment at %s", directory)
        return python
    if directory.exists() and any(directory.iterdir()):
        if not marker.is_file():  # never delete a folder this module did not make
            raise FlairMlflowError(
                f"{directory} exists and is not an environment flair-mlflow made: name a new or empty folder."
            )
        shutil.rmtree(directory)
    log.info("Creating a virtual environment from %s at %s (pip install, a minute or two)", requirements, directory)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(directory)], check=True, timeout=timeout)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(requirements)],
            check=True,
            timeout=timeout,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        shutil.rmtree(directory, ignore_errors=True)
        raise FlairMlflowError(f"Could not build the model's environment from {requirements}: {e}") from e
    marker.write_text(digest + "\n")
    return python


def site_packages_mb(python: Path) -> float:
    """The size of the environment's ``site-packages`` in MB (10^6 bytes)."""
    roots = list((Path(python).parent.parent / "lib").glob("python*/site-packages"))
    return sum(f.stat().st_size for root in roots for f in root.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


_PREDICT = """
import json, sys
import mlflow.pyfunc
request = json.loads(sys.stdin.read())
model = mlflow.pyfunc.load_model(request["model"])
answers = model.predict(request["texts"], params=request["params"] or None)
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "flair", "transformers"})
print(json.dumps({"answers": answers, "imported": heavy}))
"""


def predict_in_environment(
    python: Path, model_dir: Path, texts: list[str], params: dict | None = None, timeout: float = 900
) -> dict:
    """``mlflow.pyfunc.load_model(model_dir).predict(texts, params)`` run by another environment's ``python``:
    its answers, and which of torch, flair and transformers that process imported."""
    import json
    import os

    done = subprocess.run(
        [str(python), "-c", _PREDICT],
        input=json.dumps({"model": str(model_dir), "texts": texts, "params": params}),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    if done.returncode != 0:
        raise FlairMlflowError(f"The model did not answer in {python.parent.parent}: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
