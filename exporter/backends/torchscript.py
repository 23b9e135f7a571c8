"""TorchScript backend: the transformer encoder traced with ``torch.jit.trace``, stored as its own file.

The traced module is a TorchScript archive (``encoder.ts``) in the bundle, not bytes inside the Flair
pickle, and is rebuilt with ``torch.jit.load`` on load. The manifest's ``torchscript`` section records the
file, whether it was traced at the model's maximum length, and whether it was frozen.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from exporter.backends import charlm_bundle, torchscript_charlm
from exporter.backends.encoder_bundle import assemble_model, export_bundle_files, manifest_entries
from exporter.backends.kinds import CHAR_LMS, SURFACE, has_one_transformer
from exporter.backends.tracing import HiddenStates, quiet_tracing, trace_inputs
from exporter.config import ExportConfig, RuntimeOptions
from exporter.errors import ConfigError, ExportError
from exporter.runtime.settings import EmbeddingSettings

__all__ = [*SURFACE, "ENCODER_FILE", "TorchScriptEncoder", "export_encoder"]

log = logging.getLogger(__name__)

ENCODER_FILE = "encoder.ts"
SECTION = "torchscript"
MODEL_PICKLE_ALWAYS = False
PICKLE_REASON = ""
#: an encoder bundle's model.pt holds no embeddings (None); a character-LM bundle's Flair's plain-data ones
DATA_EMBEDDINGS: tuple[str | None, ...] = (None, *charlm_bundle.DATA_EMBEDDINGS)


def export(model: Any, directory: Path, config: ExportConfig) -> dict[str, Any]:
    """Trace the encoder; write it, the tokenizer and the slimmed Flair model; return the manifest's additions.
    A model without one transformer but with Flair's character language models gets those scripted instead."""
    if not has_one_transformer(model):
        return _export_char_lms(model, directory, config)
    if config.torchscript.quantize:
        raise ConfigError(
            "TorchScript quantize='int8' quantizes Flair's character language models; this model's transformer "
            "encoder is quantized by the onnx backend's recipes (backend='onnx', quantize='int8').",
            option="quantize",
        )
    settings, exported = export_bundle_files(model, directory, config, export_encoder)
    if config.torchscript.force_max_length:
        settings = replace(settings, force_max_length=True)
    return manifest_entries(settings, SECTION, {"model_file": ENCODER_FILE, **exported})


def load(
    directory: Path, manifest: Mapping[str, Any], runtime: RuntimeOptions, state: dict[str, Any], model_cls: type
) -> Any:
    """The Flair model around the bundle's TorchScript encoder (or with its scripted character language models)."""
    if CHAR_LMS in manifest[SECTION]:
        lms = {
            entry["file"]: torchscript_charlm.TorchScriptCharLM(directory / entry["file"], entry, runtime)
            for entry in manifest[SECTION][CHAR_LMS]
        }
        return charlm_bundle.assemble_char_lm_model(state, model_cls, lms)
    encoder = TorchScriptEncoder(directory / manifest[SECTION]["model_file"])
    return assemble_model(directory, manifest, runtime, state, model_cls, encoder)


def _export_char_lms(model: Any, directory: Path, config: ExportConfig) -> dict[str, Any]:
    """Each of the model's ``FlairEmbeddings`` language models as a TorchScript archive, the rest Flair's own."""
    if config.torchscript.force_max_length:
        raise ConfigError(
            "force_max_length pads a transformer's subtokens to the tokenizer's maximum; character language "
            "models run at each text's own length: leave force_max_length unset.",
            option="force_max_length",
        )
    entries = charlm_bundle.export_char_lm_files(model, directory, config, "ts", torchscript_charlm.export_char_lm)
    return charlm_bundle.manifest_entries(SECTION, entries, frozen=config.torchscript.freeze)


def export_encoder(
    embeddings: Any, settings: EmbeddingSettings, directory: Path, config: ExportConfig
) -> dict[str, Any]:
    """Trace the encoder into ``directory/encoder.ts``."""
    # trace a CPU copy: a graph traced on CUDA keeps device constants, and the bundle loads on the CPU
    model = embeddings.model
    if next(model.parameters()).device.type != "cpu":
        model = copy.deepcopy(model).cpu()
    wrapper = HiddenStates(model, settings.hidden_state_layers).eval()
    input_ids, attention_mask = trace_inputs(
        embeddings,
        list(config.example_sentences),
        pad_to=settings.model_max_length if config.torchscript.force_max_length else None,
    )
    started = time.perf_counter()
    try:
        with torch.no_grad(), quiet_tracing():
            traced = torch.jit.trace(wrapper, (input_ids, attention_mask), strict=False, check_trace=False)
            traced = torch.jit.freeze(traced.eval()) if config.torchscript.freeze else traced
        torch.jit.save(traced, str(directory / ENCODER_FILE))
    except Exception as e:  # tracing raises assorted errors on untraceable models
        raise ExportError(
            f"torch.jit.trace failed for the encoder of {settings.name!r}: {e}. Use backend='onnx' or 'torch'."
        ) from e
    log.info("Traced the encoder to TorchScript in %.1f s", time.perf_counter() - started)
    return {
        "files": [ENCODER_FILE],
        "force_max_length": config.torchscript.force_max_length,
        "frozen": config.torchscript.freeze,
    }


class TorchScriptEncoder:
    """Runs the traced encoder; thread-safe."""

    def __init__(self, path: Path) -> None:
        self.module = torch.jit.load(str(path), map_location="cpu").eval()

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[torch.Tensor]:
        # The profiling executor re-specializes the graph for every new input shape, and sentence batches
        # rarely repeat a shape: plain execution of the frozen graph is steadier and faster here.
        with torch.inference_mode(), torch.jit.optimized_execution(False):
            return list(self.module(input_ids, attention_mask))
