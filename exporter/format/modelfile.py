"""Reading Flair model files (``.pt``, a pickle) without running code from them.

A pickle names the Python callables that rebuild its objects, so reading one can run anything. Bundles
written by this flair-mlflow (schema 3) hold only plain data in ``model.pt``: tensors, Flair's label
``Dictionary``, the tokenizer as bytes, numbers, strings, lists and dicts. :func:`load_state` reads such a
file with ``torch.load(weights_only=True)`` and the allowlist :func:`safe_globals`; anything else in the
file (a class, a function, an unknown pickle opcode) is refused with :class:`UnsafeModelFileError` before
it runs. The model class and the embeddings class are then taken from fixed lists, never from the file.

Files that do need code, loaded only after an explicit opt-in (``allow_pickle=True``,
``FLAIR_MLFLOW_ALLOW_PICKLE=1`` where MLflow loads the model, the CLI's ``--allow-pickle``):

- bundles of schema 1 and 2 (``model.pt`` written with pickle protocol 4, which the safe reader cannot
  parse): export the model again to drop the opt-in;
- ``flair-onnx`` bundles (Flair's ``TransformerOnnxEmbeddings`` build their ONNX Runtime session from
  attributes stored in the pickle) and ``torch`` bundles of Flair's ``TransformerJit*Embeddings`` (a
  TorchScript program inside the pickle). Their manifests record ``"model_pickle": "needs-allow-pickle"``.

A Flair ``.pt`` the user gives for export (:func:`load_flair_model`) is the user's own file: it goes
through the safe reader first and, only when that refuses it, through Flair's full unpickling with a
warning that says so (``allow_pickle=False`` refuses instead). Flair's own ``model.save`` writes pickle
protocol 4, which torch's safe reader cannot parse: such files take the full path (with the warning);
:func:`save_plain` writes one that loads as data (``torch.save(model._get_state_dict(), path)`` does too,
unless Flair's dictionaries hold their lookup cache, as after a predict with ``FlairEmbeddings``).
"""

from __future__ import annotations

import collections
import contextlib
import copy
import logging
import os
import pickle
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from exporter.config import (
    MULTITASK,
    RELATION_EXTRACTION,
    SEQUENCE_TAGGING,
    TEXT_CLASSIFICATION,
    TEXT_PAIR_CLASSIFICATION,
    TEXT_PAIR_REGRESSION,
)
from exporter.errors import ConfigError, UnsafeModelFileError, UnsupportedModelError

__all__ = [
    "ALLOW_PICKLE_ENV",
    "DropDictionaryChatter",
    "MODEL_FILE",
    "PICKLE_NEEDS_OPT_IN",
    "PICKLE_WEIGHTS_ONLY",
    "PLAIN_EMBEDDINGS",
    "SUPPORTED_MODELS",
    "TASK_MODELS",
    "ZERO_SHOT_MODELS",
    "ALL_EMBEDDINGS_KEYS",
    "all_embeddings_classes",
    "check_task_classes",
    "sub_states",
    "allow_pickle_from_env",
    "embeddings_classes",
    "embeddings_key",
    "load_flair_model",
    "load_state",
    "model_state",
    "model_embeddings",
    "plain_state",
    "save_plain",
    "quiet_model_init",
    "restore_objects",
    "safe_globals",
]

log = logging.getLogger(__name__)

