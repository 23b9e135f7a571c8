"""What a new user's `export` / `log` print on stderr: no library noise, each notice once (a torch deprecation
warning during a torchscript int8 export, and the batch-invariance notice twice per `log` of a classic tagger,
were seen)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from tinymodels import build_classic_tagger

pytestmark = pytest.mark.slow


def test_a_torchscript_int8_log_of_a_classic_tagger_says_each_thing_once(tmp_path, tracking):
    build_classic_tagger("flair").save(tmp_path / "classic.pt")
    (tmp_path / "texts.txt").write_text("Angela Merkel met Tim Cook in Paris .\nMaria flew to Madrid .\n")
    command = [sys.executable, "-m", "mlflow_flavor.cli", "log", "--model", str(tmp_path / "classic.pt")]
    command += ["--backend", "torchscript", "--quantize", "int8", "--parity-sentences", str(tmp_path / "texts.txt")]
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking, "MLFLOW_DISABLE_TELEMETRY": "true"}
    out = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "UserWarning" not in out.stderr and "quantize_per_tensor" not in out.stderr, out.stderr
    assert out.stderr.count("not batch-invariant") == 1, out.stderr  # said, once (its LSTMs compute by batch)
