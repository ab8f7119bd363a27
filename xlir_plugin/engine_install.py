"""`xlir es|os install-model`: put an exported model where the in-engine plugin loads it.

The plugin reads `<node config>/xlir/models/<name>/` (`model.onnx`, `tokenizer.json`,
`xlir.json`) on every node and picks a new or replaced model up within 2 s, no restart.
We copy into the models directory of every running node of the cluster (each reports its
own in `GET _xlir/models`), and into the local Elasticsearch home's `config/`, which
`xlir es start` copies for each node it starts later. Each copy is atomic: the files go to
`.tmp-<name>-<pid>/` (the plugin ignores dot-names), which is then renamed into place;
directories 0755 and files 0644, so the node's user (`nobody` under root) can read them.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import replace
from pathlib import Path

from .connection import EsSettings, connect
from .default_model import BUNDLED_MODEL_NAMES
from .engine import EngineError, ModelNotInstalled, models
from .errors import InputError
from .manifest import MANIFEST_FILE, Manifest, sha256_file

MODEL_FILES = ("model.onnx", "tokenizer.json", MANIFEST_FILE)
NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")


def default_name(model: str) -> str:
    """`default` / `e5-small-base` for the bundled model, else the exported directory's name."""
    return model if model in BUNDLED_MODEL_NAMES else Path(model).resolve().name


def check_name(name: str) -> str:
    if not NAME.match(name or "") or len(name) > 100:
        raise InputError(
            f"{{name={name}}} is not a model name: letters, digits, '_', '-', '.' (not first)",
            arguments=["name"],
        )
    return name


def check_export(src: Path) -> Manifest:
    """The export's manifest, once its three files are there and model.onnx is intact."""
    missing = [f for f in MODEL_FILES if not (src / f).is_file()]
    if missing:
        raise InputError(
            f"{src} is not an exported model: {', '.join(missing)} missing (export one with "
            "`python -m export.onnx` or `xlir model export-default`)"
        )
    manifest = Manifest.load(src)
    if sha256_file(src / "model.onnx") != manifest.sha256:
        raise InputError(f"{src}/model.onnx does not match the sha256 in its {MANIFEST_FILE}")
    return manifest


def home_models_dir(engine: str = "elasticsearch") -> Path | None:
    """`config/xlir/models` of the engine's local home (`xlir es|os start`), when installed."""
    from .testing import elasticsearch, opensearch

    node = opensearch if engine == "opensearch" else elasticsearch
    config = node.install_root() / f"{engine}-{node.VERSION}" / "config"
    return config / "xlir" / "models" if config.is_dir() else None


def node_models_dirs(settings: EsSettings) -> dict[str, Path]:
    """Node name -> its models directory, asked of each node of the cluster in turn (a
    directory not on this machine is an error: copy the files there yourself)."""
    es = connect(settings)
    try:
        nodes = es.nodes.info(metric="http")["nodes"]
    finally:
        es.close()
    scheme = "https" if (settings.url or "").startswith("https") else "http"
    found: dict[str, Path] = {}
    for node in nodes.values():
        address = node["http"]["publish_address"].rsplit("/", 1)[-1]
        one = connect(replace(settings, url=f"{scheme}://{address}"))
        try:
            models_dir = Path(models(one)["models_dir"])
        finally:
            one.close()
        if not (models_dir.parent.parent / f"{settings.engine}.yml").is_file():
            raise EngineError(
                f"node {node['name']} loads models from {models_dir}, which is not on this "
                f"machine: copy {', '.join(MODEL_FILES)} into {models_dir}/<name>/ on every node"
            )
        found[node["name"]] = models_dir
    return found


def copy_model(src: Path, models_dir: Path, name: str) -> Path:
    """Copy the three files into `models_dir/name` atomically (replacing an older copy)."""
    models_dir.mkdir(parents=True, exist_ok=True)
    for folder in (models_dir, models_dir.parent):
        folder.chmod(0o755)
    tmp = models_dir / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o755)
    for file in MODEL_FILES:
        shutil.copyfile(src / file, tmp / file)
        (tmp / file).chmod(0o644)
    tmp.chmod(0o755)
    target = models_dir / name
    old = models_dir / f".old-{name}-{os.getpid()}"
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def install_model(
    src: str | Path,
    name: str,
    settings: EsSettings | None = None,
    *,
    future_nodes: bool = True,
) -> list[Path]:
    """Install the export `src` as `name` on every running node of the cluster `settings`
    names (None: no running node) and, with `future_nodes`, into the local Elasticsearch
    home for nodes started later; return the directories written."""
    src = Path(src)
    check_name(name)
    check_export(src)
    targets = list(node_models_dirs(settings).values()) if settings else []
    engine = settings.engine if settings else "elasticsearch"
    home = home_models_dir(engine) if future_nodes else None
    if home:
        targets.append(home)
    if not targets:
        raise EngineError(f"no {engine} node to install into: start one with `xlir es|os start`")
    return [copy_model(src, models_dir, name) for models_dir in dict.fromkeys(targets)]


def remove_model(name: str, settings: EsSettings | None = None, future_nodes: bool = True) -> None:
    """Remove `name` from every running node (and the local home); the plugin drops it."""
    check_name(name)
    dirs = list(node_models_dirs(settings).values()) if settings else []
    home = (
        home_models_dir(settings.engine if settings else "elasticsearch") if future_nodes else None
    )
    for models_dir in dirs + ([home] if home else []):
        shutil.rmtree(models_dir / name, ignore_errors=True)


def ensure_installed(es, settings: EsSettings, model: str, name: str | None = None):
    """The `EngineModel` for what the user gave after `--model`: an installed name as it is;
    an exported dir, `default` or `e5-small-base` is installed first (again when its
    model.onnx changed), on the running nodes only (`xlir es install-model` also installs for
    nodes started later)."""
    from .engine import engine_model

    path = Path(model)
    local = model in BUNDLED_MODEL_NAMES or path.is_dir()
    if not local:
        return engine_model(es, check_name(name or model))
    from .models import resolve_served_model

    src = resolve_served_model(model)
    name = check_name(name or default_name(model))
    try:
        installed = engine_model(es, name)
        if installed.entry.get("sha256") == Manifest.load(src).sha256:
            return installed
    except ModelNotInstalled:
        pass
    install_model(src, name, settings, future_nodes=False)
    return engine_model(es, name)
