"""Export a transformers encoder to ONNX and append the sentence-embedding head.

The exported graph maps `input_ids`, `attention_mask` (and `token_type_ids` when the model
has them) to `last_hidden_state`; `add_pooling_head` then appends mean/CLS pooling and L2
normalization so the served output is `sentence_embedding` of shape (batch, dim).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HIDDEN_OUTPUT = "last_hidden_state"
EMBEDDING_OUTPUT = "sentence_embedding"
ONNX_FILE = "model.onnx"
EXTERNAL_DATA_FILE = "model.onnx_data"
# A protobuf file cannot exceed 2 GiB: above this many bytes of weights, write external data.
EXTERNAL_DATA_THRESHOLD = 1_900_000_000


def export_hidden_states(model_path: str, work_dir: Path, opset: int | None = None) -> Path:
    """torch -> ONNX with optimum (dynamic batch and sequence axes); returns the .onnx path."""
    from optimum.exporters.onnx import onnx_export_from_model
    from transformers import AutoModel

    with quiet_transformers():
        model = AutoModel.from_pretrained(model_path).eval()
    for name in ("optimum", "transformers", "torch.onnx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with warnings.catch_warnings():  # tracer warnings: nothing to act on for these models
        warnings.simplefilter("ignore")
        onnx_export_from_model(
            model,
            work_dir,
            opset=opset,
            task="feature-extraction",
            do_validation=False,  # the parity check measures what matters
        )
    return work_dir / ONNX_FILE


@contextlib.contextmanager
def quiet_transformers():
    """Hide transformers' load-time notes (e.g. an unused pooler "newly initialized")."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def opset_of(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def weight_bytes(model: onnx.ModelProto) -> int:
    return sum(len(t.raw_data) or numpy_helper.to_array(t).nbytes for t in model.graph.initializer)


def uses_external_data(path: Path) -> bool:
    from onnx.external_data_helper import uses_external_data as _uses

    model = onnx.load(str(path), load_external_data=False)
    return any(_uses(t) for t in model.graph.initializer)


def save_model(model: onnx.ModelProto, path: Path, external: bool | None = None) -> list[Path]:
    """Write `model`; with external data (one `*.onnx_data` file) when it is too big for
    protobuf. Returns the files written."""
    path = Path(path)
    if external is None:
        external = weight_bytes(model) > EXTERNAL_DATA_THRESHOLD
    if not external:
        onnx.save_model(model, path)
        return [path]
    data = path.name + "_data"
    (path.parent / data).unlink(missing_ok=True)
    onnx.save_model(
        model, path, save_as_external_data=True, all_tensors_to_one_file=True, location=data
    )
    return [path, path.parent / data]


def add_pooling_head(
    model: onnx.ModelProto,
    pooling: str,
    normalize: bool,
    output: str = EMBEDDING_OUTPUT,
    projection: tuple[np.ndarray, np.ndarray] | None = None,
) -> onnx.ModelProto:
    """Replace the `last_hidden_state` output by the pooled (and normalized) sentence vector.

    mean: sum(h * mask) / max(sum(mask), 1e-9) over the sequence axis; cls: h[:, 0].
    normalize: v / max(||v||_2, 1e-12), as torch.nn.functional.normalize does.
    projection (W, b): an alignment head on that vector, v @ W + b (normalized again), in
    float32 (`xlir_plugin.projection`); both runtimes get it with the graph.
    Needs opset >= 13 (ReduceSum takes its axes as an input).
    """
    if opset_of(model) < 13:
        raise ValueError("the pooling head needs opset >= 13")
    if pooling not in ("mean", "cls"):
        raise ValueError(f"unknown pooling {pooling!r} (mean or cls)")
    graph = model.graph
    hidden = next(o for o in graph.output if o.name == HIDDEN_OUTPUT)
    dim = hidden.type.tensor_type.shape.dim[2]
    elem = hidden.type.tensor_type.elem_type
    nodes, inits = [], []

    def const(name: str, value, dtype=elem, dims=()):
        inits.append(helper.make_tensor(f"xlir_{name}", dtype, dims, value))
        return f"xlir_{name}"

    axes1 = const("axis1", [1], TensorProto.INT64, [1])
    axes_last = const("axis_last", [-1], TensorProto.INT64, [1])

    if pooling == "mean":
        nodes += [
            helper.make_node("Cast", ["attention_mask"], ["xlir_mask_f"], to=elem),
            helper.make_node("Unsqueeze", ["xlir_mask_f", axes_last], ["xlir_mask3"]),
            helper.make_node("Mul", [HIDDEN_OUTPUT, "xlir_mask3"], ["xlir_masked"]),
            helper.make_node("ReduceSum", ["xlir_masked", axes1], ["xlir_sum"], keepdims=0),
            helper.make_node("ReduceSum", ["xlir_mask3", axes1], ["xlir_count"], keepdims=0),
            helper.make_node("Max", ["xlir_count", const("eps_count", [1e-9])], ["xlir_count1"]),
            helper.make_node("Div", ["xlir_sum", "xlir_count1"], ["xlir_pooled"]),
        ]
    else:
        nodes.append(
            helper.make_node(
                "Gather",
                [HIDDEN_OUTPUT, const("zero", [0], TensorProto.INT64)],
                ["xlir_pooled"],
                axis=1,
            )
        )
    eps_norm = const("eps_norm", [1e-12])

    def l2_normalize(x: str, out: str) -> None:
        nodes.extend([
            helper.make_node("Mul", [x, x], [f"{out}_sq"]),
            helper.make_node("ReduceSum", [f"{out}_sq", axes_last], [f"{out}_sqsum"], keepdims=1),
            helper.make_node("Sqrt", [f"{out}_sqsum"], [f"{out}_norm"]),
            helper.make_node("Max", [f"{out}_norm", eps_norm], [f"{out}_norm1"]),
            helper.make_node("Div", [x, f"{out}_norm1"], [out]),
        ])  # fmt: skip

    vector = "xlir_pooled"
    if projection is not None:
        weight, bias = (np.asarray(a, np.float32) for a in projection)
        if weight.ndim != 2 or weight.shape[0] != dim.dim_value or bias.shape != weight.shape[1:]:
            raise ValueError(
                f"projection {weight.shape} + {bias.shape} does not fit {dim.dim_value}-dim vectors"
            )
        if normalize:  # the head was trained on the model's (normalized) output vectors
            l2_normalize(vector, "xlir_unit")
            vector = "xlir_unit"
        inits += [
            numpy_helper.from_array(weight, "xlir_projection_weight"),
            numpy_helper.from_array(bias, "xlir_projection_bias"),
        ]
        nodes += [
            helper.make_node("MatMul", [vector, "xlir_projection_weight"], ["xlir_projected0"]),
            helper.make_node(
                "Add", ["xlir_projected0", "xlir_projection_bias"], ["xlir_projected"]
            ),
        ]
        vector = "xlir_projected"
    if normalize:
        l2_normalize(vector, output)
    else:
        nodes.append(helper.make_node("Identity", [vector], [output]))

    graph.node.extend(nodes)
    graph.initializer.extend(inits)
    out = helper.make_tensor_value_info(output, elem, ["batch_size", None])
    if projection is None:
        out.type.tensor_type.shape.dim[1].CopyFrom(dim)
    else:
        out.type.tensor_type.shape.dim[1].dim_value = int(np.shape(projection[0])[1])
    del graph.output[:]
    graph.output.append(out)
    return model


def sha256_of(path: Path) -> str:
    from xlir_plugin.manifest import sha256_file

    return sha256_file(path)