#: environment variable that lets pyfunc loading and ``mlflow models serve`` unpickle a bundle's model.pt:
#: set by whoever runs the process, never by the model's own files (an ``MLmodel`` is as writable as a bundle)
ALLOW_PICKLE_ENV = "FLAIR_MLFLOW_ALLOW_PICKLE"
#: the ``model_pickle`` values of a schema-3 manifest
PICKLE_WEIGHTS_ONLY = "weights-only"
PICKLE_NEEDS_OPT_IN = "needs-allow-pickle"
#: the Flair model file in a bundle
MODEL_FILE = "model.pt"
#: Flair model classes flair-mlflow exports and loads, with the task name the flavor reports
SUPPORTED_MODELS = {
    "SequenceTagger": SEQUENCE_TAGGING,
    # a linear tag per token, decoded into spans (BIOES) as Flair's SequenceTagger without CRF; WordTagger is
    # its older name (a subclass that only warns)
    "TokenClassifier": SEQUENCE_TAGGING,
    "WordTagger": SEQUENCE_TAGGING,
    "TextClassifier": TEXT_CLASSIFICATION,
    # zero-shot: they answer for their current task's labels (Flair's own model, the torch backend)
    "TARSTagger": SEQUENCE_TAGGING,
    "TARSClassifier": TEXT_CLASSIFICATION,
    # two texts per input: a label (or labels), or a number
    "TextPairClassifier": TEXT_PAIR_CLASSIFICATION,
    "TextPairRegressor": TEXT_PAIR_REGRESSION,
    # several models over the same texts, each answering under its task name (see TASK_MODELS)
    "MultitaskModel": MULTITASK,
}
#: Flair's zero-shot models: they answer for labels a request gives (``candidate_labels``), besides their task's
ZERO_SHOT_MODELS = ("TARSClassifier", "TARSTagger")
#: every key under which a Flair model's state may keep embeddings (each model class reads one of them: taggers
#: the first, the default)
ALL_EMBEDDINGS_KEYS = ("embeddings", "document_embeddings", "tars_embeddings")
#: the models a MultitaskModel may hold, in the order it runs them: models of single texts, and Flair's
#: RelationExtractor, which reads the entities a tagger before it labeled (alone it has nothing to read)
TASK_MODELS = {
    name: task for name, task in SUPPORTED_MODELS.items() if task in (SEQUENCE_TAGGING, TEXT_CLASSIFICATION)
} | {"RelationExtractor": RELATION_EXTRACTION, "RelationClassifier": RELATION_EXTRACTION}
#: how Flair's RelationClassifier marks the two entities in the text it classifies: its own classes, kept in a
#: bundle as their name and setting (``{"__encoding_strategy__": name, "add_special_tokens": bool}``), rebuilt
#: from this list only
ENCODING_STRATEGIES = (
    "EntityMask",
    "TypedEntityMask",
    "EntityMarker",
    "TypedEntityMarker",
    "EntityMarkerPunct",
    "TypedEntityMarkerPunct",
)
_STRATEGY_KEY = "__encoding_strategy__"


def sub_states(state: Mapping[str, Any]) -> list[tuple[str | None, Mapping[str, Any]]]:
    """The model states inside a Flair state: a MultitaskModel's, by task name; any other model's own state."""
    if state.get("__cls__") == "MultitaskModel" and isinstance(state.get("model_states"), Mapping):
        return list(state["model_states"].items())
    return [(None, state)]


def check_task_classes(state: Mapping[str, Any], where: Any) -> None:
    """Refuse a state whose shape Flair would read otherwise than checked: a model class missing, a MultitaskModel
    whose ``model_states`` is not a mapping of model states, or a task naming a class outside :data:`TASK_MODELS`
    (Flair would build any class its own registry knows).

    Raises:
        UnsafeModelFileError: the state is malformed.
        UnsupportedModelError: a task's class is not one flair-mlflow loads.
    """
    if not isinstance(state.get("__cls__"), str):
        raise UnsafeModelFileError(f"{where} names no model class (__cls__): it is not a Flair model state.")
    if state["__cls__"] == "MultitaskModel":
        tasks = state.get("model_states")
        if not isinstance(tasks, Mapping) or not tasks or not all(isinstance(s, Mapping) for s in tasks.values()):
            raise UnsafeModelFileError(f"{where} holds a MultitaskModel without a mapping of task states.")
    for task, sub in sub_states(state):
        if task is not None and sub.get("__cls__") not in TASK_MODELS:
            raise UnsupportedModelError(
                f"{where} holds a MultitaskModel whose task {task!r} is a {sub.get('__cls__')!r}; flair-mlflow "
                f"loads tasks of {', '.join(TASK_MODELS)}."
            )


def all_embeddings_classes(state: Mapping[str, Any]) -> list[Any]:
    """Every embeddings class a state names, under every key any model class reads, in every task: the allow-list
    checks all of them, whichever one Flair then reads."""
    return [
        name
        for _, sub in sub_states(state)
        for key in ALL_EMBEDDINGS_KEYS
        if key in sub and sub[key] is not None
        for name in embeddings_classes(sub[key])
    ]


