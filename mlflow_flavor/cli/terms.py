"""Errors said in the caller's terms: the library names an option as Python spells it (``backend='torch'``,
``OnnxOptions(quantize="int8")``); a command-line user needs ``--backend torch``, and a user of the MLflow
project ``-P backend=torch``. :func:`in_cli_terms` rewrites a message for either."""

from __future__ import annotations

import re

__all__ = ["PARAM_FLAGS", "PROJECT_PARAMETERS", "in_cli_terms", "params_in_cli_terms"]

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


#: the pyfunc's request params as ``flair-mlflow predict`` takes them (``output`` has no flag: it shapes JSON)
PARAM_FLAGS = {
    "mini_batch_size": "--mini-batch-size",
    "return_tokens": "--return-tokens",
    "min_score": "--min-score",
    "top_k": "--top-k",
    "split_sentences": "--split-sentences",
    "candidate_labels": "--label",
}


def params_in_cli_terms(message: str) -> str:
    """A pyfunc refusal as ``flair-mlflow predict`` says it: each param by its flag (``'top_k'`` -> ``--top-k``),
    the list of a model's params as flags, without ``output``."""
    message = re.sub(r"'(\w+)'", lambda m: PARAM_FLAGS.get(m.group(1), m.group(0)), message)

    def flags(match: re.Match) -> str:
        names = [n.strip() for n in match.group(2).split(",")]
        return match.group(1) + ", ".join(PARAM_FLAGS[n] for n in names if n in PARAM_FLAGS)

    return re.sub(r"((?:its|allowed|this model's) parameters: )([\w, ]+)", flags, message)


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
        message = re.sub(rf"(?<![\w./\\-]){python}(?![\w=./\\])", name, message)  # not inside a path
    return message
