"""The export step: a `transformers` encoder -> the ONNX directory `xlir_plugin` serves.

CLI: `python -m export.onnx`. Library: `export_model` (one export), `ensure_exported` (the
cached export of a model name, built once).
"""

from __future__ import annotations

from export.cache import ensure_exported, exported_dir

__all__ = ["ensure_exported", "exported_dir", "export_model"]


def __getattr__(name: str):
    if name == "export_model":  # heavy imports (torch, optimum) only when used
        from export.pipeline import export_model

        return export_model
    raise AttributeError(name)