#: Flair's embeddings whose state is plain data (tensors, numbers, strings, vocabularies, Flair's Dictionary) and
#: which Flair rebuilds from it through its own fixed registry of embedding classes: a torch bundle may hold any
#: tree of these (stacked, or under a document RNN or pool), and a model.pt naming any other class is refused
PLAIN_EMBEDDINGS = (
    "TransformerWordEmbeddings",
    "TransformerDocumentEmbeddings",
    "WordEmbeddings",
    "FlairEmbeddings",
    "CharacterEmbeddings",
    "OneHotEmbeddings",
    "StackedEmbeddings",
    "DocumentRNNEmbeddings",
    "DocumentPoolEmbeddings",
    "DocumentLMEmbeddings",
)


def embeddings_classes(entry: Any) -> list[str]:
    """Every embeddings class an embeddings state names, the nested members of a stack, a document RNN or a
    document pool included (``[None]`` for an entry that names none)."""
    if isinstance(entry, str):
        return [entry]
    if not isinstance(entry, Mapping):
        return [None]
    return [entry.get("__cls__"), *_nested_classes(entry)]


def _nested_classes(mapping: Mapping[str, Any]) -> list[str]:
    names = []
    for value in mapping.values():
        for member in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(member, Mapping):
                names += embeddings_classes(member) if "__cls__" in member else _nested_classes(member)
    return names


def plain_state(value: Any) -> Any:
    """A copy of a Flair state that ``torch.load(weights_only=True)`` reads: Flair's ``Dictionary`` keeps a lookup
    cache (a ``defaultdict``, built on first use, e.g. by ``FlairEmbeddings``) that the copy leaves out; it is
    built again on use."""
    import flair.data

    if isinstance(value, flair.data.Dictionary):
        dictionary = copy.copy(value)
        dictionary.__dict__.pop("item2idx_not_encoded", None)
        return dictionary
    if isinstance(value, Mapping):
        items = {key: plain_state(item) for key, item in value.items()}
        # an OrderedDict (a torch state dict) stays one; any other mapping becomes a plain dict
        return collections.OrderedDict(items) if isinstance(value, collections.OrderedDict) else items
    if isinstance(value, (list, tuple)):
        return type(value)(plain_state(item) for item in value)
    return value


def model_state(model: Any) -> dict[str, Any]:
    """Flair's state of ``model`` as plain data (:func:`plain_state`). One model keeps a module object in it:
    ``TextPairRegressor``'s ``decoder``, which Flair rebuilds itself (a ``Linear`` to one value) when the state
    names none, its weights then coming from ``state_dict``; a decoder of another kind is refused."""
    state = model._get_state_dict()
    if type(model).__name__ == "TextPairRegressor" and state.get("decoder") is not None:
        import torch

        decoder = state["decoder"]
        width = model.embeddings.embedding_length * (2 if model.embed_separately else 1)
        if type(decoder) is not torch.nn.Linear or (decoder.in_features, decoder.out_features) != (width, 1):
            raise UnsupportedModelError(
                f"This TextPairRegressor has its own decoder ({type(decoder).__name__}), which Flair can rebuild "
                f"only by running its code; flair-mlflow carries the default decoder, a Linear({width}, 1)."
            )
        state["decoder"] = None
    for _, sub in sub_states(state):
        if sub.get("encoding_strategy") is not None:
            sub["encoding_strategy"] = _plain_strategy(sub["encoding_strategy"])
    return plain_state(state)


def _plain_strategy(strategy: Any) -> dict[str, Any]:
    import flair.models.relation_classifier_model as relations

    name = type(strategy).__name__
    if name not in ENCODING_STRATEGIES or getattr(relations, name) is not type(strategy):
        raise UnsupportedModelError(
            f"This RelationClassifier marks its entities with {type(strategy).__module__}.{name}, which Flair can "
            f"rebuild only by running its code; flair-mlflow carries Flair's own: {', '.join(ENCODING_STRATEGIES)}."
        )
    return {_STRATEGY_KEY: name, "add_special_tokens": bool(strategy.add_special_tokens)}


