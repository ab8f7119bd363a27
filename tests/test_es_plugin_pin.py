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
