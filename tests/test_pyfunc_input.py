"""The pyfunc input contract, checked without MLflow's own schema enforcement in front."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from exporter.errors import InputError
from mlflow_flavor.pyfunc import normalize_texts, parse_params


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("one text", ["one text"]),
        (["a", "b"], ["a", "b"]),
        (("a",), ["a"]),
        (pd.DataFrame({"text": ["a", "b"]}), ["a", "b"]),
        (pd.DataFrame({0: ["a"]}), ["a"]),
        (pd.Series(["a"]), ["a"]),
        (np.array(["a", "b"]), ["a", "b"]),
        ({"text": ["a"]}, ["a"]),
        ([], []),
    ],
)
def test_accepted_shapes(value, expected):
    assert normalize_texts(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["a", None], "Text 1 is missing"),
        (["a", math.nan], "Text 1 is missing"),
        ([3], "Text 0 is a int"),
        ([{"text": "a"}], "Text 0 is a dict"),
        ([["nested"]], "Text 0 is a list"),
        (pd.DataFrame({"body": ["a"]}), "no 'text' column"),
        (pd.DataFrame({"a": ["x"], "b": ["y"]}), "no 'text' column"),
        (np.array([["a"], ["b"]]), "one-dimensional"),
        (42, "Unsupported input of type int"),
    ],
)
def test_refused_shapes_say_what_is_expected(value, message):
    with pytest.raises(InputError, match=message):
        normalize_texts(value)


def test_params_whitelist():
    assert parse_params(None) == {
        "mini_batch_size": 32,
        "return_tokens": False,
        "min_score": 0.0,
        "output": "entities",
        "top_k": 0,
        "split_sentences": False,
        "candidate_labels": (),
    }
    assert parse_params(None, "text-classification")["output"] == "labels"
    # MLflow fills in every declared param's default: another task's param at its default is no error
    assert parse_params({"top_k": 0, "candidate_labels": []})["top_k"] == 0
    with pytest.raises(InputError, match="'candidate_labels' applies to Flair's zero-shot models"):
        parse_params({"candidate_labels": ["sports"]})
    assert parse_params({"candidate_labels": ["a", "b"]}, zero_shot=True)["candidate_labels"] == ("a", "b")
    with pytest.raises(InputError, match="'top_k' must be an integer between 0 and 1024"):
        parse_params({"top_k": -1}, "text-classification")
    with pytest.raises(InputError, match="must be one of entities, records"):
        parse_params({"output": "table"})
    # each task refuses the other task's values and parameters
    with pytest.raises(InputError, match="must be one of entities, records"):
        parse_params({"output": "labels"})
    with pytest.raises(InputError, match="must be one of labels, records"):
        parse_params({"output": "entities"}, "text-classification")
    with pytest.raises(InputError, match="'top_k' does not apply to a sequence tagger"):
        parse_params({"top_k": 3})
    with pytest.raises(InputError, match="'split_sentences' does not apply to a text classifier"):
        parse_params({"split_sentences": True}, "text-classification")
    assert parse_params({"mini_batch_size": 8, "min_score": 0.5})["mini_batch_size"] == 8
    with pytest.raises(
        InputError, match="allowed parameters: min_score, mini_batch_size, output, return_tokens, split_sentences"
    ):
        parse_params({"batch": 8})
    with pytest.raises(InputError, match="between 1 and 1024"):
        parse_params({"mini_batch_size": 0})
    with pytest.raises(InputError, match="between 0 and 1"):
        parse_params({"min_score": 2})
    with pytest.raises(InputError, match="true or false"):
        parse_params({"return_tokens": "yes"})