def restore_objects(state: dict[str, Any]) -> dict[str, Any]:
    """The objects :func:`model_state` kept as data, rebuilt from fixed lists for Flair's own loader: a
    RelationClassifier's encoding strategy (in place; returns ``state``)."""
    for _, sub in sub_states(state):
        kept = sub.get("encoding_strategy")
        if isinstance(kept, Mapping) and _STRATEGY_KEY in kept:
            import flair.models.relation_classifier_model as relations

            name, special = kept[_STRATEGY_KEY], kept.get("add_special_tokens")
            if name not in ENCODING_STRATEGIES or not isinstance(special, bool):
                raise UnsafeModelFileError(
                    f"The model names an encoding strategy {name!r} (add_special_tokens={special!r}); flair-mlflow "
                    f"rebuilds Flair's own ({', '.join(ENCODING_STRATEGIES)}) with a true/false setting."
                )
            sub["encoding_strategy"] = getattr(relations, name)(add_special_tokens=special)
    return state


def save_plain(model: Any, path: str | Path) -> Path:
    """Save a Flair model as a ``.pt`` that loads as plain data (no code run, no warning): its state without
    Flair's lookup caches (:func:`plain_state`), in a pickle the safe reader parses. Flair's ``Model.load`` reads
    it too, but for a RelationClassifier's (its entity markers are kept as data: load it with
    :func:`load_flair_model`, which rebuilds them)."""
    import torch

    path = Path(path)
    torch.save(model_state(model), path)
    return path


def embeddings_key(state: Mapping[str, Any]) -> str:
    """Where a Flair model's state keeps its embeddings: taggers say ``embeddings``, classifiers
    ``document_embeddings``, TARS models ``tars_embeddings``."""
    return next((key for key in ALL_EMBEDDINGS_KEYS[1:] if key in state), ALL_EMBEDDINGS_KEYS[0])


def model_embeddings(model: Any) -> Any:
    """A Flair model's embeddings (a TARS model's are its ``tars_embeddings``), or None."""
    embeddings = getattr(model, "embeddings", None)
    return embeddings if embeddings is not None else getattr(model, "tars_embeddings", None)


class DropDictionaryChatter(logging.Filter):
    """Flair logs the whole tag dictionary at INFO each time a tagger is built (2-4 times per command)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("SequenceTagger predicts:")


@contextlib.contextmanager
def quiet_model_init() -> Iterator[None]:
    """Within the block, Flair's logger drops its 'SequenceTagger predicts: Dictionary ...' line (only that)."""
    flair_log = logging.getLogger("flair")
    chatter = DropDictionaryChatter()
    flair_log.addFilter(chatter)
    try:
        yield
    finally:
        flair_log.removeFilter(chatter)


def safe_globals() -> list[Any]:
    """The classes a plain-data Flair state may hold besides what ``weights_only`` allows (tensors, containers)."""
    import io

    import flair.data

    # Dictionary: label dictionaries (attributes only, no __setstate__); BytesIO: the tokenizer files as bytes
    return [flair.data.Dictionary, io.BytesIO]


