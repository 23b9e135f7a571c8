"""The ``flair_mlflow`` MLflow flavor, its pyfunc, registry helpers and command line.

Heavy libraries (mlflow, torch, flair, onnxruntime) are imported inside the functions that need them.
"""

from __future__ import annotations

from mlflow_flavor.evaluate import EvaluationConfig, evaluate_model
from mlflow_flavor.fetch import fetch_model
from mlflow_flavor.flavor import (
    FLAVOR_NAME,
    _load_pyfunc,  # noqa: F401  (MLflow's pyfunc loader entry point)
    get_default_pip_requirements,
    load_model,
    log_model,
    save_model,
)
from mlflow_flavor.promote import PromotionConfig, PromotionResult, promote
from mlflow_flavor.registry import register_model_version

__all__ = [
    "FLAVOR_NAME",
    "EvaluationConfig",
    "PromotionConfig",
    "PromotionResult",
    "evaluate_model",
    "fetch_model",
    "get_default_pip_requirements",
    "load_model",
    "log_model",
    "promote",
    "register_model_version",
    "save_model",
]
