"""Errors said in the caller's terms: the library names an option as Python spells it (``backend='torch'``,
``OnnxOptions(quantize="int8")``); a command-line user needs ``--backend torch``, and a user of the MLflow
project ``-P backend=torch``. :func:`in_cli_terms` rewrites a message for either."""

from __future__ import annotations

import re

__all__ = ["PROJECT_PARAMETERS", "in_cli_terms"]

#: the export options the MLflow project's entry points take as ``-P`` parameters (see MLproject)
PROJECT_PARAMETERS = ("backend", "quantize", "optimize", "precision", "parity_sentences", "gold_conll")
#: ``name=value`` options with a value, as the export commands spell them
_VALUED = ("backend", "quantize", "precision", "optimize", "opset")
#: switches and option names written without a value
_FLAGS = {
    "force=True": "--force",
    "fp16_fallback=True": "--fp16-fallback",
    "strict_providers=True": "--strict-providers",
    "external_data=True": "--external-data",
    "force_max_length=True": "--force-max-length",
}
_NAMES = {
    "parity_sentences": "--parity-sentences",
    "gold_conll": "--gold-conll",
    "min_tag_agreement": "--min-agreement",
}


def in_cli_terms(message: str, project: bool = False) -> str:
    """``message`` with each Python spelling of an option replaced by the command line's (``project``: the MLflow
    project's ``-P name=value`` where the project has that parameter)."""

    def valued(name: str, value: str) -> str:
        return f"-P {name}={value}" if project and name in PROJECT_PARAMETERS else f"--{name} {value}"

    # a typed config around one setting says the setting alone: ParityConfig(force=True) -> --force
    message = re.sub(r"\b(?:ParityConfig|RuntimeOptions|ExportConfig)\((\w+=[^(),]+)\)", r"\1", message)
    message = re.sub(
        r"TorchScriptOptions\(quantize=(['\"])([\w-]+)\1\)",
        lambda m: f"{valued('backend', 'torchscript')} {valued('quantize', m.group(2))}",
        message,
    )
    message = re.sub(r"OnnxOptions\((\w+)=(['\"])([\w-]+)\2\)", lambda m: valued(m.group(1), m.group(3)), message)
    message = re.sub(rf"\b({'|'.join(_VALUED)})=(['\"])([\w-]+)\2", lambda m: valued(m.group(1), m.group(3)), message)
    for python, cli in _FLAGS.items():
        message = message.replace(python, cli)
    for python, cli in _NAMES.items():
        name = f"-P {python}" if project and python in PROJECT_PARAMETERS else cli
        message = re.sub(rf"(?<![\w-]){python}(?![\w=])", name, message)
    return message
