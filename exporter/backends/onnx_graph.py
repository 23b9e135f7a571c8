"""Offline rewrites of an exported encoder graph: ORT transformer fusions and fp16 (quantization recipes are in
``onnx_quantize``); writing a graph with its external data, and listing the files a graph refers to.

Each step reads ``encoder.onnx`` (with any external data) and writes the transformed graph back under the
same name, consolidating external data into one ``encoder.onnx.data`` file when the graph is over 2 GB or
the user asked for external data.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path, PurePosixPath
from typing import Any

from exporter.config import OPTIMIZATION_LEVELS, OnnxOptions
from exporter.errors import ExportError, MissingDependencyError, UnsupportedModelError
from exporter.runtime.settings import EmbeddingSettings

__all__ = [
    "EXTERNAL_DATA_FILE",
    "convert_fp16",
    "external_tensors",
    "graph_files",
    "needs_external_data",
    "optimize_graph",
    "save_graph",
]

log = logging.getLogger(__name__)

EXTERNAL_DATA_FILE = "encoder.onnx.data"
PROTOBUF_LIMIT = 2_000_000_000
#: Hugging Face model types whose graphs ONNX Runtime's BERT optimizer understands.
OPTIMIZER_MODEL_TYPES = {
    "bert": "bert",
    "roberta": "bert",
    "xlm-roberta": "bert",
    "camembert": "bert",
    "electra": "bert",
    "distilbert": "bert",
    "mpnet": "bert",
}


def _folder_files(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.is_file()]


def needs_external_data(directory: Path, options: OnnxOptions) -> bool:
    """Whether a graph rewritten from ``directory`` must keep its tensors in an external-data file."""
    return options.external_data or sum(p.stat().st_size for p in _folder_files(directory)) >= PROTOBUF_LIMIT


def save_graph(model: Any, target: Path, external: bool) -> None:
    """Write an ``onnx.ModelProto`` to ``target``, external data in one file next to it when needed."""
    import onnx

    directory = target.parent
    old = [p for p in _folder_files(directory) if p != target]
    size = model.ByteSize() if not external else PROTOBUF_LIMIT
    tmp = directory / (target.name + ".tmp")
    if external or size >= PROTOBUF_LIMIT:
        data_tmp = EXTERNAL_DATA_FILE + ".tmp"
        onnx.save_model(
            model,
            str(tmp),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=data_tmp,
            size_threshold=1024,
        )
        # the graph refers to its data file by name: rewrite the reference before the rename
        reloaded = onnx.load(str(tmp), load_external_data=False)
        for tensor in external_tensors(reloaded):
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = EXTERNAL_DATA_FILE
        for path in old:
            path.unlink()
        os.replace(directory / data_tmp, directory / EXTERNAL_DATA_FILE)
        onnx.save_model(reloaded, str(tmp))
    else:
        onnx.save_model(model, str(tmp))
        for path in old:
            path.unlink()
    os.replace(tmp, target)


def external_tensors(model: Any) -> list[Any]:
    """The tensors of a graph whose data lives in external files."""
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    return [t for t in _get_all_tensors(model) if uses_external_data(t)]


def graph_files(onnx_path: Path) -> list[str]:
    """The graph and every external-data file it references, relative to the graph's folder.

    Raises:
        UnsupportedModelError: a reference points outside the graph's folder.
    """
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False)
    files = {onnx_path.name}
    for tensor in external_tensors(graph):
        location = next(e.value for e in tensor.external_data if e.key == "location")
        relative = PurePosixPath(location)
        if relative.is_absolute() or ".." in relative.parts:
            raise UnsupportedModelError(f"{onnx_path} refers to external data outside its folder: {location!r}.")
        files.add(str(relative))
    return sorted(files)


def optimize_graph(
    target: Path, settings: EmbeddingSettings, options: OnnxOptions, use_gpu: bool = False
) -> dict[str, Any]:
    """Fuse attention, LayerNorm, GELU and friends with ONNX Runtime's transformer optimizer."""
    try:
        from onnxruntime.transformers.optimizer import optimize_model
    except ImportError as e:
        raise MissingDependencyError("onnxruntime", purpose="graph optimization") from e
    model_type = OPTIMIZER_MODEL_TYPES.get(settings.model_type)
    if model_type is None:
        raise UnsupportedModelError(
            f"ONNX Runtime's transformer optimizer does not know {settings.model_type!r} models "
            f"(it handles {', '.join(sorted(OPTIMIZER_MODEL_TYPES))}). Export without optimize=..., "
            "ONNX Runtime still applies its generic graph optimizations when the session starts."
        )
    started = time.perf_counter()
    level = OPTIMIZATION_LEVELS[options.optimize]
    try:
        optimized = optimize_model(
            str(target),
            model_type=model_type,
            num_heads=0,
            hidden_size=0,
            opt_level=level,
            use_gpu=use_gpu,
        )
        if options.precision == "fp16":
            optimized.convert_float_to_float16(keep_io_types=True)
    except Exception as e:  # the optimizer raises assorted errors on graphs it cannot handle
        raise ExportError(f"ONNX Runtime's transformer optimizer failed at level {options.optimize!r}: {e}") from e
    fused = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
    save_graph(optimized.model, target, options.external_data)
    log.info("Optimized the encoder (level %s) in %.1f s: %s", options.optimize, time.perf_counter() - started, fused)
    return {
        "level": options.optimize,
        "opt_level": level,
        "fused_operators": fused,
        "fp16": options.precision == "fp16",
    }


def convert_fp16(target: Path, options: OnnxOptions) -> None:
    """fp16 weights and compute with fp32 inputs and outputs (for the CUDA execution provider)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(target))
    converted = convert_float_to_float16(model, keep_io_types=True)
    save_graph(converted, target, options.external_data)
