"""What the pyfunc accepts as input: texts, or for models of two texts pairs of texts.

Texts: a pandas DataFrame with a string column ``text`` (or a single string column), a list of strings, a single
string, or a pandas Series / numpy array of strings.

Pairs (Flair's ``TextPairClassifier`` and ``TextPairRegressor``): a pandas DataFrame with string columns ``text`` and ``text_pair`` (or exactly two unnamed columns, as
MLflow makes of a list of pairs), a list of ``[text, text_pair]`` pairs, a two-column numpy array (MLflow's
scoring server makes one of ``{"inputs": [["a", "b"], ...]}``), a mapping with ``text`` and ``text_pair`` lists,
or one pair.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from exporter.errors import InputError
from exporter.format.specs import PAIR_COLUMN, TEXT_COLUMN

__all__ = ["PAIR_COLUMN", "TEXT_COLUMN", "check_text", "describe", "normalize_pairs", "normalize_texts"]

#: the input shapes a model of texts takes, and one of pairs: said in each refusal
_TEXT_SHAPES = f"Send a DataFrame with a string column '{TEXT_COLUMN}', a list of strings, or a single string."
_SHAPES = (
    f"Send a DataFrame with string columns '{TEXT_COLUMN}' and '{PAIR_COLUMN}', a list of [text, text_pair] "
    "pairs, or one such pair."
)


def describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_text(index: int, value: Any, shapes: str = _TEXT_SHAPES) -> str:
    """``value`` if it is a string; else the refusal, with the input shapes the model takes (``shapes``)."""
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise InputError(f"Text {index} is missing (None/NaN): every input row must be a string (use '' for no text).")
    raise InputError(f"Text {index} is a {type(value).__name__} ({describe(value)}), expected a string. {shapes}")


def normalize_texts(model_input: Any) -> list[str]:
    """Turn any accepted input shape into a list of strings, or raise :class:`InputError`."""
    import numpy as np
    import pandas as pd

    if isinstance(model_input, str):
        return [model_input]
    if isinstance(model_input, pd.DataFrame):
        # MLflow names an unnamed column by its position: a list arrives as column 0, and Spark's UDF passes the
        # column of a model without an input schema as "0".
        if TEXT_COLUMN in model_input.columns:
            column = model_input[TEXT_COLUMN]
        elif len(model_input.columns) == 1 and (
            isinstance(model_input.columns[0], (int, np.integer)) or model_input.columns[0] == "0"
        ):
            column = model_input.iloc[:, 0]
        else:
            names = ", ".join(map(repr, model_input.columns[:10]))
            raise InputError(
                f"The input has column(s) [{names}] but no '{TEXT_COLUMN}' column. "
                f"Send a DataFrame with a single string column '{TEXT_COLUMN}', a list of strings, or a string."
            )
        values = column.tolist()
    elif isinstance(model_input, np.ndarray) and model_input.ndim == 0:
        # MLflow's scoring server turns {"inputs": "one text"} into a 0-d array when the model has no input schema
        return [check_text(0, model_input.item())]
    elif isinstance(model_input, (pd.Series, np.ndarray)):
        if isinstance(model_input, np.ndarray) and model_input.ndim != 1:
            raise InputError(f"Expected a one-dimensional array of strings, got shape {model_input.shape}.")
        values = list(model_input)
    elif isinstance(model_input, (list, tuple)):
        values = list(model_input)
    elif isinstance(model_input, Mapping) and TEXT_COLUMN in model_input:
        return normalize_texts(model_input[TEXT_COLUMN])
    else:
        raise InputError(f"Unsupported input of type {type(model_input).__name__}. {_TEXT_SHAPES}")
    return [check_text(i, v) for i, v in enumerate(values)]


def normalize_pairs(model_input: Any) -> list[tuple[str, str]]:
    """Turn any accepted input shape into a list of ``(text, text_pair)``, or raise :class:`InputError`."""
    import numpy as np
    import pandas as pd

    if isinstance(model_input, pd.DataFrame):
        columns = list(model_input.columns)
        if TEXT_COLUMN in columns and PAIR_COLUMN in columns:
            rows = list(zip(model_input[TEXT_COLUMN].tolist(), model_input[PAIR_COLUMN].tolist()))
        elif len(columns) == 2 and [str(c) for c in columns] == ["0", "1"]:
            rows = list(zip(model_input.iloc[:, 0].tolist(), model_input.iloc[:, 1].tolist()))
        else:
            names = ", ".join(map(repr, columns[:10]))
            raise InputError(f"The input has column(s) [{names}]; a model of text pairs needs two. {_SHAPES}")
    elif isinstance(model_input, Mapping):
        if TEXT_COLUMN not in model_input or PAIR_COLUMN not in model_input:
            raise InputError(f"The input names {sorted(map(str, model_input))[:10]}. {_SHAPES}")
        first, second = (_as_list(model_input[key]) for key in (TEXT_COLUMN, PAIR_COLUMN))
        if len(first) != len(second):
            raise InputError(f"'{TEXT_COLUMN}' holds {len(first)} texts and '{PAIR_COLUMN}' {len(second)}.")
        rows = list(zip(first, second))
    elif isinstance(model_input, np.ndarray):
        if model_input.ndim == 1 and len(model_input) == 2 and all(isinstance(v, str) for v in model_input):
            rows = [tuple(model_input)]  # one pair
        elif model_input.ndim == 2 and model_input.shape[1] == 2:
            rows = [tuple(row) for row in model_input.tolist()]
        else:
            raise InputError(
                f"Expected pairs of texts (an array of shape (n, 2)), got shape {model_input.shape}. {_SHAPES}"
            )
    elif isinstance(model_input, (list, tuple)):
        if len(model_input) == 2 and all(isinstance(v, str) for v in model_input):
            rows = [tuple(model_input)]  # one pair
        else:
            rows = [_pair(i, row) for i, row in enumerate(model_input)]
    else:
        raise InputError(f"Unsupported input of type {type(model_input).__name__}. {_SHAPES}")
    return [(check_text(i, a, _SHAPES), check_text(i, b, _SHAPES)) for i, (a, b) in enumerate(rows)]


def _as_list(value: Any) -> list[Any]:
    import numpy as np
    import pandas as pd

    if isinstance(value, str):
        return [value]
    if isinstance(value, pd.Series):
        return value.tolist()
    if isinstance(value, np.ndarray):
        return value.reshape(-1).tolist() if value.ndim <= 1 else value.tolist()
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _pair(index: int, row: Any) -> tuple[Any, Any]:
    import numpy as np

    if isinstance(row, np.ndarray):
        row = row.tolist()
    if isinstance(row, (list, tuple)) and len(row) == 2:
        return row[0], row[1]
    raise InputError(f"Input {index} is {describe(row)}, not a pair [text, text_pair]. {_SHAPES}")
