"""The quality gate of a promotion: thresholds on an evaluation, checked with MLflow's own validation.

``mlflow.validate_evaluation_results`` with a ``MetricThreshold`` on ``f1_micro`` (``min_f1``: the least value)
and on ``f1_micro_drop_vs_champion`` (``max_f1_drop``: the most it may fall below the champion, lower is
better; MLflow's ``min_absolute_change`` only takes improvements, so the drop is a metric of its own).
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.errors import ConfigError
from mlflow_flavor.registry.evaluate import MAIN_METRIC, EvaluationReport, quiet_evaluator

__all__ = ["QualityGate", "check_quality"]


@dataclass(frozen=True)
class QualityGate:
    """Thresholds on the main metric (``f1_micro``: entity F1 for taggers).

    Args:
        min_f1: the least value the challenger must reach.
        max_f1_drop: the most the challenger may fall below the champion (applies only when there is one).
    """

    min_f1: float | None = None
    max_f1_drop: float | None = None
    metric: str = MAIN_METRIC

    def __post_init__(self) -> None:
        for name in ("min_f1", "max_f1_drop"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be a number between 0 and 1, got {value!r}.")
            object.__setattr__(self, name, float(value))

    @property
    def active(self) -> bool:
        return self.min_f1 is not None or self.max_f1_drop is not None


def check_quality(report: EvaluationReport, gate: QualityGate) -> list[str]:
    """The gate's failures (empty when the challenger passes), each naming the metric, values and threshold.

    The checks are MLflow's: ``mlflow.validate_evaluation_results`` with a ``MetricThreshold`` on the metric
    (``min_f1``) and on its drop below the champion (``max_f1_drop``, lower is better).
    """
    from mlflow import validate_evaluation_results
    from mlflow.models import MetricThreshold
    from mlflow.models.evaluation import EvaluationResult
    from mlflow.models.evaluation.validation import ModelValidationFailedException

    metric = gate.metric
    value = report.challenger.metrics[metric]
    drop_key = f"{metric}_drop_vs_champion"
    champion = report.champion.metrics[metric] if report.champion is not None else None
    candidate = {metric: value}
    if champion is not None:
        candidate[drop_key] = round(champion - value, 12)  # no float noise at an exact threshold
    checks = []
    if gate.min_f1 is not None:
        checks.append(
            (
                {metric: MetricThreshold(threshold=gate.min_f1, greater_is_better=True)},
                f"{metric} {value:.4f} of {report.challenger.model} is below min_f1 {gate.min_f1:g}",
            )
        )
    if gate.max_f1_drop is not None and champion is not None:
        checks.append(
            (
                {drop_key: MetricThreshold(threshold=gate.max_f1_drop, greater_is_better=False)},
                f"{metric} fell from {champion:.4f} (champion {report.champion.model}) to {value:.4f} "
                f"({report.challenger.model}): a drop of {champion - value:.4f}, more than max_f1_drop "
                f"{gate.max_f1_drop:g}",
            )
        )
    failures = []
    baseline = None
    if champion is not None:  # the champion against itself: no drop
        baseline = EvaluationResult(metrics={metric: champion, drop_key: 0.0}, artifacts={})
    for thresholds, message in checks:
        try:
            with quiet_evaluator():  # MLflow narrates "Validating candidate model metrics ..." at INFO
                validate_evaluation_results(thresholds, EvaluationResult(metrics=candidate, artifacts={}), baseline)
        except ModelValidationFailedException:
            failures.append(message)
    return failures
