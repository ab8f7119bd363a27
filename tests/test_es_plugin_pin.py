"""One onnxruntime version for Python and the in-engine plugins (no node needed).

int8 kernels differ between onnxruntime versions (cosine ~0.995 between 1.29 and 1.32 on the
default model), so vectors from `xlir index` and from the `xlir_embed` processor match only
when both run the same version. plugins/pom.xml (the parent of core and both engine adapters)
is the one source of the version: pyproject.toml pins Python's onnxruntime to it
(`onnxruntime.version`, the newest onnxruntime Java on Maven Central), and no module pom
(core, elasticsearch, opensearch) may set another.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


PLUGINS = ROOT / "plugins"
MODULES = ("core", "elasticsearch", "opensearch")


def pom_onnxruntime() -> str:
    match = re.search(r"<onnxruntime\.version>([^<]+)</", (PLUGINS / "pom.xml").read_text())
    assert match, "plugins/pom.xml has no <onnxruntime.version>"
    return match.group(1)


def test_plugin_modules_inherit_the_one_onnxruntime_version():
    """core bundles onnxruntime for both engines; no adapter may pin a version of its own."""
    parent = (PLUGINS / "pom.xml").read_text()
    for module in MODULES:
        assert f"<module>{module}</module>" in parent, f"plugins/pom.xml lacks module {module}"
        pom = (PLUGINS / module / "pom.xml").read_text()
        assert "<onnxruntime.version>" not in pom, f"plugins/{module}/pom.xml sets its own"
        versions = re.findall(
            r"<artifactId>onnxruntime</artifactId>\s*<version>([^<]+)</version>", pom
        )
        assert versions in ([], ["${onnxruntime.version}"]), (module, versions)


def test_es_plugin_onnxruntime_pin_matches_pyproject():
    pins = re.findall(r'"onnxruntime==([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert pins == [pom_onnxruntime()], (
        f"pyproject.toml pins onnxruntime {pins}, plugins/pom.xml uses {pom_onnxruntime()}: "
        "pin the same version in both"
    )


def test_es_plugin_onnxruntime_installed_is_the_pinned_one():
    import onnxruntime

    assert onnxruntime.__version__ == pom_onnxruntime(), (
        f"onnxruntime {onnxruntime.__version__} is installed, the plugin runs "
        f"{pom_onnxruntime()}: run `bash scripts/setup.sh`"
    )


def java_default(setting: str) -> int:
    """A node setting's default, declared once for both engines in core's XlirDefaults."""
    source = (PLUGINS / "core/src/main/java/org/xlir/core/XlirDefaults.java").read_text()
    match = re.search(rf'IntSpec\("{re.escape(setting)}", (\d+)', source)
    assert match, f"XlirDefaults.java has no int setting {setting}"
    return int(match.group(1))


def test_es_plugin_cuts_onnx_runs_as_the_python_encoder():
    """int8 activations are quantized per ONNX run: the same batching rule on both sides, or
    the same text gets slightly different vectors (cosine ~.999) in Python and in the engine."""
    import inspect

    from xlir_plugin.encoder import MAX_BATCH_TOKENS, OnnxEncoder

    batch_size = inspect.signature(OnnxEncoder).parameters["batch_size"].default
    assert java_default("xlir.inference.batch_size") == batch_size
    assert java_default("xlir.inference.max_batch_tokens") == MAX_BATCH_TOKENS
