"""The ``flair_mlflow`` MLflow flavor, its pyfunc, registry helpers and command line.

This package is the pyfunc ``loader_module`` of every logged model: importing it imports only what loading
needs (``loading`` and what it imports), which is all a logged model's ``code/`` holds. The writing side
(``save_model``, ``log_model``), the registry (``evaluate_model``, ``promote``, ...) and the errors of those
layers are imported on first use. Heavy libraries (mlflow, torch, flair, onnxruntime) are imported inside the
functions that need them. Layers: docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import importlib

from exporter.errors import (
    BundleError,
    ChecksumError,
    ConfigError,
    ExportError,
    FlairMlflowError,
    InputError,
    MissingDependencyError,
    ParityError,
    ProviderError,
    UnsafeModelFileError,
    UnsupportedModelError,
)
from exporter.packaging import extend_package_path
from mlflow_flavor.fetch import fetch_model
from mlflow_flavor.loading import _load_pyfunc, load_model  # noqa: F401  (_load_pyfunc: MLflow's pyfunc entry point)
from mlflow_flavor.mlmodel import FLAVOR_NAME

# A logged model's code/ holds only the runtime modules of this package; where such a copy is imported first
# (MLflow puts code/ ahead on sys.path), the installed package still provides the registry, tools and CLI.
__path__ = extend_package_path(__path__, __name__)

#: public names defined in layers a logged model does not ship, and their modules (imported on first use)
_LAZY = {
    "get_default_pip_requirements": "mlflow_flavor.flavor",
    "log_model": "mlflow_flavor.flavor",
    "save_model": "mlflow_flavor.flavor",
    "EvaluationConfig": "mlflow_flavor.registry.evaluate",
    "evaluate_model": "mlflow_flavor.registry.evaluate",
    "PromotionConfig": "mlflow_flavor.registry.promote",
    "PromotionResult": "mlflow_flavor.registry.promote",
    "promote": "mlflow_flavor.registry.promote",
    "register_model_version": "mlflow_flavor.registry.versions",
    "PromotionError": "mlflow_flavor.registry.errors",
    "QualityGateError": "mlflow_flavor.registry.errors",
    "SourceVerificationError": "mlflow_flavor.registry.errors",
    "ServerError": "mlflow_flavor.tools.serving",
}

__all__ = [
    "BundleError",
    "ChecksumError",
    "ConfigError",
    "EvaluationConfig",
    "ExportError",
    "FLAVOR_NAME",
    "FlairMlflowError",
    "InputError",
    "MissingDependencyError",
    "ParityError",
    "PromotionConfig",
    "PromotionError",
    "PromotionResult",
    "ProviderError",
    "QualityGateError",
    "ServerError",
    "SourceVerificationError",
    "UnsafeModelFileError",
    "UnsupportedModelError",
    "evaluate_model",
    "fetch_model",
    "get_default_pip_requirements",
    "load_model",
    "log_model",
    "promote",
    "register_model_version",
    "save_model",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)  # lazy: layers a logged model does not ship
    raise AttributeError(f"module 'mlflow_flavor' has no attribute {name!r}")
