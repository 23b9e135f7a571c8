"""Loading user-supplied Flair model files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exporter.errors import ConfigError, UnsupportedModelError

__all__ = ["load_flair_model"]

_LOADABLE = ("SequenceTagger", "TextClassifier")  # the classes a bundle can hold (exporter.bundle.SUPPORTED_MODELS)


def load_flair_model(path: str | Path) -> Any:
    """Load a Flair ``.pt`` file the user trusts (it is a pickle) and return the model."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"No Flair model file at {path}: give the path of a .pt file saved by Flair's model.save().")
    import flair.models
    from flair.file_utils import load_torch_state

    try:
        state = load_torch_state(str(path))
    except Exception as e:  # torch raises pickle, zip and runtime errors
        raise UnsupportedModelError(f"{path} is not a Flair model file that torch can read: {e}") from e
    cls_name = state.get("__cls__") if isinstance(state, dict) else None
    if cls_name not in _LOADABLE:
        raise UnsupportedModelError(
            f"{path} holds a {cls_name or 'file without a Flair model class'}; flair-mlflow loads {', '.join(_LOADABLE)}."
        )
    try:
        return getattr(flair.models, cls_name).load(state)
    except Exception as e:
        raise UnsupportedModelError(f"{path} could not be loaded as a Flair {cls_name}: {e}") from e
