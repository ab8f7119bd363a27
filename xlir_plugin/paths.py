"""Where XLIR keeps what it builds once per machine (Elasticsearch, the default model)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """`$XLIR_CACHE`, else `~/.cache/xlir`; created on first use."""
    path = Path(os.environ.get("XLIR_CACHE") or Path.home() / ".cache" / "xlir")
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """The shared data sets: `$XLIR_DATA`, else `../shared/data` beside the project root."""
    env = os.environ.get("XLIR_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data"
