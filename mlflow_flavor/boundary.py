"""The MLflow edge: every flair-mlflow error leaves as an ``MlflowException`` whose code says who is at fault.

MLflow turns an error code into an HTTP status (``mlflow.exceptions.ERROR_CODE_TO_HTTP_STATUS``), which is
what a client of ``mlflow models serve`` sees. The request is at fault (4xx) only where the caller can fix it
by sending something else; a corrupt or tampered model, an unsafe model file or a server without a package or
execution provider the model needs are the model's or the server's fault (5xx)::

    InputError, ConfigError, UnsupportedModelError   INVALID_PARAMETER_VALUE  400  change the request
    ChecksumError, SourceVerificationError           DATA_LOSS                500  the model's files changed
    BundleError, UnsafeModelFileError, ParityError,  INVALID_STATE            500  the model cannot serve as is
      PromotionError, QualityGateError
    ProviderError, MissingDependencyError,           INTERNAL_ERROR           500  the server lacks what it needs
      ExportError, FlairMlflowError (any other)
    ServerError                                      TEMPORARILY_UNAVAILABLE  503  a model server stopped

The flavor's loaders (``load_model``, ``_load_pyfunc``) and the pyfunc's ``predict`` raise through
:func:`mlflow_errors`; ``save_model`` / ``log_model`` raise our own errors, unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from exporter.errors import (
    BundleError,
    ChecksumError,
    ConfigError,
    ExportError,
    FlairMlflowError,
    InputError,
    MissingDependencyError,
    ParityError,
    PromotionError,
    ProviderError,
    QualityGateError,
    ServerError,
    SourceVerificationError,
    UnsafeModelFileError,
    UnsupportedModelError,
)

__all__ = ["ERROR_CODES", "error_code", "mlflow_errors", "to_mlflow_exception"]

#: The MLflow error code (a name in ``mlflow.protos.databricks_pb2``) of each error class. Every class of
#: ``exporter.errors`` has its own entry (a test checks), so a new class is placed on purpose.
ERROR_CODES: Mapping[type[FlairMlflowError], str] = {
    # the request is at fault: the caller can fix it by sending something else
    InputError: "INVALID_PARAMETER_VALUE",
    ConfigError: "INVALID_PARAMETER_VALUE",
    UnsupportedModelError: "INVALID_PARAMETER_VALUE",
    # the model's files are not what was recorded: damaged or tampered with
    ChecksumError: "DATA_LOSS",
    SourceVerificationError: "DATA_LOSS",
    # the model cannot be used as it is
    BundleError: "INVALID_STATE",
    UnsafeModelFileError: "INVALID_STATE",
    ParityError: "INVALID_STATE",
    PromotionError: "INVALID_STATE",
    QualityGateError: "INVALID_STATE",
    # the server lacks what the model needs, or failed on its own
    ProviderError: "INTERNAL_ERROR",
    MissingDependencyError: "INTERNAL_ERROR",
    ExportError: "INTERNAL_ERROR",
    FlairMlflowError: "INTERNAL_ERROR",
    # a model server did not start or stopped answering
    ServerError: "TEMPORARILY_UNAVAILABLE",
}


def error_code(error: FlairMlflowError) -> str:
    """The MLflow error code of ``error``: that of its class, else of its nearest listed base class."""
    return next(ERROR_CODES[cls] for cls in type(error).__mro__ if cls in ERROR_CODES)


def to_mlflow_exception(error: FlairMlflowError):
    """``error`` as an ``MlflowException`` with the same message and the code of :func:`error_code`."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos import databricks_pb2

    return MlflowException(str(error), error_code=databricks_pb2.ErrorCode.Value(error_code(error)))


@contextlib.contextmanager
def mlflow_errors() -> Iterator[None]:
    """Re-raise a flair-mlflow error raised inside the block as an ``MlflowException`` (``from`` the error)."""
    try:
        yield
    except FlairMlflowError as e:
        raise to_mlflow_exception(e) from e
