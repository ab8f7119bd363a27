"""The in-engine plugin (plugins/elasticsearch/, built by scripts/setup.sh) installed into the local node.

`ensure_plugin(home, java_home)` runs `bin/elasticsearch-plugin install` once per plugin
build: the zip's sha256 is kept in `<home>/.xlir-plugin.sha256` (outside `plugins/`, which
Elasticsearch reads), so an unchanged zip costs a hash; another zip is installed (remove, then
install) unless its jar holds the same classes as the installed one (another checkout's build
of the same sources), so checkouts sharing one home do not reinstall in turn. Several processes may start nodes from the same home: a file lock keeps one
installer at a time. Models live in `<config>/xlir/models/<name>/`; `_prepare_workdir` copies
the home's `config/` into each node, so a model installed into the home reaches every node
started later (`xlir es install-model` also copies it into the running ones).
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import logging
import os
import subprocess
import zipfile
from pathlib import Path

from ..errors import XlirError
from .plugin_zips import PluginZipError, target_dir
from .plugin_zips import plugin_zip as engine_plugin_zip

PLUGIN_NAME = "xlir"
MARKER = ".xlir-plugin.sha256"
REPO_ROOT = Path(__file__).resolve().parents[2]

log = logging.getLogger(__name__)


class PluginError(XlirError):
    """The plugin could not be installed into the local Elasticsearch."""


def plugin_zip(version: str | None = None) -> Path | None:
    """The plugin zip: `XLIR_ES_PLUGIN_ZIP`, else the newest build in
    plugins/elasticsearch/target/ (for Elasticsearch `version` when given: a node loads only a
    plugin built for its own version)."""
    try:
        return engine_plugin_zip("elasticsearch", version)
    except PluginZipError as e:
        raise PluginError(str(e)) from e


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _entries(archive: zipfile.ZipFile) -> dict[str, tuple[int, int]]:
    """Name -> (CRC-32, size) of every file: equal for two builds of the same sources, whose
    bytes differ only in timestamps."""
    return {i.filename: (i.CRC, i.file_size) for i in archive.infolist() if not i.is_dir()}


def _installed_matches(home: Path, zip_path: Path) -> bool:
    """The installed plugin holds what `zip_path` holds (each jar compared entry by entry), so
    another build of the same sources (another checkout) need not be installed again."""
    installed = home / "plugins" / PLUGIN_NAME
    with zipfile.ZipFile(zip_path) as archive:
        names = [i.filename for i in archive.infolist() if not i.is_dir()]
        if sorted(names) != sorted(p.name for p in installed.iterdir() if p.is_file()):
            return False
        for name in names:
            data = archive.read(name)
            if not name.endswith(".jar"):
                if (installed / name).read_bytes() != data:
                    return False
                continue
            with zipfile.ZipFile(io.BytesIO(data)) as new, zipfile.ZipFile(installed / name) as old:
                if _entries(new) != _entries(old):
                    return False
    return True


def ensure_plugin(
    home: Path, java_home: Path, zip_path: Path | None = None, *, engine: str = "elasticsearch"
) -> str | None:
    """Install (or upgrade) the plugin into `home`; return the zip's sha256, or None (and a
    warning) when no zip was built: the node then starts without the in-engine path.
    engine: whose `bin/<engine>-plugin` installs it (OpenSearch's tool takes the same flags)."""
    version = (
        home.name.removeprefix("elasticsearch-") if home.name.startswith("elasticsearch-") else None
    )
    zip_path = zip_path or plugin_zip(version)
    if zip_path is None:
        log.warning(
            "no Elasticsearch plugin build in %s: nodes start without the in-engine path "
            "(build it with `bash scripts/setup.sh`)",
            target_dir("elasticsearch"),
        )
        return None
    sha = _sha256(zip_path)
    marker = home / MARKER
    if marker.is_file() and marker.read_text().strip() == sha:
        return sha
    with open(home / ".xlir-plugin.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and marker.read_text().strip() == sha:
            return sha  # another process installed it while we waited
        installed = (home / "plugins" / PLUGIN_NAME).is_dir()
        if installed and _installed_matches(home, zip_path):
            marker.write_text(sha + "\n")
            return sha
        java_var = "ES_JAVA_HOME" if engine == "elasticsearch" else "OPENSEARCH_JAVA_HOME"
        env = dict(os.environ, **{java_var: str(java_home)})
        tool = str(home / "bin" / f"{engine}-plugin")
        if installed:
            _run([tool, "remove", PLUGIN_NAME], env, "remove the old xlir plugin")
        _run(
            [tool, "install", "--batch", zip_path.resolve().as_uri()],
            env,
            f"install the xlir plugin from {zip_path}",
        )
        marker.write_text(sha + "\n")
        marker.chmod(0o644)
    return sha


def _run(cmd: list[str], env: dict[str, str], what: str) -> None:
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip().splitlines()
        raise PluginError(f"cannot {what}: {output[-1] if output else result.returncode}")
