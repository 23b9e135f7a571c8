"""Export Flair models to accelerated backends and write verified bundles.

Heavy libraries (torch, flair, onnx, onnxruntime) are imported only when a function needs them.
"""

from __future__ import annotations

from exporter.config import Backend, ExportConfig, OnnxOptions, ParityConfig, RuntimeOptions
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
    ServerError,
    UnsupportedModelError,
)

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
    "ServerError",
    "UnsupportedModelError",
    "load_bundle",
    "save_bundle",
]

__version__ = "0.1.0"


def __getattr__(name: str):
    if name in ("load_bundle", "save_bundle"):
        from exporter import bundle

        return getattr(bundle, name)
    raise AttributeError(f"module 'exporter' has no attribute {name!r}")
