"""Per-token int8 quantization of an encoder graph's MatMuls, written with standard ONNX operators.

ONNX Runtime's dynamic quantization takes one activation scale per call from the whole input tensor (every
token of every text in the batch), so a text's numbers change with what it is batched with, and one
outlier token coarsens every other token's grid. Here each token (row) gets its own symmetric scale from
its own values, and weights get one scale per output channel:

    s = max(|a|, over the row) / 127          q = round(a / s) + 128   (uint8, zero point 128)
    y = MatMulIntegerToFloat(q, W_int8, 1, w_scale, 128) * s

``MatMulIntegerToFloat`` is ONNX Runtime's fused integer product with per-column dequantization (a
contrib operator, ``com.microsoft``): it replaced ``MatMulInteger`` + ``Cast`` + ``Mul`` (the same
numbers; 10 % faster encoder measured on MiniLM, 2 threads).

Rows are computed independently, so a text's answer never depends on its batch; the same scheme as the
per-token activation quantization of LLM.int8 / SmoothQuant, without their outlier handling.
"""

from __future__ import annotations

from typing import Any

__all__ = ["quantize_per_token"]

_PREFIX = "per_token"
_CONTRIB = "com.microsoft"


def _constants(model: Any) -> list[Any]:
    import numpy as np
    from onnx import numpy_helper

    return [
        numpy_helper.from_array(np.array(128, np.uint8), f"{_PREFIX}_zero_point"),
        numpy_helper.from_array(np.array(128.0, np.float32), f"{_PREFIX}_offset"),
        numpy_helper.from_array(np.array(127.0, np.float32), f"{_PREFIX}_levels"),
        numpy_helper.from_array(np.array(1e-12, np.float32), f"{_PREFIX}_epsilon"),
        numpy_helper.from_array(np.array(1.0, np.float32), f"{_PREFIX}_unit_scale"),
        numpy_helper.from_array(np.array([-1], np.int64), f"{_PREFIX}_last_axis"),
    ]


def _row_quantizer(model: Any, source: str, index: int) -> tuple[list[Any], str, str]:
    """Nodes that quantize ``source`` per row; returns them, the uint8 tensor and the per-row scale."""
    from onnx import TensorProto, helper

    name = f"{_PREFIX}{index}"
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
    if opset >= 18:  # ReduceMax takes its axes as an input from opset 18
        reduce = helper.make_node("ReduceMax", [f"{name}_abs", f"{_PREFIX}_last_axis"], [f"{name}_max"], keepdims=1)
    else:
        reduce = helper.make_node("ReduceMax", [f"{name}_abs"], [f"{name}_max"], axes=[-1], keepdims=1)
    nodes = [
        helper.make_node("Abs", [source], [f"{name}_abs"]),
        reduce,
        helper.make_node("Max", [f"{name}_max", f"{_PREFIX}_epsilon"], [f"{name}_nonzero"]),
        helper.make_node("Div", [f"{name}_nonzero", f"{_PREFIX}_levels"], [f"{name}_scale"]),
        helper.make_node("Div", [source, f"{name}_scale"], [f"{name}_scaled"]),
        helper.make_node("Round", [f"{name}_scaled"], [f"{name}_rounded"]),
        helper.make_node("Add", [f"{name}_rounded", f"{_PREFIX}_offset"], [f"{name}_shifted"]),
        helper.make_node("Cast", [f"{name}_shifted"], [f"{name}_uint8"], to=TensorProto.UINT8),
    ]
    return nodes, f"{name}_uint8", f"{name}_scale"


def _quantized_weight(weight: Any, name: str) -> tuple[list[Any], str, str]:
    """int8 weights with one symmetric scale per output channel (column)."""
    import numpy as np
    from onnx import numpy_helper

    values = numpy_helper.to_array(weight).astype(np.float32)
    scale = np.maximum(np.abs(values).max(axis=0), 1e-12) / 127.0
    quantized = np.clip(np.round(values / scale), -127, 127).astype(np.int8)
    tensors = [
        numpy_helper.from_array(quantized, f"{name}_int8"),
        numpy_helper.from_array(scale.astype(np.float32), f"{name}_scale"),
    ]
    return tensors, f"{name}_int8", f"{name}_scale"


def _is_weight_matmul(node: Any, weights: dict[str, Any]) -> bool:
    return node.op_type == "MatMul" and node.domain in ("", "ai.onnx") and len(weights.get(node.input[1], [])) == 2


def quantize_per_token(model: Any) -> int:
    """Rewrite every MatMul of ``model`` (an ``onnx.ModelProto``) whose second input is a 2-D weight into
    per-token int8; MatMuls that share an input share its quantization. Returns how many were rewritten."""
    from onnx import helper

    graph = model.graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    weights = {name: list(tensor.dims) for name, tensor in initializers.items()}
    nodes, added, quantized_inputs, count = [], _constants(model), {}, 0
    for node in graph.node:
        if not _is_weight_matmul(node, weights):
            nodes.append(node)
            continue
        source = node.input[0]
        if source not in quantized_inputs:
            row_nodes, *quantized_inputs[source] = _row_quantizer(model, source, len(quantized_inputs))
            nodes += row_nodes
        row_values, row_scale = quantized_inputs[source]
        name = f"{_PREFIX}_w{count}"
        tensors, weight_int8, weight_scale = _quantized_weight(initializers[node.input[1]], name)
        added += tensors
        # (q - 128) @ W_int8 * w_scale per column, then * s per row
        inputs = [row_values, weight_int8, f"{_PREFIX}_unit_scale", weight_scale, f"{_PREFIX}_zero_point"]
        nodes += [
            helper.make_node("MatMulIntegerToFloat", inputs, [f"{name}_columns"], domain=_CONTRIB),
            helper.make_node("Mul", [f"{name}_columns", row_scale], list(node.output), name=node.name),
        ]
        count += 1
    used = {name for node in nodes for name in node.input}
    kept = [tensor for tensor in [*graph.initializer, *added] if tensor.name in used]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    if count and not any(o.domain == _CONTRIB for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(_CONTRIB, 1))
    return count
