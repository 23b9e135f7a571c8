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
from exporter.backends.onnx_per_token import quantize_per_token
from exporter.config import DEFAULT_INT8, OnnxOptions
from exporter.errors import ConfigError, ExportError, MissingDependencyError

__all__ = ["CHAR_LM_DEFAULT", "CHAR_LM_RECIPES", "RECIPES", "quantize_graph"]

log = logging.getLogger(__name__)

_SCRATCH = "quantized.onnx"
Recipe = Callable[[Path, OnnxOptions], tuple[Any, dict[str, Any]]]


class _DropQuantizerChatter(logging.Filter):
    """ONNX Runtime's quantizer logs every tensor at INFO on the root logger: keep its warnings only, but for its
    advice to run its own pre-processing script first, which concerns whoever writes the exporter, not its user."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "onnxruntime" not in record.pathname.replace("\\", "/"):
            return True
        return record.levelno >= logging.WARNING and "run pre-processing before quantization" not in record.getMessage()


#: ONNX Runtime's quantizers log every tensor at INFO through these loggers (and the root logger): hundreds
#: of lines per export ("skip to quantize /model/Shape ...") that concern nobody exporting a model
_QUANTIZER_LOGGERS = ("onnxruntime.quantization",)


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """Within the block, ONNX Runtime's quantizers keep their INFO records to themselves (warnings pass): those
    of its named loggers by their level (a logger's filter sees none of its children's records), those it logs on
    the root logger by a filter there."""
    root = logging.getLogger()
    chatter = _DropQuantizerChatter()
    root.addFilter(chatter)
    loggers = [logging.getLogger(name) for name in _QUANTIZER_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        root.removeFilter(chatter)
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _dynamic_int8(target: Path, options: OnnxOptions, op_types: list[str] | None = None) -> tuple[Any, dict[str, Any]]:
    """ONNX Runtime's dynamic quantization: weights int8 (per channel or per tensor), each MatMul's input
    quantized per call with one scale for the whole tensor, so a text's numbers depend on its batch.
    ``op_types``: the operators to quantize (default: every one ONNX Runtime can)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    output = target.parent / (_SCRATCH + ".tmp")
    try:
        quantize_dynamic(
            str(target),
            str(output),
            weight_type=QuantType.QInt8,
            per_channel=options.per_channel,
            op_types_to_quantize=op_types,
            use_external_data_format=needs_external_data(target.parent, options),
            # without it ORT 1.32 fails on these graphs ("Unable to find data type for weight_name=...")
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        model = onnx.load(str(output))
    finally:
        for path in target.parent.iterdir():
            if path.name.startswith(_SCRATCH):
                path.unlink()
    record = {"method": "dynamic", "weight_type": "QInt8", "per_channel": options.per_channel}
    return model, {**record, "batch_independent": False}


def _per_token_int8(target: Path, options: OnnxOptions) -> tuple[Any, dict[str, Any]]:
    """Weights int8 per output channel; each MatMul's input quantized per token (one scale per row, from that
    row alone), so a text's numbers never depend on what it is batched with. See ``onnx_per_token``."""
    import onnx

    model = onnx.load(str(target))
    count = quantize_per_token(model)
    return model, {
        "method": "per-token",
        "weight_type": "QInt8",
        "per_channel": True,
        "batch_independent": True,
        "matmuls": count,
    }


def _purpose(options: OnnxOptions) -> str:
    """``quantize`` as the user gave it, and the recipe it ran where that differs (``int8``)."""
    given = f"quantize={options.quantize!r}"
    return given if options.quantize == options.recipe else f"{given} (the recipe {options.recipe})"


def _block_int8(block_size: int) -> Recipe:
    """ONNX Runtime's MatMulNBits with 8-bit weights in blocks of ``block_size`` along the input dimension;
    accuracy level 4 quantizes each input row block by block, so a text's numbers do not depend on its batch."""

    def recipe(target: Path, options: OnnxOptions) -> tuple[Any, dict[str, Any]]:
        import onnx

        try:
            from onnxruntime.quantization.matmul_nbits_quantizer import (
                DefaultWeightOnlyQuantConfig,
                MatMulNBitsQuantizer,
            )
        except ImportError as e:  # the quantizer needs onnx-ir, which onnxruntime does not pull in
            raise MissingDependencyError("onnx-ir", purpose=_purpose(options)) from e
        config = DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=True, accuracy_level=4, bits=8)
        quantizer = MatMulNBitsQuantizer(onnx.load(str(target)), algo_config=config)
        quantizer.process()
        return quantizer.model.model, {
            "method": "matmul-nbits",
            "weight_type": "int8 blocks",
            "block_size": block_size,
            "accuracy_level": 4,
            "batch_independent": True,
        }

    return recipe


#: recipe name (``exporter.config.INT8_RECIPES``) -> function(graph path, options) -> (quantized graph, manifest
#: record)
RECIPES: Mapping[str, Recipe] = {
    "int8-dynamic": _dynamic_int8,
    "int8-per-token": _per_token_int8,
    "int8-block32": _block_int8(32),
    "int8-block128": _block_int8(128),
}


#: the recipes for a character language model's graph (an LSTM and, where the model has one, a projection):
#: ONNX Runtime's ``DynamicQuantizeLSTM``, its input and hidden state quantized per step with one scale each
CHAR_LM_RECIPES: Mapping[str, Recipe] = {
    "int8-dynamic": lambda target, options: _dynamic_int8(target, options, ["LSTM", "MatMul", "Gemm"]),
}
#: what ``int8`` means for a character language model
CHAR_LM_DEFAULT = "int8-dynamic"


def _not_a_recipe(given: str, recipes: Mapping[str, Recipe], default: str, what: str) -> str:
    """Why ``given`` cannot quantize ``what``, and the values that can."""
    names = list(recipes)
    if len(names) == 1:
        choices = f"its one int8 recipe is {names[0]} (what 'int8' means for it): give int8 or {names[0]}"
    else:
        choices = f"give int8 (the recipe {default}) or one of {', '.join(names)}"
    return f"Quantization {given!r} is not a recipe for {what}; {choices}."


def quantize_graph(
    target: Path,
    options: OnnxOptions,
    recipes: Mapping[str, Recipe] = RECIPES,
    default: str | None = None,
    what: str = "the encoder",
) -> dict[str, Any]:
    """Quantize ``target`` in place with the recipe ``options.quantize`` names (``int8``: the default recipe,
    ``default`` where given) from ``recipes``."""
    name = default if default and options.quantize == "int8" else options.recipe
    recipe = recipes.get(name)
    if recipe is None:
        raise ConfigError(_not_a_recipe(options.quantize, recipes, default or DEFAULT_INT8, what), "quantize")
    started = time.perf_counter()
    try:
        with _quiet_quantizer():
            model, record = recipe(target, options)
    except (ExportError, MissingDependencyError):
        raise
    except Exception as e:  # the quantizers raise assorted errors on graphs they cannot handle
        raise ExportError(f"{name} quantization failed: {e}") from e
    save_graph(model, target, options.external_data)
    log.info("Quantized %s (%s) in %.1f s", what, name, time.perf_counter() - started)
    return {"type": "int8", "recipe": name, **record}
