"""The errors of the exporter, and the base of every error flair-mlflow raises.

Every error a user can meet derives from :class:`FlairMlflowError`, so one ``except`` catches them all. The
registry's and the server's errors are defined in their own layers (``mlflow_flavor.registry.errors``,
``mlflow_flavor.tools.serving``); ``mlflow_flavor`` re-exports the whole tree::

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
    ├── MissingDependencyError    an optional package is not installed
    ├── ServerError               a model server did not start or stopped answering      (mlflow_flavor.tools)
    └── PromotionError            a promotion stopped; the target was left as it was   (mlflow_flavor.registry)
        ├── SourceVerificationError   the source version's files differ from its manifest (refused)
        └── QualityGateError          the version scored below the quality gate on labeled data (refused)

Messages say what failed, what was expected, and what to do about it. Each class names the MLflow error code
(``mlflow_code``, a name in ``mlflow.protos.databricks_pb2``) it leaves the flavor with, which MLflow turns into
an HTTP status: the request is at fault (400) only where the caller can fix it by sending something else; a
corrupt or tampered model, an unsafe model file or a server without what the model needs are 5xx (see
``mlflow_flavor.boundary``)::

    InputError, ConfigError, UnsupportedModelError   INVALID_PARAMETER_VALUE  400  change the request
    ChecksumError, SourceVerificationError           DATA_LOSS                500  the model's files changed
    BundleError, UnsafeModelFileError, ParityError,  INVALID_STATE            500  the model cannot serve as is
      PromotionError, QualityGateError
    ProviderError, MissingDependencyError,           INTERNAL_ERROR           500  the server lacks what it needs
      ExportError, FlairMlflowError (any other)
    ServerError                                      TEMPORARILY_UNAVAILABLE  503  a model server stopped
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

__all__ = [
    "BundleError",
    "ChecksumError",
    "ConfigError",
    "ExportError",
    "FlairMlflowError",
    "InputError",
    "MissingDependencyError",
    "ParityError",
    "ProviderError",
    "UnsafeModelFileError",
    "UnsupportedModelError",
]


class FlairMlflowError(Exception):
    """Base class of every flair-mlflow error."""

    mlflow_code = "INTERNAL_ERROR"


class ConfigError(FlairMlflowError, ValueError):
    """An option is out of range, or two options contradict each other.

    Attributes:
        option: the option at fault by its library name (a config field or keyword), where one is; a command
            line names its own flag for it.
    """

    mlflow_code = "INVALID_PARAMETER_VALUE"

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


class UnsupportedModelError(FlairMlflowError, TypeError):
    """The Flair model (or its embeddings) is of a kind we cannot export faithfully."""

    mlflow_code = "INVALID_PARAMETER_VALUE"


class ExportError(FlairMlflowError, RuntimeError):
    """The conversion to the accelerated backend failed."""

    mlflow_code = "INTERNAL_ERROR"


class ParityError(FlairMlflowError):
    """The exported model does not predict like the original.

    Attributes:
        report: the parity report (a dict) that violated the thresholds.
    """

    mlflow_code = "INVALID_STATE"

    def __init__(self, message: str, report: dict | None = None) -> None:
        super().__init__(message)
        self.report = report or {}


class BundleError(FlairMlflowError):
    """A bundle is missing, incomplete, or written by an unknown schema version."""

    mlflow_code = "INVALID_STATE"


class ChecksumError(BundleError):
    """A bundled file's size or sha256 differs from what the manifest recorded."""

    mlflow_code = "DATA_LOSS"


class UnsafeModelFileError(BundleError):
    """A model file (a pickle) needs more than plain data to load: loading it would run code it names.

    Refused unless the caller opts in (``allow_pickle=True``, the CLI's ``--allow-pickle`` or
    ``FLAIR_MLFLOW_ALLOW_PICKLE=1`` for pyfunc loading and serving); see ``exporter.format.modelfile``.

    Attributes:
        reason: why the file is not plain data (the safe reader's refusal), where known.
    """

    mlflow_code = "INVALID_STATE"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class ProviderError(FlairMlflowError, RuntimeError):
    """A requested ONNX Runtime execution provider is not available and strict providers were asked for."""

    mlflow_code = "INTERNAL_ERROR"


class InputError(FlairMlflowError, ValueError):
    """Prediction input has the wrong shape or type."""

    mlflow_code = "INVALID_PARAMETER_VALUE"


class MissingDependencyError(FlairMlflowError, ImportError):
    """An optional dependency is not installed."""

    mlflow_code = "INTERNAL_ERROR"

    def __init__(self, package: str, extra: str | None = None, purpose: str = "") -> None:
        what = f" for {purpose}" if purpose else ""
        super().__init__(
            f"The package '{package}' is needed{what} but is not installed. Install it with: {install_hint(package, extra)}"
        )
        self.package = package
        self.extra = extra


#: the requirements of flair-mlflow's extras, as pyproject.toml declares them (a test keeps the two in step): the
#: install hint must hold where flair-mlflow itself is no installed distribution (a model's code/ copy)
EXTRAS = {
    "gpu": ("onnxruntime-gpu>=1.18",),
    "spark": ("pyspark>=3.5",),
    "mlserver": ("mlserver==1.7.1", "mlserver-mlflow==1.7.1", "uvloop<0.22"),
}


def install_hint(package: str, extra: str | None = None) -> str:
    """A pip command that installs ``package`` wherever it runs: flair-mlflow is not on PyPI, so an extra is
    spelt out as its own requirements, with the checkout's form beside."""
    if not extra:
        return f"pip install {package}"
    pins = " ".join(f"'{requirement}'" for requirement in EXTRAS.get(extra, (package,)))
    return f"pip install {pins} (flair-mlflow's extra '{extra}'; from a checkout: pip install -e '.[{extra}]')"


def did_you_mean(given: object, choices: Sequence[str], cutoff: float = 0.6) -> str:
    """`` (did you mean 'x'?)`` for the choice closest to ``given``, or ``""`` where none is close: the one spelling
    of the suggestion every refusal of an unknown name gives."""
    close = difflib.get_close_matches(str(given), list(choices), n=1, cutoff=cutoff)
    return f" (did you mean {close[0]!r}?)" if close else ""
