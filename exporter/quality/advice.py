"""What to try when an int8 export fails the parity gate, from what ``flair-mlflow int8-report`` measured.

The measurements are data (``data/int8_measured.json``, written by ``flair-mlflow int8-report --record``), not
code: re-measuring on another tagger or machine changes the advice without changing a line here.
"""

from __future__ import annotations

import functools
import json
from importlib.resources import files
from typing import Any

from exporter.config import int8_recipe

__all__ = ["CHAR_LM_ADVICE", "MEASURED_FILE", "char_lm_advice", "measured", "more_faithful_recipes"]

#: the measurements the advice quotes, as package data beside the check set
MEASURED_FILE = "data/int8_measured.json"


@functools.cache
def measured() -> dict[str, Any]:
    """``{"measured_on": ..., "fp32": {"speed_b32": ...}, "recipes": {name: {"agreement_f1", "speed_b32"}}}``."""
    return json.loads(files(__package__).joinpath(MEASURED_FILE).read_text(encoding="utf-8"))


def more_faithful_recipes(recipe: str, min_entity_f1: float) -> str:
    """Advice for a failed gate: the recipes measured as more faithful than ``recipe``, the fastest of those that
    met ``min_entity_f1`` there to try, and the lossless fp32 export; empty for a recipe not measured."""
    data = measured()
    recipes = {name: (r["agreement_f1"], r["speed_b32"]) for name, r in data["recipes"].items()}
    name = int8_recipe(recipe)
    if name not in recipes:
        return ""
    better = sorted((r for r in recipes if recipes[r][0] > recipes[name][0]), key=lambda r: -recipes[r][0])
    # the fastest of those that met the threshold there
    passing = sorted((r for r in better if recipes[r][0] >= min_entity_f1), key=lambda r: -recipes[r][1])
    listed = [f"{r} ({recipes[r][0]:.3f}, {recipes[r][1]:.1f}x Flair's speed)" for r in better]
    lines = [f"On {data['measured_on']}, {name} agreed with the original at entity F1 {recipes[name][0]:.3f}"]
    if listed:
        lines.append(f"more faithful there: {', '.join(listed)}")
    advice = passing[0] if passing else (better[0] if better else None)
    fp32 = f"the fp32 export (identical entities, {data['fp32']['speed_b32']:.1f}x)"
    try_this = f"Try quantize='{advice}' (CLI --quantize {advice}, mlflow run -P quantize={advice}) or {fp32}"
    return "; ".join(lines) + ". " + (try_this if advice else f"Try {fp32}") + "."


#: what to try when the int8 of Flair's character language models fails the gate, by the recipe in the manifest;
#: measured on a WikiANN-trained tagger of ner-english's shape (docs/BENCHMARKS.md, 1,500 sentences)
CHAR_LM_ADVICE = {
    "int8-dynamic": (
        "On a WikiANN-trained tagger of ner-english's shape, ONNX Runtime's DynamicQuantizeLSTM agreed with the "
        "original at entity F1 0.909 and PyTorch's dynamic int8 LSTM at 0.9994 (5.8x Flair's speed at batch 32). "
        "Try backend='torchscript' with TorchScriptOptions(quantize='int8') (CLI --backend torchscript "
        "--quantize int8), or the fp32 export (identical entities, 2.1x)."
    ),
    "torch-dynamic": (
        "PyTorch's dynamic int8 LSTM agreed with the original at entity F1 0.9994 on a WikiANN-trained tagger of "
        "ner-english's shape: this model reacts more to it. Try the fp32 export (identical entities, 2.1x "
        "Flair's speed at batch 32)."
    ),
}


def char_lm_advice(recipe: str) -> str:
    """Advice for a failed gate of an int8 export of character language models (empty for a recipe not known)."""
    return CHAR_LM_ADVICE.get(recipe, "")
