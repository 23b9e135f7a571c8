"""ONNX Runtime backend: the transformer encoder alone as an ONNX graph.

The graph takes ``input_ids`` and ``attention_mask`` (exactly what Flair passes to the model) with dynamic
batch and sequence axes and returns only the hidden states the embedding's ``layers`` setting uses. After
the export, ``onnx_graph`` optimizes or converts it and ``onnx_quantize`` quantizes it, as ``OnnxOptions``
say. The manifest's ``onnx`` section records the graph's files, opset, inputs and outputs, providers,
session options, precision, optimization and quantization.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from exporter.backends import charlm_bundle, onnx_charlm, onnx_graph, onnx_quantize
from exporter.backends.encoder_bundle import assemble_model, export_bundle_files, manifest_entries
from exporter.backends.kinds import CHAR_LMS, SURFACE, has_one_transformer
from exporter.backends.lean_bundle import lean_files
from exporter.backends.onnx_graph import save_graph
from exporter.backends.tracing import HiddenStates, quiet_tracing, trace_inputs
from exporter.config import CPU_PROVIDER, CUDA_PROVIDER, ExportConfig, RuntimeOptions, fp16_unavailable
from exporter.errors import ExportError, MissingDependencyError, ProviderError
from exporter.runtime.sessions import (
    check_session_providers,
    inference_session,
    provider_name,
    resolve_providers,
    session_options,
)
from exporter.runtime.settings import EmbeddingSettings

__all__ = [
    *SURFACE,
    "ENCODER_FILE",
    "OrtEncoder",
    "export_encoder",
    "check_session_providers",
    "provider_name",
    "resolve_providers",
    "session_options",
]

log = logging.getLogger(__name__)

ENCODER_FILE = "encoder.onnx"
INPUT_NAMES = ("input_ids", "attention_mask")
SECTION = "onnx"
MODEL_PICKLE_ALWAYS = False
PICKLE_REASON = ""
#: an encoder bundle's model.pt holds no embeddings (None); a character-LM bundle's Flair's plain-data ones
DATA_EMBEDDINGS: tuple[str | None, ...] = (None, *charlm_bundle.DATA_EMBEDDINGS)


def export(model: Any, directory: Path, config: ExportConfig) -> dict[str, Any]:
    """Export the encoder graph, the tokenizer and the slimmed Flair model; return the manifest's additions.
    A model without one transformer but with Flair's character language models gets those exported instead."""
    if not has_one_transformer(model):
        return _export_char_lms(model, directory, config)
    settings, exported = export_bundle_files(model, directory, config, export_encoder)
    section = {
        "model_file": ENCODER_FILE,
        "files": exported["files"],
        "opset": config.onnx.opset,
        "inputs": list(INPUT_NAMES),
        "outputs": output_names(settings),
        "providers": list(config.runtime.providers),
        "session_options": config.runtime.session_options_dict(),
        "precision": exported["precision"],
        "optimization": exported["optimization"],
        "quantization": exported["quantization"],
    }
    lean = lean_files(model, settings, directory, exported["precision"], config.runtime)
    return {**manifest_entries(settings, SECTION, section), **lean}


def load(
    directory: Path, manifest: Mapping[str, Any], runtime: RuntimeOptions, state: dict[str, Any], model_cls: type
) -> Any:
    """The Flair model around an ONNX Runtime session of the bundle's graph."""
    if CHAR_LMS in manifest[SECTION]:
        return _load_char_lms(directory, manifest, runtime, state, model_cls)
    if runtime.encoder_workers > 1 and runtime.intra_op_num_threads != 1:
        log.warning(
            "encoder_workers=%d runs that many encoder calls at once, each on intra_op_num_threads=%d "
            "threads (0: one per core): set intra_op_num_threads=1 so that they do not fight for the cores.",
            runtime.encoder_workers,
            runtime.intra_op_num_threads,
        )
    encoder = OrtEncoder(directory / manifest[SECTION]["model_file"], runtime)
    return assemble_model(directory, manifest, runtime, state, model_cls, encoder)


def _export_char_lms(model: Any, directory: Path, config: ExportConfig) -> dict[str, Any]:
    """Each of the model's ``FlairEmbeddings`` language models as an ONNX graph, the rest Flair's own."""
    onnx_charlm.check_char_lm_options(config)
    entries = charlm_bundle.export_char_lm_files(model, directory, config, "onnx", onnx_charlm.export_char_lm)
    return charlm_bundle.manifest_entries(
        SECTION,
        entries,
        opset=config.onnx.opset,
        inputs=list(onnx_charlm.INPUT_NAMES),
        outputs=list(onnx_charlm.OUTPUT_NAMES),
        providers=list(config.runtime.providers),
        session_options=config.runtime.session_options_dict(),
        precision="fp32",
        optimization=None,
    )


