"""Quantization recipes for an exported encoder graph, one function each, found through :data:`RECIPES`.

A recipe reads ``encoder.onnx`` (with any external data), writes the quantized graph back under the same
name and returns what the manifest records under ``onnx.quantization``. Adding a recipe means one function
and one entry in :data:`RECIPES` (and its name among ``OnnxOptions.quantize``'s choices).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from exporter.backends.onnx_graph import needs_external_data, save_graph
from exporter.config import OnnxOptions
from exporter.errors import ConfigError, ExportError

__all__ = ["RECIPES", "quantize_graph"]

log = logging.getLogger(__name__)

_SCRATCH = "quantized.onnx"


class _DropQuantizerChatter(logging.Filter):
    """ONNX Runtime's quantizer logs every tensor at INFO on the root logger: keep its warnings only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or "onnxruntime" not in record.pathname.replace("\\", "/")


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """Within the block, the root logger drops the quantizer's INFO records (and nobody else's)."""
    root = logging.getLogger()
    chatter = _DropQuantizerChatter()
    root.addFilter(chatter)
    try:
        yield
    finally:
        root.removeFilter(chatter)


def _dynamic_int8(target: Path, output: Path, options: OnnxOptions, external: bool) -> dict[str, Any]:
    """Weights int8 (per channel or per tensor), activations quantized per call from their own range."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(target),
        str(output),
        weight_type=QuantType.QInt8,
        per_channel=options.per_channel,
        use_external_data_format=external,
        # without it ORT 1.32 fails on these graphs ("Unable to find data type for weight_name=...")
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return {"type": "int8", "method": "dynamic", "weight_type": "QInt8", "per_channel": options.per_channel}


#: recipe name (``OnnxOptions.quantize``) -> function(graph, output, options, external) -> manifest record
RECIPES: Mapping[str, Callable[[Path, Path, OnnxOptions, bool], dict[str, Any]]] = {
    "int8": _dynamic_int8,
}


def quantize_graph(target: Path, options: OnnxOptions) -> dict[str, Any]:
    """Quantize ``target`` in place with the recipe ``options.quantize`` names."""
    import onnx

    recipe = RECIPES.get(options.quantize)
    if recipe is None:
        raise ConfigError(f"Unknown quantization {options.quantize!r}; choose one of {', '.join(RECIPES)}.")
    started = time.perf_counter()
    output = target.parent / (_SCRATCH + ".tmp")
    try:
        with _quiet_quantizer():
            record = recipe(target, output, options, needs_external_data(target.parent, options))
    except ExportError:
        raise
    except Exception as e:  # the quantizer raises assorted errors on graphs it cannot handle
        raise ExportError(f"{options.quantize} quantization failed: {e}") from e
    model = onnx.load(str(output))
    for path in output.parent.iterdir():
        if path.name.startswith(_SCRATCH):
            path.unlink()
    save_graph(model, target, options.external_data)
    log.info(
        "Quantized the encoder (%s, %s weights) in %.1f s",
        options.quantize,
        "per-channel" if options.per_channel else "per-tensor",
        time.perf_counter() - started,
    )
    return record
