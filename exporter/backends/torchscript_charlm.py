"""The ``torchscript`` backend for Flair's character language models: each ``FlairEmbeddings`` language model
(character embedding, LSTM, projection) scripted and frozen as a TorchScript archive, fp32 or with PyTorch's
dynamic int8 quantization of its LSTM and projection (``TorchScriptOptions.quantize``). The rest of the model
stays Flair's (see ``charlm_bundle``).

Why both this and the ``onnx`` graphs: on a WikiANN-trained tagger of ner-english's shape, PyTorch's dynamic
int8 LSTM gave the same entities as the original on 500 of 500 sentences, ONNX Runtime's
``DynamicQuantizeLSTM`` on 435 (agreement 0.909); and at batch 32 PyTorch's fp32 LSTM is the faster one
(docs/BENCHMARKS.md)."""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from exporter.backends.charlm_bundle import CharLMRunner, LanguageModelGraph
from exporter.config import ExportConfig, RuntimeOptions
from exporter.errors import ExportError

__all__ = ["STEP_COST", "TorchScriptCharLM", "export_char_lm"]

log = logging.getLogger(__name__)

#: a step's fixed cost in rows, for the length buckets (see ``onnx_charlm.STEP_COST``): PyTorch's fp32 LSTM
#: on the ner-english shape runs a step of 1 row in 2.7 ms and each further row adds 0.2 ms; int8 0.31 and 0.14
STEP_COST = {"fp32": 12.0, "int8": 2.0}


def export_char_lm(lm: Any, target: Path, config: ExportConfig) -> dict[str, Any]:
    """Script ``lm`` (int8 where ``config.torchscript.quantize`` asks), freeze it and save it to ``target``."""
    started = time.perf_counter()
    graph = LanguageModelGraph(lm).eval()
    if next(graph.parameters()).device.type != "cpu":
        graph = graph.cpu()
    quantization = None
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # PyTorch announces the move of eager quantization to torchao on every call: nothing for the user
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", message=".*torchao.*")
            warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor.*deprecated", category=UserWarning)
            if config.torchscript.quantize:
                graph = torch.ao.quantization.quantize_dynamic(
                    graph, {torch.nn.LSTM, torch.nn.Linear}, dtype=torch.qint8
                )
                quantization = {
                    "type": "int8",
                    "recipe": "torch-dynamic",
                    "weight_type": "qint8",
                    "per_channel": False,
                    "engine": torch.backends.quantized.engine,
                    "batch_independent": False,
                }
            scripted = torch.jit.script(graph)
            scripted = torch.jit.freeze(scripted.eval()) if config.torchscript.freeze else scripted
            torch.jit.save(scripted, str(target))
    except Exception as e:  # scripting and quantization raise assorted errors
        raise ExportError(f"Scripting the character language model failed: {e}. Try backend='onnx' or 'torch'.") from e
    log.info(
        "Scripted the %s character language model%s in %.1f s (%.1f MB)",
        "forward" if lm.is_forward_lm else "backward",
        " (int8)" if quantization else "",
        time.perf_counter() - started,
        target.stat().st_size / 1e6,
    )
    return {"quantization": quantization}


class TorchScriptCharLM(CharLMRunner):
    """A scripted character language model: a :data:`exporter.runtime.charlm.CharLM`."""

    def __init__(self, path: Path, entry: dict[str, Any], runtime: RuntimeOptions) -> None:
        super().__init__(entry, runtime, STEP_COST)
        self.module = torch.jit.load(str(path), map_location="cpu").eval()

    def __call__(self, chars: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        if state is None:
            zeros = torch.zeros((self.layers, chars.shape[1], self.state_size))
            state = (zeros, zeros)
        # plain execution: the profiling executor would re-specialize for every new shape
        with torch.inference_mode(), torch.jit.optimized_execution(False):
            outputs, h, c = self.module(torch.from_numpy(chars), state[0], state[1])
        return outputs.numpy(), (h, c)
