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
    """The shared data sets: `$XLIR_DATA`, else `../shared/data` from the working directory,
    else beside the checkout this package was installed from."""
    env = os.environ.get("XLIR_DATA")
    if env:
        return Path(env)
    candidates = [
        Path.cwd().parent / "shared" / "data",
        Path(__file__).resolve().parents[2] / "shared" / "data",
    ]
    return next((path for path in candidates if path.is_dir()), candidates[0])
