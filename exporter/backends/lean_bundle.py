"""What a bundle needs to serve lean (``exporter.runtime.lean``), written at export beside ``model.pt``.

For a ``SequenceTagger`` (linear or CRF head, with or without the reprojection layer, with or without Flair's
(Bi)LSTM) or a ``TextClassifier`` on one transformer, exported to ONNX: the head's weights in ``head.safetensors`` (plain tensors, covered by the manifest's
checksums like every file), and the manifest's ``lean`` section (labels, the head's settings, the tokenizer's file
and padding id). Where the lean path could not answer exactly as Flair's model, nothing is written and
:func:`lean_files` says why (the manifest records it: the bundle then serves with Flair's code).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exporter.config import FLAIR, LEAN, RuntimeOptions
from exporter.errors import ConfigError
from exporter.runtime.lean.model import LEAN_FORMAT, LEAN_SECTION
from exporter.runtime.settings import EmbeddingSettings, find_transformer_embeddings

__all__ = ["HEAD_FILE", "lean_blockers", "lean_files"]

HEAD_FILE = "head.safetensors"
TOKENIZER_FILE = "tokenizer/tokenizer.json"
#: the lean path's model classes and the linear layers of their heads, in the order they run
_HEADS = {"SequenceTagger": ("embedding2nn", "linear"), "TextClassifier": ("decoder",)}


def lean_blockers(model: Any, settings: EmbeddingSettings, directory: Path, precision: str) -> list[str]:
    """Why the lean path could not answer exactly as ``model`` does (empty: it can)."""
    import torch

    name = type(model).__name__
    if name not in _HEADS or type(model).__module__.split(".")[0] != "flair":
        return [f"a {name} (lean serving covers SequenceTagger and TextClassifier on one transformer)"]
    reasons = []
    embeddings = find_transformer_embeddings(model)
    if getattr(model, "embeddings", None) is not embeddings:
        reasons.append("the transformer is not the model's only embeddings")
    if name == "SequenceTagger":
        if getattr(model, "use_rnn", False):
            rnn = model.rnn
            if type(rnn) is not torch.nn.LSTM or rnn.proj_size or not rnn.bias or not rnn.batch_first:
                reasons.append(f"a recurrent layer other than Flair's LSTM ({type(rnn).__name__}) before the head")
        if not settings.is_token_embedding:
            reasons.append("a tagger over document embeddings")
    elif settings.is_token_embedding or not settings.is_document_embedding:
        reasons.append("a classifier over word embeddings")
    elif settings.allow_long_sentences and settings.cls_pooling == "cls" and embeddings.initial_cls_token:
        reasons.append(
            "cls pooling over long-sentence windows (Flair gives a long text's window vectors to other texts of "
            "its batch)"
        )
    for layer in _head_layers(model):
        if type(getattr(model, layer)) is not torch.nn.Linear:
            reasons.append(f"a {type(getattr(model, layer)).__name__} as its {layer} layer")
    if settings.force_max_length:
        reasons.append("static shapes (force_max_length)")
    if precision != "fp32":
        reasons.append(f"a {precision} graph")
    tokenizer = embeddings.tokenizer
    if not getattr(tokenizer, "is_fast", False) or not (directory / TOKENIZER_FILE).is_file():
        reasons.append("a tokenizer without a fast (Rust) version")
    if getattr(tokenizer, "padding_side", "right") != "right":
        reasons.append("a tokenizer that pads on the left")
    return reasons


def _head_layers(model: Any) -> list[str]:
    """The head's linear layers that run (a tagger's reprojection only where ``reproject_embeddings`` is set)."""
    layers = _HEADS.get(type(model).__name__, ())
    if "embedding2nn" in layers and not getattr(model, "reproject_embeddings", False):
        layers = tuple(layer for layer in layers if layer != "embedding2nn")
    return [layer for layer in layers if hasattr(model, layer)]


def lean_files(
    model: Any, settings: EmbeddingSettings, directory: Path, precision: str, runtime: RuntimeOptions
) -> dict[str, Any]:
    """Write the lean files into ``directory`` where the model can serve lean; return the manifest's additions
    (``serving_path``, its reason where it is Flair's, the ``lean`` section)."""
    blockers = lean_blockers(model, settings, directory, precision)
    if blockers and runtime.serving_path == LEAN:
        raise ConfigError(
            f"serving_path='lean' cannot serve this model exactly: {'; '.join(blockers)}. Leave serving_path at "
            "'auto' (the Flair path serves it).",
            "serving_path",
        )
    if blockers:
        return {"serving_path": FLAIR, "serving_path_reason": "; ".join(blockers)}
    section = _write_head(model, settings, directory)
    if runtime.serving_path == FLAIR:
        return {"serving_path": FLAIR, "serving_path_reason": "serving_path='flair' asked for", LEAN_SECTION: section}
    return {"serving_path": LEAN, LEAN_SECTION: section}


def _write_head(model: Any, settings: EmbeddingSettings, directory: Path) -> dict[str, Any]:
    from safetensors.numpy import save

    layers = _head_layers(model)
    tensors = {}
    for layer in layers:
        module = getattr(model, layer)
        tensors[f"{layer}.weight"] = module.weight.detach().cpu().float().numpy().copy()
        if module.bias is not None:
            tensors[f"{layer}.bias"] = module.bias.detach().cpu().float().numpy().copy()
    embeddings = find_transformer_embeddings(model)
    tokenizer = embeddings.tokenizer
    section: dict[str, Any] = {
        "format": LEAN_FORMAT,
        "head_file": HEAD_FILE,
        "tokenizer_file": TOKENIZER_FILE,
        "pad_id": int(tokenizer.pad_token_id or 0),
        "truncation_side": str(getattr(tokenizer, "truncation_side", "right")),
        "label_type": model.label_type,
        "labels": list(model.label_dictionary.get_items()),
        "layers": layers,
    }
    if type(model).__name__ == "SequenceTagger":
        section["kind"] = "tagger"
        if model.use_rnn:  # PyTorch's names: weight_ih_l0, weight_hh_l0_reverse, ...
            tensors.update(
                {f"rnn.{k}": v.detach().cpu().float().numpy().copy() for k, v in model.rnn.state_dict().items()}
            )
            section["rnn"] = {"layers": int(model.rnn.num_layers), "bidirectional": bool(model.rnn.bidirectional)}
        section["use_crf"] = bool(model.use_crf)
        section["predict_spans"] = bool(model.predict_spans)
        if model.use_crf:
            tensors["crf.transitions"] = model.crf.transitions.detach().cpu().float().numpy().copy()
            section["start_tag"] = int(model.viterbi_decoder.start_tag)
            section["stop_tag"] = int(model.viterbi_decoder.stop_tag)
    else:
        section["kind"] = "classifier"
        section["multi_label"] = bool(model.multi_label)
        section["multi_label_threshold"] = {str(k): float(v) for k, v in model.multi_label_threshold.items()}
        section["initial_cls_token"] = bool(embeddings.initial_cls_token)
    # written by Python, not by safetensors' save_file (which creates the file 0600): the umask's permissions
    (directory / HEAD_FILE).write_bytes(save(tensors))
    return section
