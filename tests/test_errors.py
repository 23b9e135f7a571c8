"""exporter.errors: the one spelling of a suggestion for an unknown name, and the install hints."""

from __future__ import annotations

import pytest

from exporter.errors import InputError, did_you_mean, install_hint
from mlflow_flavor.pyfunc import parse_params


def test_did_you_mean_names_the_closest_choice_or_nothing():
    assert did_you_mean("max_wait_msec", ["max_wait_ms", "max_texts"]) == " (did you mean 'max_wait_ms'?)"
    assert did_you_mean("zzz", ["max_wait_ms"]) == ""
    assert did_you_mean("Prod", ["Staging", "Production"], cutoff=0.5) == " (did you mean 'Production'?)"


def test_an_unknown_request_param_gets_the_suggestion():
    with pytest.raises(InputError, match=r"Unknown parameter 'min_scor' \(did you mean 'min_score'\?\)"):
        parse_params({"min_scor": 0.5})


def test_install_hints_name_packages_pip_can_find():
    assert install_hint("onnx-ir") == "pip install onnx-ir"
    assert install_hint("pyspark", "spark").startswith("pip install 'pyspark>=3.5' ")
