"""The MLflow project's environment (python_env.yaml) holds every dependency of pyproject.toml, within its range:
`mlflow run . -P quantize=int8` once failed because python_env.yaml lacked onnx-ir, which pyproject.toml had."""

from __future__ import annotations

from pathlib import Path

import tomllib
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {Requirement(r).name.lower(): Requirement(r) for r in project["dependencies"]}


def _python_env() -> dict[str, Requirement]:
    listed = yaml.safe_load((ROOT / "python_env.yaml").read_text())["dependencies"]
    return {Requirement(r).name.lower(): Requirement(r) for r in listed}


def test_python_env_lists_every_dependency_of_pyproject():
    missing = sorted(set(_pyproject()) - set(_python_env()))
    assert not missing, f"python_env.yaml lacks {missing}: mlflow run would build an environment without them"


def test_python_env_pins_within_pyproject_ranges():
    env = _python_env()
    for name, wanted in _pyproject().items():
        given = env[name].specifier
        pins = [s.version for s in given if s.operator == "=="]
        if pins:  # a pin must satisfy the range pyproject.toml declares
            assert wanted.specifier.contains(pins[0], prereleases=True), f"{name}=={pins[0]} is outside {wanted}"
        else:  # a range must be the same range
            assert given == wanted.specifier, f"{name}: python_env.yaml says {given}, pyproject.toml {wanted.specifier}"


def test_python_env_names_no_package_that_pyproject_lacks():
    extra = sorted(set(_python_env()) - set(_pyproject()))
    assert not extra, f"python_env.yaml installs {extra}, which pyproject.toml does not declare"


def test_the_install_hints_know_the_extras_as_pyproject_declares_them():
    """exporter.errors.EXTRAS spells out each extra for the install hint (flair-mlflow is not on PyPI)."""
    from exporter.errors import EXTRAS

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {name: tuple(reqs) for name, reqs in extras.items() if name != "dev"} == EXTRAS


def test_the_development_environment_runs_the_project_environments_mlflow():
    """`mlflow run` (this environment's MLflow) and the environment it builds from python_env.yaml open one tracking
    database, and MLflow refuses a database another version migrated: the dev extra pins python_env.yaml's MLflow
    (with MLflow 3.18 outside and 3.17.2 inside, `mlflow run . -P backend=onnx` failed: out-of-date database schema)."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    dev = {Requirement(r).name.lower(): Requirement(r) for r in extras["dev"]}
    assert str(dev["mlflow"].specifier) == str(_python_env()["mlflow"].specifier)
