"""Where the in-engine plugin zips are: one per engine, built from plugins/ by scripts/setup.sh
(`scripts/build-plugin.sh --engine elasticsearch|opensearch [--version X]`).

`plugin_zip(engine)` returns `XLIR_ES_PLUGIN_ZIP` / `XLIR_OS_PLUGIN_ZIP` when set, else the
newest build for that engine in `plugins/<engine>/target/`
(`xlir-<engine>-<plugin version>-<es|os><engine version>.zip`), or None when none was built.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import XlirError

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGINS_DIR = REPO_ROOT / "plugins"
ENV = {"elasticsearch": "XLIR_ES_PLUGIN_ZIP", "opensearch": "XLIR_OS_PLUGIN_ZIP"}
TAG = {"elasticsearch": "es", "opensearch": "os"}


class PluginZipError(XlirError):
    """A plugin zip named by the environment does not exist."""


def target_dir(engine: str) -> Path:
    """The build directory of one engine's plugin."""
    return PLUGINS_DIR / engine / "target"


def plugin_zip(engine: str, version: str | None = None) -> Path | None:
    """The engine's plugin zip (the environment override first), newest build first; with
    `version`, only a build for that engine version."""
    if engine not in ENV:
        raise ValueError(f"engine must be one of {sorted(ENV)}, got {engine!r}")
    env = os.environ.get(ENV[engine])
    if env:
        if not Path(env).is_file():
            raise PluginZipError(f"{ENV[engine]}={env} does not exist")
        return Path(env)
    pattern = f"xlir-{engine}-*-{TAG[engine]}{version or '*'}.zip"
    built = sorted(target_dir(engine).glob(pattern), key=lambda p: p.stat().st_mtime)
    return built[-1] if built else None
