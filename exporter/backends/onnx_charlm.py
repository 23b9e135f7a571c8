"""The ``onnx`` backend for Flair's character language models: each ``FlairEmbeddings`` language model (its
character embedding, its LSTM and, where it has one, its projection) as one ONNX graph with the LSTM's state
as input and output, so that a long text runs in chunks as Flair runs it; int8 through ONNX Runtime's
``DynamicQuantizeLSTM``. The rest of the model stays Flair's (see ``charlm_bundle``)."""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from exporter.backends import onnx_quantize
from exporter.backends.charlm_bundle import CharLMRunner, LanguageModelGraph
from exporter.backends.tracing import quiet_tracing
from exporter.config import ExportConfig, RuntimeOptions
from exporter.errors import ConfigError, ExportError, MissingDependencyError

__all__ = ["INPUT_NAMES", "OUTPUT_NAMES", "OrtCharLM", "check_char_lm_options", "export_char_lm"]

log = logging.getLogger(__name__)

INPUT_NAMES = ("chars", "h0", "c0")
OUTPUT_NAMES = ("outputs", "h", "c")
#: a step's fixed cost (reading the LSTM's weights) in rows, for the length buckets. On the ner-english shape
#: (hidden 2048) at 2 threads, ONNX Runtime's LSTM runs a step of 1 row in 1.9 ms and each further row adds
#: 0.3 ms (fp32; int8 0.19 ms and 0.12 ms), but whole taggers over 128 WikiANN sentences at batch 32 ran
#: fastest with fp32 12-24 (9.5 sentences/s at 6, 11.1 at 12 and 24, 5.0 as one group) and int8 0.5-3
STEP_COST = {"fp32": 16.0, "int8": 1.5}


def check_char_lm_options(config: ExportConfig) -> None:
    """Refuse the ONNX options that apply to transformer encoders only, naming what does apply."""
    options = config.onnx
    if options.optimize:
        raise ConfigError(
            f"optimize={options.optimize!r} runs ONNX Runtime's transformer optimizer, which has nothing to fuse in a "
            "character language model's LSTM (ONNX Runtime optimizes its graph when the session starts): "
            "leave optimize unset.",
            option="optimize",
        )
    if options.external_data:
        raise ConfigError(
            "external_data keeps a graph's weights beside it for graphs over protobuf's 2 GB; a character "
            "language model's graph is far smaller (70 MB for hidden size 2048): leave external_data unset.",
            option="external_data",
        )
    if options.precision != "fp32":
        raise ConfigError(
            f"precision={options.precision!r} is not available for character language models; export fp32, "
            "or quantize='int8' for a faster, lossy LSTM.",
            option="precision",
        )


def export_char_lm(lm: Any, target: Path, config: ExportConfig) -> dict[str, Any]:
    """Write ``lm`` as an ONNX graph to ``target``, int8 where ``config.onnx.quantize`` asks; return what was done."""
    try:
        import onnx
    except ImportError as e:
        raise MissingDependencyError("onnx", purpose="the ONNX backend") from e
    started = time.perf_counter()
    graph = LanguageModelGraph(lm).eval()
    rows = 2
    chars = torch.zeros((5, rows), dtype=torch.long)
    state = torch.zeros((lm.nlayers, rows, lm.hidden_size))
    try:
        with torch.no_grad(), quiet_tracing(), warnings.catch_warnings():
            # "... define the initial states (h0/c0) as inputs of the model": the graph does
            warnings.filterwarnings("ignore", message=".*LSTM can cause an error.*", category=UserWarning)
            torch.onnx.export(
                graph,
                (chars, state, state.clone()),
                str(target),
                input_names=list(INPUT_NAMES),
                output_names=list(OUTPUT_NAMES),
                dynamic_axes={
                    "chars": {0: "steps", 1: "rows"},
                    "outputs": {0: "steps", 1: "rows"},
                    **{name: {1: "rows"} for name in ("h0", "c0", "h", "c")},
                },
                opset_version=config.onnx.opset,
                do_constant_folding=True,
                dynamo=False,
            )
        onnx.checker.check_model(str(target))
    except Exception as e:  # torch and the checker raise many unrelated types here
        raise ExportError(f"Exporting the character language model to ONNX failed: {e}. Try backend='torch'.") from e
    quantization = None
    if config.onnx.quantize:
        quantization = onnx_quantize.quantize_graph(
            target,
            config.onnx,
            onnx_quantize.CHAR_LM_RECIPES,
            default=onnx_quantize.CHAR_LM_DEFAULT,
            what="a character language model",
        )
    log.info(
        "Exported the %s character language model in %.1f s (%.1f MB)",
        "forward" if lm.is_forward_lm else "backward",
        time.perf_counter() - started,
        target.stat().st_size / 1e6,
    )
    return {"quantization": quantization}


class OrtCharLM(CharLMRunner):
    """A character language model in an ONNX Runtime session: a :data:`exporter.runtime.charlm.CharLM`."""

    def __init__(
        self, path: Path, entry: dict[str, Any], runtime: RuntimeOptions, session_options: Any, providers: list[str]
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise MissingDependencyError("onnxruntime", purpose="the ONNX backend") from e
        super().__init__(entry, runtime, STEP_COST)
        self.session = ort.InferenceSession(str(path), session_options, providers=providers)

    def __call__(self, chars: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        if state is None:
            zeros = np.zeros((self.layers, chars.shape[1], self.state_size), dtype=np.float32)
            state = (zeros, zeros)
        outputs, h, c = self.session.run(list(OUTPUT_NAMES), {"chars": chars, "h0": state[0], "c0": state[1]})
        return outputs, (h, c)
