"""The errors that flair-mlflow raises.

Every error a user can meet derives from :class:`FlairMlflowError`, so one ``except`` catches them all::

    FlairMlflowError
    ├── ConfigError               an option is out of range or options contradict each other
    ├── UnsupportedModelError     the Flair model or its embeddings cannot be exported faithfully
    ├── ExportError               conversion to the accelerated backend failed
    ├── ParityError               the exported model does not tag like the original
    ├── BundleError               a bundle is missing, incomplete or of an unknown schema
    │   ├── ChecksumError         a bundled file differs from its manifest entry
    │   └── UnsafeModelFileError  a model file would run code when loaded (refused without allow_pickle)
    ├── ProviderError             a requested execution provider is not available (strict mode)
    ├── InputError                prediction input of the wrong shape or type
    ├── ServerError               a model server did not start or stopped answering
    ├── PromotionError            a promotion stopped; the target alias / stage was left as it was
    │   ├── SourceVerificationError   the source version's files differ from its manifest (refused)
    │   └── QualityGateError          the version scored below the quality gate on labeled data (refused)
    └── MissingDependencyError    an optional package is not installed

Messages say what failed, what was expected, and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "BundleError",
    "ChecksumError",
    "ConfigError",
    "ExportError",
    "FlairMlflowError",
    "InputError",
    "MissingDependencyError",
    "ParityError",
    "PromotionError",
    "ProviderError",
    "QualityGateError",
    "ServerError",
    "SourceVerificationError",
    "UnsafeModelFileError",
    "UnsupportedModelError",
]


class FlairMlflowError(Exception):
    """Base class of every flair-mlflow error."""


class ConfigError(FlairMlflowError, ValueError):
    """An option is out of range, or two options contradict each other."""


class UnsupportedModelError(FlairMlflowError, TypeError):
    """The Flair model (or its embeddings) is of a kind we cannot export faithfully."""


class ExportError(FlairMlflowError, RuntimeError):
    """The conversion to the accelerated backend failed."""


class ParityError(FlairMlflowError):
    """The exported model does not predict like the original.

    Attributes:
        report: the parity report (a dict) that violated the thresholds.
    """

    def __init__(self, message: str, report: dict | None = None) -> None:
        super().__init__(message)
        self.report = report or {}


class BundleError(FlairMlflowError):
    """A bundle is missing, incomplete, or written by an unknown schema version."""


class ChecksumError(BundleError):
    """A bundled file's size or sha256 differs from what the manifest recorded."""


class UnsafeModelFileError(BundleError):
    """A model file (a pickle) needs more than plain data to load: loading it would run code it names.

    Refused unless the caller opts in (``allow_pickle=True``, the CLI's ``--allow-pickle`` or
    ``FLAIR_MLFLOW_ALLOW_PICKLE=1`` for pyfunc loading and serving); see ``exporter.pickles``.
    """


class ProviderError(FlairMlflowError, RuntimeError):
    """A requested ONNX Runtime execution provider is not available and strict providers were asked for."""


class InputError(FlairMlflowError, ValueError):
    """Prediction input has the wrong shape or type."""


class ServerError(FlairMlflowError, RuntimeError):
    """A model server (``mlflow models serve``) did not start or stopped answering."""


class MissingDependencyError(FlairMlflowError, ImportError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, extra: str | None = None, purpose: str = "") -> None:
        hint = f"pip install 'flair-mlflow[{extra}]'" if extra else f"pip install {package}"
        what = f" for {purpose}" if purpose else ""
        super().__init__(f"The package '{package}' is needed{what} but is not installed. Install it with: {hint}")
        self.package = package
        self.extra = extra


class PromotionError(FlairMlflowError, RuntimeError):
    """A promotion stopped before moving the target alias or stage; running it again resumes it."""


class SourceVerificationError(PromotionError):
    """The model version to promote failed checksum verification: it is refused, nothing is copied."""


class QualityGateError(PromotionError):
    """The version to promote scored below the quality gate on the labeled set: nothing was moved.

    Attributes:
        failures: one line per failed check, naming the metric, the values and the threshold.
        run_id: the MLflow run holding both evaluations.
    """

    def __init__(self, message: str, failures: list[str] | None = None, run_id: str | None = None) -> None:
        super().__init__(message)
        self.failures = list(failures or [])
        self.run_id = run_id
