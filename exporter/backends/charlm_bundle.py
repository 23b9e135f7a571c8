"""What a backend does with a model whose ``FlairEmbeddings`` it accelerates: each character language model is
exported alone (by the backend: an ONNX graph, a TorchScript module) and the rest of the Flair model (word
embeddings, the stack, the BiLSTM, the CRF, the dictionaries) stays Flair's own, in a ``model.pt`` that holds
everything but the language models' weights.

Writing: :func:`export_char_lm_files` finds the ``FlairEmbeddings`` (anywhere in the model's embeddings: alone, in
a stack, under a document RNN or pool), has the backend export each language model, and writes ``model.pt``
with each ``FlairEmbeddings`` entry renamed :data:`exporter.runtime.charlm.EMBEDDINGS_NAME` and pointing at its
file. Loading: :func:`assemble_char_lm_model` lets Flair's own loader rebuild the model, the language models
bound by file name.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from exporter.backends.kinds import CHAR_LMS
from exporter.errors import ExportError, UnsupportedModelError
from exporter.format.modelfile import (
    MODEL_FILE,
    PICKLE_WEIGHTS_ONLY,
    PLAIN_EMBEDDINGS,
    embeddings_key,
    model_state,
    plain_state,
)
from exporter.runtime.charlm import EMBEDDINGS_NAME, CharLM, CharLMEmbeddings, char_lms_bound, lm_params
from exporter.runtime.fastpath import FastViterbiDecoder, skip_padding_rows

__all__ = [
    "CharLMRunner",
    "DATA_EMBEDDINGS",
    "LM_FILE_STEM",
    "LanguageModelGraph",
    "assemble_char_lm_model",
    "char_lm_embeddings",
    "export_char_lm_files",
    "manifest_entries",
]

#: a character-LM bundle's model.pt holds Flair's plain-data embeddings, each FlairEmbeddings renamed
DATA_EMBEDDINGS: tuple[str, ...] = (*PLAIN_EMBEDDINGS, EMBEDDINGS_NAME)
#: the language models' files are ``charlm-0.<suffix>``, ``charlm-1.<suffix>``, ... in the model's order
LM_FILE_STEM = "charlm"


class LanguageModelGraph(torch.nn.Module):
    """Flair's ``LanguageModel.forward(decode=False)`` in eval mode, what a backend exports: characters and the
    LSTM's state in, outputs and state out (so that a long text runs in chunks, the state carried)."""

    def __init__(self, lm: Any) -> None:
        super().__init__()
        if not isinstance(lm.rnn, torch.nn.LSTM):
            raise UnsupportedModelError(
                f"The character language model's recurrent layer is a {type(lm.rnn).__name__}; flair-mlflow exports "
                "LSTM language models (all of Flair's published ones). Use backend='torch'."
            )
        self.encoder = lm.encoder
        self.rnn = lm.rnn
        self.proj = lm.proj

    def forward(self, chars, h0, c0):
        outputs, (h, c) = self.rnn(self.encoder(chars), (h0, c0))
        if self.proj is not None:
            outputs = self.proj(outputs)
        return outputs, h, c


class CharLMRunner:
    """What every backend's loaded language model carries for :class:`CharLMEmbeddings`: its shape (from its
    manifest ``entry``), the fixed cost of a step in rows (``step_costs`` by ``fp32`` / ``int8``) and the
    runtime's ``length_buckets`` and ``max_call_rows``. Subclasses are the :data:`CharLM` callables."""

    def __init__(self, entry: Mapping[str, Any], runtime: Any, step_costs: Mapping[str, float]) -> None:
        self.layers = int(entry["layers"])
        self.state_size = int(entry["state_size"])
        self.step_cost = step_costs["int8" if entry.get("quantization") else "fp32"]
        self.buckets = runtime.length_buckets
        self.max_rows = runtime.max_call_rows


def char_lm_embeddings(model: Any) -> list[tuple[str, Any]]:
    """The model's ``FlairEmbeddings`` (Flair's class itself, not a subclass), with their module paths, in the
    order of the model's modules; refuses a model loaded from a bundle."""
    from flair.embeddings import FlairEmbeddings

    found = []
    for path, module in model.named_modules():
        if isinstance(module, CharLMEmbeddings):
            raise UnsupportedModelError(
                "This model was loaded from a flair-mlflow bundle and is already accelerated; "
                "log the bundle directory itself instead of exporting it again."
            )
        if type(module) is FlairEmbeddings:
            found.append((path, module))
    return found


