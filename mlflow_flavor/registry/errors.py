"""The registry's errors: a promotion that stopped (the target left as it was), and why."""

from __future__ import annotations

from exporter.errors import FlairMlflowError

__all__ = ["PromotionError", "QualityGateError", "SourceVerificationError"]


class PromotionError(FlairMlflowError, RuntimeError):
    """A promotion stopped before moving the target alias or stage; running it again resumes it."""

    mlflow_code = "INVALID_STATE"


class SourceVerificationError(PromotionError):
    """The model version to promote failed checksum verification: it is refused, nothing is copied."""

    mlflow_code = "DATA_LOSS"


class QualityGateError(PromotionError):
    """The version to promote scored below the quality gate on the labeled set: nothing was moved.

    Attributes:
        failures: one line per failed check, naming the metric, the values and the threshold.
        run_id: the MLflow run holding both evaluations.
    """

    mlflow_code = "INVALID_STATE"

    def __init__(self, message: str, failures: list[str] | None = None, run_id: str | None = None) -> None:
        super().__init__(message)
        self.failures = list(failures or [])
        self.run_id = run_id
