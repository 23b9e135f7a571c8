"""The ``flair-mlflow`` command line (``main``) and the main job that ``mlflow run .`` runs (``job``)."""

from __future__ import annotations

from mlflow_flavor.cli.commands import main

__all__ = ["main"]
