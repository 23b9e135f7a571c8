"""The MLflow edge: every flair-mlflow error leaves as an ``MlflowException`` whose code says who is at fault.

MLflow turns an error code into an HTTP status (``mlflow.exceptions.ERROR_CODE_TO_HTTP_STATUS``), which is
what a client of ``mlflow models serve`` sees. Each error class names its code where it is defined
(``mlflow_code``; the table is in ``exporter.errors``), so an error of any layer crosses this edge without the
edge knowing that layer.

The flavor's loaders (``load_model``, ``_load_pyfunc``) and the pyfunc's ``predict`` raise through
:func:`mlflow_errors`; ``save_model`` / ``log_model`` raise our own errors, unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from exporter.errors import FlairMlflowError

__all__ = ["error_code", "mlflow_errors", "to_mlflow_exception"]


def error_code(error: FlairMlflowError) -> str:
    """The MLflow error code of ``error``: the ``mlflow_code`` its class (or nearest base class) declares."""
    return type(error).mlflow_code


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
