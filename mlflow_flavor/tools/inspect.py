"""What a logged model is and how it serves: ``flair-mlflow inspect MODEL``.

Its class, task and backend, its parity summary, the path its pyfunc serves with (lean or Flair's code, and why), the request params it takes, and each ``model_config`` setting
(what the model was logged with, the default, and what the setting does) read from the settings' own docstrings
(``RuntimeOptions`` and ``ServingOptions``), so that the help and the code cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import inspect as pyinspect
import re
from pathlib import Path
from typing import Any

from exporter.backends.kinds import flair_path_reason
from exporter.config import LEAN, SEQUENCE_TAGGING, RuntimeOptions
from exporter.format.manifest import MANIFEST_FILE, read_manifest
from exporter.format.modelfile import ZERO_SHOT_MODELS
from mlflow_flavor.fetch import locate_reference
from mlflow_flavor.mlmodel import FLAVOR_NAME
from mlflow_flavor.pyfunc import ServingOptions, request_params

__all__ = ["describe_model", "setting_meanings"]


def setting_meanings() -> dict[str, str]:
    """Each ``model_config`` key with the first sentence of its documentation."""
    meanings = {}
    for cls in (RuntimeOptions, ServingOptions):
        doc = pyinspect.getdoc(cls) or ""
        block = doc.split("Attributes:", 1)[1] if "Attributes:" in doc else ""
        current = None
        for line in block.splitlines():
            match = re.match(r"^\s{4}(\w+): (.*)$", line)
            if match:
                current = match.group(1)
                meanings[current] = match.group(2).strip()
            elif current and line.startswith(" " * 8):
                meanings[current] += " " + line.strip()
            elif line.strip() and not line.startswith(" "):
                break
    return {key: _first_sentence(text) for key, text in meanings.items()}


def _first_sentence(text: str) -> str:
    """The text up to its first full stop or semicolon outside parentheses, without reST markup."""
    text = re.sub(r":\w+:`([^`]+)`", r"\1", text).replace("``", "")
    depth = 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and char in ".;" and (i + 1 == len(text) or text[i + 1] == " "):
            return text[:i]
    return text


def describe_model(reference: str, tracking_uri: str | None = None) -> dict[str, Any]:
    """A model's facts and serving settings (see the module's docstring), for ``flair-mlflow inspect``."""
    path = locate_reference(reference, tracking_uri=tracking_uri)
    if (path / MANIFEST_FILE).is_file():  # a bundle: no MLmodel, no model_config
        manifest, _ = read_manifest(path)
        return {"model": reference, **_facts(manifest), "model_config": None, "params": None}
    from mlflow.models import Model

    mlmodel = Model.load(str(path))
    flavor = mlmodel.flavors[FLAVOR_NAME]
    manifest, _ = read_manifest(Path(path) / flavor.get("bundle", "bundle"))
    logged = dict(mlmodel.flavors.get("python_function", {}).get("config") or {})
    defaults = {
        **RuntimeOptions.from_dict(manifest["runtime"]).to_dict(),
        **dataclasses.asdict(ServingOptions()),
    }
    meanings = setting_meanings()
    settings = {
        key: {"value": logged.get(key, default), "default": default, "meaning": meanings.get(key, "")}
        for key, default in defaults.items()
    }
    # batch_invariant null means "as length_buckets": what is in force beside what was logged
    runtime = RuntimeOptions.from_dict({key: settings[key]["value"] for key in RuntimeOptions.from_dict({}).to_dict()})
    settings["batch_invariant"]["in_force"] = runtime.invariant_batches
    params = None
    if mlmodel.signature is not None and mlmodel.signature.params is not None:
        # the request params the model takes (the signature declares every task's params and the serving settings
        # too, only so that a request setting one is refused by name)
        own = request_params(
            manifest.get("task") or SEQUENCE_TAGGING, zero_shot=manifest.get("model_class") in ZERO_SHOT_MODELS
        )
        params = {p.name: p.default for p in mlmodel.signature.params.params if p.name in own}
    facts = _facts(manifest)
    served = flavor.get("serving_path")  # the MLmodel's: its model_config may set serving_path
    if served and served != facts["serving_path"]:
        facts["serving_path"] = served
        facts["serving_path_reason"] = f"the model's model_config sets serving_path: {logged.get('serving_path')}"
    return {"model": reference, **facts, "model_config": settings, "params": params}


def _facts(manifest: dict[str, Any]) -> dict[str, Any]:
    parity = manifest.get("parity") or {}
    facts = {
        "model_class": manifest.get("model_class"),
        "task": manifest.get("task"),
        "backend": manifest.get("backend"),
        "parity": {k: parity[k] for k in ("sentences", "identical_sentences", "passed") if k in parity} or None,
        # lean: ONNX Runtime + tokenizers, no Flair or torch (issue 25); flair: Flair's code, and why
        "serving_path": manifest.get("serving_path", "flair"),
    }
    if facts["serving_path"] != LEAN:
        facts["serving_path_reason"] = flair_path_reason(manifest)
    if manifest.get("tasks"):
        facts["tasks"] = [t["name"] for t in manifest["tasks"]]
    return facts