def export_char_lm_files(
    model: Any,
    directory: Path,
    config: Any,
    suffix: str,
    export_lm: Callable[[Any, Path, Any], dict[str, Any]],
) -> list[dict[str, Any]]:
    """Export every character language model of ``model`` (``export_lm(lm, target, config)`` writes ``target``
    and returns what it did) and write the Flair model without their weights.

    Returns:
        One entry per language model: its file, the embeddings' name, direction and shape, what the export did.
    """
    found = char_lm_embeddings(model)
    if not found:
        raise UnsupportedModelError(f"The {type(model).__name__} has no FlairEmbeddings to export.")
    entries = []
    for number, (_path, embeddings) in enumerate(found):
        lm = embeddings.lm
        # each in a folder of its own: the graph tools treat a graph's folder as holding only that graph
        scratch = directory / f"{LM_FILE_STEM}-{number}.export"
        scratch.mkdir()
        target = scratch / f"{LM_FILE_STEM}-{number}.{suffix}"
        done = export_lm(lm, target, config)
        for path in scratch.iterdir():
            os.replace(path, directory / path.name)
        scratch.rmdir()
        entries.append(
            {
                "file": target.name,
                "name": embeddings.name,
                "forward": bool(lm.is_forward_lm),
                "layers": int(lm.nlayers),
                "state_size": int(lm.hidden_size),
                "width": int(embeddings.embedding_length),
                **done,
            }
        )
    _write_model_file(model, found, [e["file"] for e in entries], directory)
    return entries


def _write_model_file(model: Any, found: list[tuple[str, Any]], files: list[str], directory: Path) -> None:
    """``model.pt``: Flair's state with each ``FlairEmbeddings`` entry pointing at its exported language model
    and without the language models' weights, as plain data."""
    state = model_state(model)
    key = embeddings_key(state)
    entries = list(_flair_embedding_entries(state[key]))
    if len(entries) != len(found):
        raise ExportError(
            f"Found {len(found)} FlairEmbeddings in the model but {len(entries)} in its saved state: "
            "cannot tell which exported language model belongs where."
        )
    for entry, (_path, embeddings), file in zip(entries, found, files):
        if entry.get("name") != embeddings.name:
            raise ExportError(
                f"The model's saved state names the embeddings {entry.get('name')!r} where the model has "
                f"{embeddings.name!r}: cannot tell which exported language model belongs where."
            )
        entry.clear()
        entry.update(lm_params(embeddings))
        entry["__cls__"] = EMBEDDINGS_NAME
        entry["lm_file"] = file
    prefixes = tuple(f"{path}.lm." for path, _ in found)
    state["state_dict"] = OrderedDict((k, v) for k, v in state["state_dict"].items() if not k.startswith(prefixes))
    torch.save(plain_state(state), directory / MODEL_FILE)  # protocol 2: what torch.load(weights_only=True) reads


def _flair_embedding_entries(entry: Any) -> Iterator[dict[str, Any]]:
    """The ``FlairEmbeddings`` entries of a saved embeddings state, depth first in the order Flair saves them."""
    if isinstance(entry, dict):
        if entry.get("__cls__") == "FlairEmbeddings":
            yield entry
            return
        for value in entry.values():
            yield from _flair_embedding_entries(value)
    elif isinstance(entry, (list, tuple)):
        for value in entry:
            yield from _flair_embedding_entries(value)


def manifest_entries(section_key: str, entries: list[dict[str, Any]], **details: Any) -> dict[str, Any]:
    """What a backend adds to the manifest for a model with exported character language models: its section
    (``entries`` as :func:`export_char_lm_files` returned them, their files, the quantization if any, and the
    backend's own ``details``) and the model file's kind."""
    section = {
        CHAR_LMS: entries,
        "files": [e["file"] for e in entries],
        "quantization": next((e["quantization"] for e in entries if e["quantization"]), None),
        **details,
    }
    return {"model_pickle": PICKLE_WEIGHTS_ONLY, section_key: section}


def assemble_char_lm_model(state: dict[str, Any], model_cls: type, lms: Mapping[str, CharLM]) -> Any:
    """The Flair model of ``state`` with its language models ``lms`` (by file name), CRF decoding in numpy, the
    reprojection of a tagger's embeddings computed on real tokens only."""
    with char_lms_bound(lms):
        model = model_cls.load(state)
    if getattr(model, "reproject_embeddings", False) and type(getattr(model, "embedding2nn", None)) is torch.nn.Linear:
        skip_padding_rows(model.embedding2nn)
    if getattr(model, "use_crf", False) and hasattr(model, "viterbi_decoder"):
        model.viterbi_decoder = FastViterbiDecoder.replacing(model.viterbi_decoder)
    return model
