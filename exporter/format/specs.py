"""One spec per task a bundle's model answers: what it reads, what a request may ask of it, and what it answers.

Each :class:`TaskSpec` states once what every layer reads of a task (issue 33, its first piece): its name in
messages, the input columns (one text, or a pair), the request params, the answer's column in the signature and in
``output="records"`` (also the default ``output``), and the Spark type of one answer. The pyfunc's params and
outputs, its Spark result types, the MLServer runtime's V2 inputs and the pair tasks are read from :data:`TASKS`.
Not yet here (each still in its own module): the signature's MLflow types (``mlflow_flavor.flavor``), how answers
are read from a Flair ``Sentence`` (``mlflow_flavor.pyfunc``), evaluation and the quality gate
(``mlflow_flavor.registry.evaluate``), and the lean path's heads (``exporter.backends.lean_bundle``).
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.config import (
    MULTITASK,
    RELATION_EXTRACTION,
    SEQUENCE_TAGGING,
    TEXT_CLASSIFICATION,
    TEXT_PAIR_CLASSIFICATION,
    TEXT_PAIR_REGRESSION,
)

__all__ = ["PAIR_COLUMN", "PAIR_TASKS", "RECORDS", "TASKS", "TEXT_COLUMN", "TaskSpec", "spec"]

#: the column of the texts (of each pair's first text)
TEXT_COLUMN = "text"
#: the column of each pair's second text
PAIR_COLUMN = "text_pair"
#: the ``output`` that answers a dict per text (for Spark), every task's second choice
RECORDS = "records"

_SPARK_ENTITY = "array<struct<text: string, label: string, start: bigint, end: bigint, score: double>>"
_SPARK_LABEL = "array<struct<label: string, score: double>>"
_SPARK_SPAN = "struct<text: string, start: bigint, end: bigint, label: string>"
_SPARK_RELATION = f"array<struct<head: {_SPARK_SPAN}, tail: {_SPARK_SPAN}, label: string, score: double>>"


@dataclass(frozen=True)
class TaskSpec:
    """What one task reads, takes and answers.

    Attributes:
        task: the task's id (``exporter.config``), as manifests and MLmodel flavors record it.
        name: what the task's model is called in messages ("sequence tagger").
        columns: the input columns of a row: one text, or a text and its pair.
        params: the request params it takes (``candidate_labels`` besides for zero-shot models).
        answer: the answer's name: the signature's output column, the ``records`` field, the default ``output``.
        spark: the Spark SQL type of one text's answer.
    """

    task: str
    name: str
    columns: tuple[str, ...]
    params: tuple[str, ...]
    answer: str
    spark: str

    @property
    def pairs(self) -> bool:
        """Whether a row is two texts."""
        return len(self.columns) == 2

    @property
    def outputs(self) -> tuple[str, ...]:
        """The ``output`` values: a bare answer per text (the default), or ``records``."""
        return (self.answer, RECORDS)


_TEXT, _PAIR = (TEXT_COLUMN,), (TEXT_COLUMN, PAIR_COLUMN)
_LABELS_PARAMS = ("mini_batch_size", "min_score", "output", "top_k")

#: every task, by id (a relation extractor answers only as a task of a multitask model)
TASKS: dict[str, TaskSpec] = {
    spec.task: spec
    for spec in (
        TaskSpec(
            SEQUENCE_TAGGING,
            "sequence tagger",
            _TEXT,
            ("mini_batch_size", "min_score", "output", "return_tokens", "split_sentences"),
            "entities",
            _SPARK_ENTITY,
        ),
        TaskSpec(TEXT_CLASSIFICATION, "text classifier", _TEXT, _LABELS_PARAMS, "labels", _SPARK_LABEL),
        TaskSpec(TEXT_PAIR_CLASSIFICATION, "classifier of text pairs", _PAIR, _LABELS_PARAMS, "labels", _SPARK_LABEL),
        TaskSpec(
            TEXT_PAIR_REGRESSION, "regressor of text pairs", _PAIR, ("mini_batch_size", "output"), "value", "double"
        ),
        TaskSpec(
            RELATION_EXTRACTION,
            "relation extractor",
            _TEXT,
            ("mini_batch_size", "min_score", "output"),
            "relations",
            _SPARK_RELATION,
        ),
        # each task's answer under its name: its Spark type is a struct of the tasks' (see the pyfunc)
        TaskSpec(MULTITASK, "multitask model", _TEXT, ("mini_batch_size", "min_score", "output"), "tasks", ""),
    )
}
#: the tasks whose rows are text pairs
PAIR_TASKS = tuple(task for task, spec in TASKS.items() if spec.pairs)


def spec(task: str | None) -> TaskSpec:
    """The spec of ``task`` (a sequence tagger's where none is recorded, as bundles of the first schema)."""
    return TASKS[task or SEQUENCE_TAGGING]