def _load_char_lms(
    directory: Path, manifest: Mapping[str, Any], runtime: RuntimeOptions, state: dict[str, Any], model_cls: type
) -> Any:
    """The Flair model with its character language models in ONNX Runtime sessions."""
    if runtime.encoder_workers > 1:
        log.warning(
            "encoder_workers=%d splits a transformer encoder's calls; this bundle's character language models run "
            "one call at a time (length_buckets and max_call_rows apply to them).",
            runtime.encoder_workers,
        )
    providers = resolve_providers(runtime.providers, runtime.strict_providers)
    options = session_options(runtime)
    lms = {}
    for entry in manifest[SECTION][CHAR_LMS]:
        lm = onnx_charlm.OrtCharLM(directory / entry["file"], entry, runtime, options, providers)
        check_session_providers(lm.session, providers, runtime.strict_providers)
        lms[entry["file"]] = lm
    return charlm_bundle.assemble_char_lm_model(state, model_cls, lms)


def output_names(settings: EmbeddingSettings) -> list[str]:
    return [f"hidden_state_{i}" for i in settings.hidden_state_layers]


def export_encoder(
    embeddings: Any, settings: EmbeddingSettings, directory: Path, config: ExportConfig
) -> dict[str, Any]:
    """Export the embedding's transformer encoder to ``directory/encoder.onnx``, then optimize, convert
    or quantize it as ``config.onnx`` says. Returns the files written and what was done to the graph."""
    options = config.onnx
    precision = _check_precision(config)
    target = directory / ENCODER_FILE
    started = time.perf_counter()
    _trace_graph(embeddings, settings, target, config)
    details: dict[str, Any] = {"precision": precision, "optimization": None, "quantization": None}
    if options.optimize:
        details["optimization"] = onnx_graph.optimize_graph(
            target, settings, replace(options, precision=precision), use_gpu=precision == "fp16"
        )
    elif precision == "fp16":
        onnx_graph.convert_fp16(target, options)
    if options.quantize:
        details["quantization"] = onnx_quantize.quantize_graph(target, options)

    files = sorted(p.name for p in directory.iterdir() if p.is_file())
    log.info(
        "Encoder ready in %.1f s: %s (%.1f MB)",
        time.perf_counter() - started,
        ", ".join(files),
        sum((directory / f).stat().st_size for f in files) / 1e6,
    )
    return {"files": files, **details}


def _trace_graph(embeddings: Any, settings: EmbeddingSettings, target: Path, config: ExportConfig) -> None:
    """``torch.onnx.export`` of the encoder into ``target``, checked, external data in one file if any."""
    try:
        import onnx
    except ImportError as e:
        raise MissingDependencyError("onnx", purpose="the ONNX backend") from e

    wrapper = HiddenStates(embeddings.model, settings.hidden_state_layers).eval()
    input_ids, attention_mask = trace_inputs(embeddings, list(config.example_sentences))
    device = next(embeddings.model.parameters()).device  # Flair puts models on CUDA when it can
    names = output_names(settings)
    started = time.perf_counter()
    try:
        with torch.no_grad(), quiet_tracing():
            torch.onnx.export(
                wrapper,
                (input_ids.to(device), attention_mask.to(device)),
                str(target),
                input_names=list(INPUT_NAMES),
                output_names=names,
                dynamic_axes={name: {0: "batch", 1: "sequence"} for name in (*INPUT_NAMES, *names)},
                opset_version=config.onnx.opset,
                do_constant_folding=True,
                dynamo=False,
            )
    except Exception as e:  # torch raises many unrelated types here
        raise ExportError(
            f"torch.onnx.export failed for the {settings.model_type or 'transformer'} encoder of {settings.name!r}: "
            f"{e}. Try another opset, or backend='torch'."
        ) from e
    log.info("Exported the encoder graph in %.1f s", time.perf_counter() - started)
    try:
        onnx.checker.check_model(str(target))
    except Exception as e:
        raise ExportError(f"The exported ONNX graph does not pass onnx.checker: {e}") from e
    if len(list(target.parent.iterdir())) > 1 or config.onnx.external_data:
        # torch writes one external-data file per large tensor: consolidate them into one
        save_graph(onnx.load(str(target)), target, external=True)


def _check_precision(config: ExportConfig) -> str:
    """fp16 needs the CUDA execution provider, here and in the recorded providers."""
    if config.onnx.precision != "fp16":
        return "fp32"
    unavailable = fp16_unavailable(config.runtime.providers, providers_named="the bundle's providers")
    if unavailable is None:
        return "fp16"
    why = f"precision='fp16' runs on ONNX Runtime's {CUDA_PROVIDER}, which {unavailable}"
    if config.onnx.fp16_fallback:
        log.warning("%s; exporting fp32 instead, as fp16_fallback asks.", why)
        return "fp32"
    raise ProviderError(
        f"{why}. Export fp16 on a machine with CUDA and providers=[{CUDA_PROVIDER!r}, {CPU_PROVIDER!r}], "
        "or set fp16_fallback to export fp32 instead."
    )


class OrtEncoder:
    """Runs the exported encoder in an ONNX Runtime session. Thread-safe, as ``InferenceSession.run`` is."""

    def __init__(self, model_path: Path, runtime: RuntimeOptions) -> None:
        self.session, self.providers = inference_session(model_path, runtime)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[torch.Tensor]:
        feeds = {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()}
        outputs = self.session.run(self.output_names, feeds)
        return [torch.from_numpy(o) for o in outputs]
