"""Graph optimization (fusions), int8 dynamic quantization and fp16 conversion."""

from __future__ import annotations

import logging
from pathlib import Path

QUANTIZATIONS = ("int8", "fp16", "none")


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


def quantize_int8(src: Path, dst: Path, preset: str | None = None) -> str:
    """Dynamic int8 quantization, per-channel weights, with optimum's preset for this CPU.

    optimum's `ORTQuantizer` cannot pass `DefaultTensorType`, which onnxruntime needs to
    quantize a graph holding fused com.microsoft ops, so the preset's settings go straight to
    `onnxruntime.quantization.quantize_dynamic`. Returns the preset used.
    """
    import onnx
    from onnxruntime.quantization import quantize_dynamic
    from optimum.onnxruntime import AutoQuantizationConfig

    from export.graph import uses_external_data

    preset = preset or cpu_preset()
    config = getattr(AutoQuantizationConfig, preset)(is_static=False, per_channel=True)
    logging.getLogger().setLevel(logging.ERROR)  # "consider pre-processing" warnings
    quantize_dynamic(
        Path(src),
        Path(dst),
        op_types_to_quantize=[getattr(o, "value", o) for o in config.operators_to_quantize],
        per_channel=config.per_channel,
        reduce_range=config.reduce_range,
        weight_type=config.weights_dtype,
        use_external_data_format=uses_external_data(src),
        extra_options={
            "WeightSymmetric": config.weights_symmetric,
            "ActivationSymmetric": config.activations_symmetric,
            "DefaultTensorType": onnx.TensorProto.FLOAT,
        },
    )
    return preset
