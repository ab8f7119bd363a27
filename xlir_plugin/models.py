"""Turning what the user typed after `--model` into an exported ONNX directory to serve."""

from __future__ import annotations

from pathlib import Path

from .errors import XlirError
from .manifest import MANIFEST_FILE


def resolve_served_model(name: str | Path, quantize: str = "int8") -> Path:
    """An exported dir as is; `default`, a transformers dir or a hub id exported once and cached.

    `default` is exported without torch; any other model needs the `[export]` extra (torch,
    optimum); serving an exported dir needs neither.
    """
    path = Path(name)
    if (path / MANIFEST_FILE).is_file():
        return path
    if path.is_dir() and any(path.glob("*.onnx")):
        raise XlirError(
            f"{path} holds an ONNX model but no {MANIFEST_FILE}: export it with `python -m export.onnx`"
        )
    try:
        from export.cache import ensure_exported
    except ImportError as exc:
        raise XlirError(
            f"{name!r} is not an exported model dir (no {MANIFEST_FILE}); exporting it needs "
            f"`pip install 'xlir[export]'` ({exc})"
        ) from exc
    return ensure_exported(str(name), quantize=quantize)
