"""One onnxruntime version for Python and the in-engine plugin (no node needed).

int8 kernels differ between onnxruntime versions (cosine ~0.995 between 1.29 and 1.32 on the
default model), so vectors from `xlir index` and from the `xlir_embed` processor match only
when both run the same version. es-plugin/pom.xml is the one source of the version:
pyproject.toml pins Python's onnxruntime to it (`onnxruntime.version`, the newest onnxruntime
Java on Maven Central).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pom_onnxruntime() -> str:
    match = re.search(r"<onnxruntime\.version>([^<]+)</", (ROOT / "es-plugin/pom.xml").read_text())
    assert match, "es-plugin/pom.xml has no <onnxruntime.version>"
    return match.group(1)


def test_es_plugin_onnxruntime_pin_matches_pyproject():
    pins = re.findall(r'"onnxruntime==([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert pins == [pom_onnxruntime()], (
        f"pyproject.toml pins onnxruntime {pins}, es-plugin/pom.xml uses {pom_onnxruntime()}: "
        "pin the same version in both"
    )


def test_es_plugin_onnxruntime_installed_is_the_pinned_one():
    import onnxruntime

    assert onnxruntime.__version__ == pom_onnxruntime(), (
        f"onnxruntime {onnxruntime.__version__} is installed, the plugin runs "
        f"{pom_onnxruntime()}: run `bash scripts/setup.sh`"
    )


def java_default(setting: str) -> int:
    source = (ROOT / "es-plugin/src/main/java/org/xlir/elasticsearch/XlirSettings.java").read_text()
    match = re.search(rf'intSetting\("{re.escape(setting)}", (\d+)', source)
    assert match, f"XlirSettings.java has no int setting {setting}"
    return int(match.group(1))


def test_es_plugin_cuts_onnx_runs_as_the_python_encoder():
    """int8 activations are quantized per ONNX run: the same batching rule on both sides, or
    the same text gets slightly different vectors (cosine ~.999) in Python and in the engine."""
    import inspect

    from xlir_plugin.encoder import MAX_BATCH_TOKENS, OnnxEncoder

    batch_size = inspect.signature(OnnxEncoder).parameters["batch_size"].default
    assert java_default("xlir.inference.batch_size") == batch_size
    assert java_default("xlir.inference.max_batch_tokens") == MAX_BATCH_TOKENS
