"""A fine-tuned model shipped as a compact delta over the bundled base model.

The repository cannot hold a 470 MB model, and need not: fine-tuning with frozen word
embeddings moves only the transformer layers (~21M of e5-small's 118M weights). A delta
directory holds, for every tensor that changed:

    delta.safetensors   2-D tensors: the difference tuned - base as int8 per row plus one
                        float32 scale per row (``NAME.q``, ``NAME.scale``); other tensors
                        (biases, norms): the tuned value in float32 (``NAME.full``)
    delta.json          format, the base's fingerprint, and the model's provenance
                        (data, steps, seed, commit, evaluation figures)
    xlir_encoder.json   pooling, normalization, prefixes, max length of the tuned model

`apply_delta` rebuilds an ordinary transformers directory from the base directory with
numpy and safetensors only (no torch), so a fresh machine materializes the shipped model
offline. The int8 rounding of the difference is at most half a row's scale per weight:
`make_delta` measures the largest relative error and reports it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from .errors import XlirError
from .manifest import ENCODER_SETTINGS_FILE

DELTA_FILE = "delta.safetensors"
DELTA_META = "delta.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = 1
BASE_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)


class DeltaError(XlirError):
    """A delta that cannot be made or applied (missing files, another base)."""


def _load(model_dir: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    path = Path(model_dir) / WEIGHTS_FILE
    if not path.is_file():
        raise DeltaError(f"no {WEIGHTS_FILE} in {model_dir}")
    return load_file(str(path))


def fingerprint(weights: dict[str, np.ndarray], names) -> str:
    """sha256 over the named tensors' float32 bytes: which base a delta belongs to."""
    h = hashlib.sha256()
    for name in sorted(names):
        h.update(name.encode())
        h.update(np.ascontiguousarray(weights[name], dtype="<f4").tobytes())
    return h.hexdigest()


def quantize_rows(diff: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per row: (q, scale) with diff ~= q * scale[:, None]."""
    diff = diff.astype(np.float32)
    scale = np.abs(diff).max(axis=1) / 127.0
    safe = np.where(scale > 0, scale, 1.0).astype(np.float32)
    q = np.clip(np.rint(diff / safe[:, None]), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)


def make_delta(
    base_dir: str | Path, tuned_dir: str | Path, out_dir: str | Path, provenance: dict
) -> dict:
    """Write the delta of `tuned_dir` over `base_dir` into `out_dir`; returns its figures."""
    from safetensors.numpy import save_file

    base, tuned = _load(Path(base_dir)), _load(Path(tuned_dir))
    missing = sorted(set(base) - set(tuned))
    # e.g. a pooler that transformers adds and mean pooling never uses: left out, and listed
    extra = sorted(set(tuned) - set(base))
    tensors: dict[str, np.ndarray] = {}
    changed, worst = [], 0.0
    for name in sorted(set(tuned) & set(base)):
        if np.array_equal(base[name], tuned[name]):
            continue
        changed.append(name)
        new = tuned[name].astype(np.float32)
        if new.ndim == 2:
            q, scale = quantize_rows(new - base[name])
            tensors[f"{name}.q"], tensors[f"{name}.scale"] = q, scale
            rebuilt = base[name] + q.astype(np.float32) * scale[:, None]
            err = np.abs(rebuilt - new).max() / max(float(np.abs(new).max()), 1e-12)
            worst = max(worst, float(err))
        else:
            tensors[f"{name}.full"] = new
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / DELTA_FILE))
    (out / DELTA_FILE).chmod(0o644)  # shipped in the repository: not a private file
    meta = {
        "format": FORMAT,
        "base_fingerprint": fingerprint(base, changed),
        "changed_tensors": len(changed),
        "unchanged_tensors": len(base) - len(changed) - len(missing),
        "dropped_tensors": extra,
        "max_relative_error": worst,
        "provenance": provenance,
    }
    (out / DELTA_META).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    settings = Path(tuned_dir) / ENCODER_SETTINGS_FILE
    if settings.is_file():
        shutil.copy2(settings, out / ENCODER_SETTINGS_FILE)
    return {**meta, "bytes": (out / DELTA_FILE).stat().st_size}


def read_meta(delta_dir: str | Path) -> dict:
    path = Path(delta_dir) / DELTA_META
    if not path.is_file():
        raise DeltaError(f"no {DELTA_META} in {delta_dir}: not a model delta")
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT:
        raise DeltaError(f"{path}: delta format {meta.get('format')} (this XLIR reads {FORMAT})")
    return meta


def apply_delta(base_dir: str | Path, delta_dir: str | Path, out_dir: str | Path) -> Path:
    """base + delta -> a transformers directory in `out_dir` (written whole, then renamed)."""
    from safetensors.numpy import load_file, save_file

    base_dir, delta_dir, out_dir = Path(base_dir), Path(delta_dir), Path(out_dir)
    meta = read_meta(delta_dir)
    weights = _load(base_dir)
    delta = load_file(str(delta_dir / DELTA_FILE))
    names = sorted({k.rsplit(".", 1)[0] for k in delta})
    unknown = [n for n in names if n not in weights]
    if unknown:
        raise DeltaError(f"{delta_dir}: the base {base_dir} has no tensors {unknown[:5]}")
    if fingerprint(weights, names) != meta["base_fingerprint"]:
        raise DeltaError(
            f"{delta_dir} was made over another base than {base_dir} (fingerprint differs)"
        )
    for name in names:
        if f"{name}.full" in delta:
            weights[name] = delta[f"{name}.full"]
        else:
            q, scale = delta[f"{name}.q"], delta[f"{name}.scale"]
            weights[name] = weights[name] + q.astype(np.float32) * scale[:, None]
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(weights, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
    for name in BASE_FILES:
        if (base_dir / name).is_file():
            shutil.copy2(base_dir / name, tmp / name)
    for name in (ENCODER_SETTINGS_FILE, DELTA_META):
        src = delta_dir / name if (delta_dir / name).is_file() else base_dir / name
        if src.is_file():
            shutil.copy2(src, tmp / name)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir
