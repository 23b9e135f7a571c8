"""Export Flair models to accelerated backends and write verified bundles.

The layers, from the bottom (see docs/ARCHITECTURE.md): ``errors`` and ``config``; ``format`` (the bundle's
files); ``runtime`` (what runs inside Flair's predict); ``backends`` (one module per backend); ``quality`` (the
parity gate and metrics); ``bundle`` (``load`` and ``save``); ``tools`` (bench, int8 report, demo). Heavy
libraries (torch, flair, onnx, onnxruntime) are imported only when a function needs them.
"""

from __future__ import annotations

import importlib

from exporter.config import Backend, ExportConfig, OnnxOptions, ParityConfig, RuntimeOptions, TorchScriptOptions
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

# A logged model's code/ holds only the runtime layers of this package; where such a copy is imported first
# (MLflow puts code/ ahead on sys.path), the installed package still provides the other layers.
__path__ = extend_package_path(__path__, __name__)

__all__ = [
    "Backend",
    "BundleError",
    "ChecksumError",
    "ConfigError",
    "ExportConfig",
    "ExportError",
    "FlairMlflowError",
    "InputError",
    "MissingDependencyError",
    "OnnxOptions",
    "ParityConfig",
    "ParityError",
    "ProviderError",
    "RuntimeOptions",
    "TorchScriptOptions",
    "UnsafeModelFileError",
    "UnsupportedModelError",
    "load_bundle",
    "save_bundle",
]

__version__ = "0.1.0"

#: the public functions of the bundle layer, imported on first use: ``save_bundle`` pulls in the parity gate,
#: which a logged model does not ship
_LAZY = {"load_bundle": "exporter.bundle.load", "save_bundle": "exporter.bundle.save"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)  # lazy: save_bundle imports the parity gate
    raise AttributeError(f"module 'exporter' has no attribute {name!r}")
