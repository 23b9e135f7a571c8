"""Models of several tasks: Flair's ``MultitaskModel`` and a relation extractor logged with its tagger.

A bundle of such a model records its tasks in the manifest (``tasks``: each task's name, model class, task kind,
label type, and for a relation extractor the label type of the entities it reads), and the pyfunc answers each
text with every task's answer under the task's name.
"""

from __future__ import annotations

from typing import Any

from exporter.config import RELATION_EXTRACTION, SEQUENCE_TAGGING
from exporter.errors import UnsupportedModelError
from exporter.format.modelfile import TASK_MODELS

__all__ = ["RELATION_TASK_NAMES", "describe_tasks", "entity_label_types", "is_multitask", "task_models", "with_tagger"]

#: the task names of a relation extractor logged with its tagger: the answer of a text is
#: ``{"entities": [...], "relations": [...]}``
RELATION_TASK_NAMES = ("entities", "relations")


def is_multitask(model: Any) -> bool:
    """Whether ``model`` is Flair's MultitaskModel."""
    return type(model).__name__ == "MultitaskModel"


def task_models(model: Any) -> list[Any]:
    """The models ``model`` runs: a MultitaskModel's tasks in order, or the model itself."""
    return list(model.tasks.values()) if is_multitask(model) else [model]


def describe_tasks(model: Any) -> list[dict[str, Any]] | None:
    """What a bundle records of a MultitaskModel's tasks (None for any other model), checked: each task one of
    :data:`~exporter.format.modelfile.TASK_MODELS` from Flair itself, a relation extractor after a tagger of the
    entities it reads.

    Raises:
        UnsupportedModelError: a task the bundle cannot carry, or a relation extractor without its entities.
    """
    if not is_multitask(model):
        return None
    tasks, tagged = [], set()
    for name, task_model in model.tasks.items():
        cls = type(task_model)
        if cls.__name__ not in TASK_MODELS or cls.__module__.split(".")[0] != "flair":
            raise UnsupportedModelError(
                f"The MultitaskModel's task {name!r} is a {cls.__module__}.{cls.__name__}; flair-mlflow carries "
                f"tasks of {', '.join(TASK_MODELS)} (models of text pairs and nested multitask models are not)."
            )
        entry = {
            "name": name,
            "model_class": cls.__name__,
            "task": TASK_MODELS[cls.__name__],
            "label_type": task_model.label_type,
        }
        if entry["task"] == RELATION_EXTRACTION:
            entity_types = entity_label_types(task_model)
            missing = [t for t in entity_types if t not in tagged]
            if missing:
                raise UnsupportedModelError(
                    f"The relation model {name!r} reads entities labeled {', '.join(map(repr, missing))}, which no "
                    "tagger before it in the model labels: log it with the tagger that finds them "
                    "(save_model(relation_model, path, tagger=ner_model)), or put that tagger before it in the "
                    "MultitaskModel."
                )
            entry["entity_label_types"] = entity_types
        elif entry["task"] == SEQUENCE_TAGGING:
            tagged.add(task_model.label_type)
        tasks.append(entry)
    return tasks


def entity_label_types(relation_model: Any) -> list[str]:
    """The label types of the entities a relation model reads: a RelationExtractor's one, a RelationClassifier's
    (a mapping of label type to the labels it takes)."""
    single = getattr(relation_model, "entity_label_type", None)
    return [single] if single is not None else list(relation_model.entity_label_types)


def with_tagger(relation_model: Any, tagger: Any) -> Any:
    """A relation extractor and the tagger that finds its entities as one Flair ``MultitaskModel``: the tagger
    runs first; each text is answered with ``{"entities": [...], "relations": [...]}``.

    Raises:
        UnsupportedModelError: not a relation extractor and a tagger, or the tagger labels other entities.
    """
    from flair.models import MultitaskModel, RelationClassifier, RelationExtractor, SequenceTagger, TokenClassifier

    if type(relation_model) not in (RelationExtractor, RelationClassifier):
        raise UnsupportedModelError(
            f"tagger= goes with Flair's RelationExtractor or RelationClassifier (the model whose entities the tagger "
            f"finds), not a {type(relation_model).__name__}."
        )
    if not isinstance(tagger, (SequenceTagger, TokenClassifier)):
        raise UnsupportedModelError(f"tagger= must be a Flair SequenceTagger, got a {type(tagger).__name__}.")
    wanted = entity_label_types(relation_model)
    if wanted != [tagger.label_type]:
        raise UnsupportedModelError(
            f"The tagger labels {tagger.label_type!r} entities, but the relation model reads "
            f"{', '.join(map(repr, wanted))}: give the tagger it was trained with (or build a MultitaskModel of the "
            "taggers it needs, each before it)."
        )
    model = MultitaskModel([tagger, relation_model], task_ids=list(RELATION_TASK_NAMES))
    model.eval()
    return model