def allow_pickle_from_env() -> bool:
    """Whether ``FLAIR_MLFLOW_ALLOW_PICKLE`` is set to a true value in this process's environment."""
    value = os.environ.get(ALLOW_PICKLE_ENV, "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise ConfigError(f"{ALLOW_PICKLE_ENV} must be 1 / true or 0 / false, got {value!r}.")


def _refusal_reason(error: Exception) -> str:
    """What torch's weights-only reader objected to, without its generic advice."""
    text = str(error)
    if "Unsupported operand 149" in text:
        return (
            "pickle protocol 4, as Flair's model.save and flair-mlflow before bundle schema 3 write it, "
            "which the safe reader cannot parse"
        )
    marker = "WeightsUnpickler error:"
    parts = []
    for paragraph in (p.strip() for p in text.split("\n\n")):
        if marker in paragraph:
            paragraph = paragraph.split(marker, 1)[1].strip()
        if paragraph and not paragraph.startswith(("Weights only load failed", "Check the documentation")):
            parts.append(" ".join(paragraph.split()))
    return " ".join(parts)[:400] or " ".join(text.split())[:400]


def load_state(path: Path, *, allow_pickle: bool = False, opt_in_hint: str = "") -> dict[str, Any]:
    """Read a Flair state dictionary from ``path`` as data; with ``allow_pickle`` by full unpickling.

    Raises:
        UnsafeModelFileError: the file needs more than plain data (the reason and the opt-in are in the message).
    """
    import torch

    if allow_pickle:
        state = torch.load(path, map_location="cpu", weights_only=False)
    else:
        try:
            with torch.serialization.safe_globals(safe_globals()), warnings.catch_warnings():
                # an old bundle's protocol 4 is reported by the refusal below, not as a warning
                warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
                # mmap: tensors are read from the file as the model copies them in (faster, lower peak memory)
                state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except pickle.UnpicklingError as e:
            reason = _refusal_reason(e)
            raise UnsafeModelFileError(
                f"{path} was not loaded: it is not plain data ({reason}). Unpickling it would run code "
                "that the file names, and anyone who could write the file (and recompute its checksums) chooses "
                f"that code. {opt_in_hint or 'Pass allow_pickle=True only if you trust where the file came from.'}",
                reason=reason,
            ) from None
    if not isinstance(state, dict):
        raise UnsafeModelFileError(f"{path} does not hold a Flair model state (found a {type(state).__name__}).")
    return state


def load_flair_model(path: str | Path, allow_pickle: bool | None = None) -> Any:
    """Load a Flair ``.pt`` file the user gives (their own file) and return the model.

    Args:
        path: a file saved by Flair's ``model.save()``.
        allow_pickle: ``None`` (default): read it as data, and if it needs code, unpickle it fully with a
            warning (the user trusts their own file); ``False``: refuse such a file; ``True``: unpickle it.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"No Flair model file at {path}: give the path of a .pt file saved by Flair's model.save().")
    import flair.models

    try:
        state = load_state(
            path,
            allow_pickle=bool(allow_pickle),
            opt_in_hint="Load it with allow_pickle=True if it is your own file.",
        )
    except UnsafeModelFileError as e:
        if allow_pickle is False:
            raise
        _warn_unpickling_once(path, e.reason or str(e))
        state = _load_state_unsafe(path)
    except UnsupportedModelError:
        raise
    except Exception as e:  # torch raises zip and runtime errors
        raise UnsupportedModelError(f"{path} is not a Flair model file that torch can read: {e}") from e
    cls_name = state.get("__cls__")
    if cls_name not in SUPPORTED_MODELS and cls_name not in TASK_MODELS:
        raise UnsupportedModelError(
            f"{path} holds a {cls_name or 'file without a Flair model class'}; flair-mlflow loads "
            f"{', '.join(SUPPORTED_MODELS)} (and a RelationExtractor, bundled with its tagger)."
        )
    check_task_classes(state, path)
    try:
        with quiet_model_init():
            return getattr(flair.models, cls_name).load(restore_objects(state))
    except Exception as e:
        raise UnsupportedModelError(f"{path} could not be loaded as a Flair {cls_name}: {e}") from e


#: the files (resolved path, modification time) this process already warned about: one warning per file
_WARNED_UNPICKLING: set[tuple[str, int]] = set()


def _warn_unpickling_once(path: Path, reason: str) -> None:
    """Say once per file and process that a user's own model file is unpickled fully, and how to stop it."""
    key = (str(path.resolve()), path.stat().st_mtime_ns)
    if key in _WARNED_UNPICKLING:
        return
    _WARNED_UNPICKLING.add(key)
    log.warning(
        "%s needs full unpickling (it is more than plain data: %s); loading it that way because it was given as "
        "your own model file. Only load .pt files you trust. To load it as data, without running code and without "
        "this warning, save it once as plain data: exporter.format.modelfile.save_plain(model, path).",
        path,
        reason,
    )


def _load_state_unsafe(path: Path) -> dict[str, Any]:
    try:
        return load_state(path, allow_pickle=True)
    except UnsafeModelFileError:
        raise
    except Exception as e:  # torch raises pickle, zip and runtime errors
        raise UnsupportedModelError(f"{path} is not a Flair model file that torch can read: {e}") from e
