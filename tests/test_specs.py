"""exporter.format.specs: one spec per task, which the pyfunc's params and outputs, the signature, the Spark result
type, the MLServer runtime's inputs and the pair tasks read (issue 33, first piece)."""

from __future__ import annotations

import pytest

from exporter.config import MULTITASK, TEXT_PAIR_REGRESSION
from exporter.errors import InputError
from exporter.format.modelfile import SUPPORTED_MODELS, TASK_MODELS
from exporter.format.specs import PAIR_COLUMN, PAIR_TASKS, TASKS, TEXT_COLUMN, TaskSpec, spec
from mlflow_flavor.flavor import default_signature
from mlflow_flavor.pyfunc import parse_params, request_params, spark_result_type


def test_every_model_class_has_the_spec_of_its_task():
    for model_class, task in {**SUPPORTED_MODELS, **TASK_MODELS}.items():
        assert spec(task).task == task, model_class
    assert spec(None) is TASKS["sequence-tagging"]  # manifests of the first schema record no task
    assert set(PAIR_TASKS) == {t for t, s in TASKS.items() if s.columns == (TEXT_COLUMN, PAIR_COLUMN)}


@pytest.mark.parametrize("task", [t for t in TASKS if t != MULTITASK])
def test_the_layers_read_each_task_from_its_spec(task):
    from mlflow_flavor.mlserver import input_columns

    own = spec(task)
    assert set(request_params(task)) == set(own.params)
    assert parse_params({}, task)["output"] == own.answer
    assert default_signature(task).outputs.input_names() == [own.answer]
    assert input_columns(task) == own.columns
    expected = own.spark if task == TEXT_PAIR_REGRESSION else f"{own.answer} {own.spark}"
    assert spark_result_type({"task": task}) == expected


def test_a_multitask_models_answers_are_its_tasks_specs():
    tasks = [{"name": "ner", "task": "sequence-tagging"}, {"name": "topic", "task": "text-classification"}]
    assert default_signature(MULTITASK, tasks).outputs.input_names() == ["ner", "topic"]
    assert spark_result_type({"task": MULTITASK, "tasks": tasks}) == (
        f"ner {spec('sequence-tagging').spark}, topic {spec('text-classification').spark}"
    )


def test_a_new_task_is_one_spec(monkeypatch):
    """A toy family added to TASKS alone: its params, outputs, signature, Spark type and V2 inputs follow."""
    from mlflow_flavor.mlserver import input_columns

    toy = TaskSpec("toy-pairs", "toy of pairs", (TEXT_COLUMN, PAIR_COLUMN), ("output",), "labels", "string")
    monkeypatch.setitem(TASKS, toy.task, toy)
    assert request_params(toy.task) == ("output",)
    assert parse_params({"output": "records"}, toy.task)["output"] == "records"
    with pytest.raises(InputError, match="does not apply to a toy of pairs"):
        parse_params({"min_score": 0.5}, toy.task)
    assert default_signature(toy.task).outputs.input_names() == ["labels"]
    assert spark_result_type({"task": toy.task}) == "labels string"
    assert input_columns(toy.task) == (TEXT_COLUMN, PAIR_COLUMN) and spec(toy.task).pairs
