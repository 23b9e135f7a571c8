"""The README's examples run as written: its promotion lines (the MLflow project's `-e promote` and the CLI's
`promote`) leave the `Production` stage and the `production` alias on one version, and its install lines name
what pip can install outside a checkout too."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import mlflow
import pytest
from conftest import REPO, log_and_stage, write_conll
from test_evaluate import _own_labels

README = (REPO / "README.md").read_text()


def _commands(prefix: str) -> list[str]:
    """The README's command lines starting with ``prefix`` (continuation lines joined, comments dropped)."""
    joined = re.sub(r"\\\n\s*", " ", README)
    return [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip().startswith(prefix)]


def test_readme_install_lines_work_outside_a_checkout():
    """flair-mlflow is not on PyPI: `pip install "flair-mlflow[extra]"` fails anywhere but in a checkout."""
    lines = _commands("pip install")
    assert lines
    for line in lines:
        assert not re.search(r"""pip install ['"]?flair-mlflow\b""", line), line


@pytest.mark.slow
def test_readme_install_lines_resolve(tmp_path):
    """Each `pip install` of the README, as written, resolves here (pip's --dry-run: nothing is installed)."""
    segments = [part.strip() for line in _commands("pip install") for part in line.split("&&")]
    installs = [part for part in segments if part.startswith("pip install")]
    assert len(installs) >= 3, installs
    for line in installs:
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", *shlex.split(line)[2:]]
        out = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=REPO)
        assert out.returncode == 0, (line, out.stderr[-2000:])


def test_readme_promotion_examples_name_both_stage_and_alias():
    lines = _commands("mlflow run . -e promote") + _commands("flair-mlflow promote")
    assert len(lines) >= 4
    for line in lines:
        assert "to_alias=production" not in line or "to_stage=Production" in line, line
        assert "--to-alias production" not in line or "--to-stage Production" in line, line


def _where(client) -> tuple[list[str], str]:
    production = [str(v.version) for v in client.search_model_versions("name='ner'") if v.current_stage == "Production"]
    return production, str(client.get_model_version_by_alias("ner", "production").version)


@pytest.mark.slow
def test_readme_promotion_lines_run_and_keep_stage_and_alias_together(tiny_tagger, tiny_bundle, tracking, tmp_path):
    """Every promotion line of the README that needs no other server, run as written (the labeled set: the tiny
    tagger's own predictions, so that the gate's min_f1 0.85 passes), then the issue's shape without to_stage."""
    conll = write_conll(tmp_path / "test.conll", _own_labels(tiny_tagger, 20, seed=3))
    client = mlflow.MlflowClient()
    for _ in range(4):
        log_and_stage(str(tiny_bundle))
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking, "MLFLOW_DISABLE_TELEMETRY": "true"}
    lines = [
        line
        for line in _commands("mlflow run . -e promote") + _commands("flair-mlflow promote")
        if "://" not in line.replace("s3://", "")  # lines for other tracking servers need those servers
    ]
    assert len(lines) >= 3, lines
    lines.append("mlflow run . -e promote -P version=1 -P to_alias=production -P eval_conll=test.conll -P min_f1=0.85")
    for line in lines:
        words = [w.replace("/data/test.conll", str(conll)) for w in shlex.split(line)]
        words = [str(conll) if w == "test.conll" else w.replace("=test.conll", f"={conll}") for w in words]
        if words[0] == "mlflow":
            command = [sys.executable, "-m", "mlflow", "run", str(REPO), *words[3:], "--env-manager", "local"]
        else:
            command = [sys.executable, "-m", "mlflow_flavor.cli", *words[1:]]
        out = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
        assert out.returncode == 0, (line, out.stderr[-3000:])
        version = re.search(r"version[= ](\d+)", line).group(1)
        assert _where(client) == ([version], version), line
