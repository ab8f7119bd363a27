"""A real OpenSearch node (or a small cluster) on 127.0.0.1, installed from Maven Central.

The `integ-test-zip` distribution (no JDK; analysis-common, lang-painless and ingest-common as
modules) plus the k-NN plugin (`org.opensearch.plugin:opensearch-knn`), installed with
`bin/opensearch-plugin install --batch`. That zip carries no security plugin, so the node
serves plain HTTP without authentication: safe only because it listens on loopback. The k-NN
zip on Maven Central carries no native libraries (faiss, nmslib): only `"engine": "lucene"`
works on such a node (`engines/opensearch.py` creates nothing else). Under root the node runs
as `nobody`, like the Elasticsearch one (`local_node.py`).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from . import local_node
from .local_node import NodeError, NodeInfo, own
from .plugin_zips import plugin_zip

OS_VERSION = os.environ.get("XLIR_OS_VERSION", "3.5.0")
VERSION = OS_VERSION
ENGINE, LABEL = "opensearch", "OpenSearch"
GROUP = "org.opensearch.distribution.integ-test-zip"
INITIAL_MASTERS = "cluster.initial_cluster_manager_nodes"  # OpenSearch 2+'s name
KNN_GROUP = "org.opensearch.plugin"
MIN_JAVA = 21


def install_root() -> Path:
    """Where OpenSearch distributions are unpacked (`XLIR_OS_HOME` overrides)."""
    return local_node.install_root("opensearch")


def install(version: str = OS_VERSION) -> Path:
    """Unpack the distribution and install the k-NN plugin once; return the home."""

    def add_knn(home: Path) -> None:
        knn_zip = local_node.fetch(KNN_GROUP, "opensearch-knn", f"{version}.0", install_root())
        _plugin_tool(home, ["install", "--batch", knn_zip.resolve().as_uri()], "install k-NN")

    return local_node.install(install_root(), GROUP, "opensearch", version, add_knn)


def _plugin_tool(home: Path, args: list[str], what: str) -> None:
    env = dict(os.environ, OPENSEARCH_JAVA_HOME=str(find_java_home()))
    result = subprocess.run(
        [str(home / "bin" / "opensearch-plugin"), *args], env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip().splitlines()
        raise NodeError(f"cannot {what} into {home}: {output[-1] if output else result.returncode}")


def find_java_home(minimum: int = MIN_JAVA) -> Path:
    """A JDK for OpenSearch 3 (21+): `OPENSEARCH_JAVA_HOME`, `JAVA_HOME`, the machine's JDKs."""
    return local_node.find_java_home(
        minimum, ("OPENSEARCH_JAVA_HOME", "JAVA_HOME"), f"OpenSearch {OS_VERSION}"
    )


def start(
    version: str = OS_VERSION,
    heap: str | None = None,
    timeout: float = 240,
    *,
    settings: dict[str, str | None] | None = None,
) -> NodeInfo:
    """Install if needed, start a node on a free loopback port, and wait until it answers.

    settings: extra `-E` settings (a None value drops a default one, e.g. `discovery.type`).
    """
    home = install(version)
    java_home = find_java_home()
    zip_path = plugin_zip("opensearch", version)  # plugins/opensearch, or XLIR_OS_PLUGIN_ZIP
    if zip_path is not None:
        from .es_plugin import ensure_plugin

        ensure_plugin(home, java_home, zip_path, engine="opensearch")
    workdir = local_node.new_workdir(home, "xlir-os-")
    _private_jvm_paths(workdir)
    own(workdir)
    heap = heap or os.environ.get("XLIR_OS_HEAP", "1g")
    node_settings = local_node.loopback_settings(workdir)
    executable = home / "bin" / "opensearch"
    java = (java_home, heap)
    proc = local_node.launch_node(workdir, executable, node_settings, settings, java, "OPENSEARCH_")
    url = f"http://127.0.0.1:{node_settings['http.port']}"
    info = NodeInfo(url, "", "", proc.pid, str(workdir), version, engine="opensearch")
    wait_until_up(info, proc, timeout)
    info.save(workdir / "node.json")
    return info


def _private_jvm_paths(workdir: Path) -> None:
    """jvm.options writes the GC log, error files and heap dumps relative to the home (the
    launcher runs there), which `nobody` may not write: point them into the node's own dir."""
    options = workdir / "config" / "jvm.options"
    text = options.read_text()
    text = text.replace("=logs/", f"={workdir}/logs/").replace(":logs/", f":{workdir}/logs/")
    options.write_text(text.replace("HeapDumpPath=data", f"HeapDumpPath={workdir}/data"))


def wait_until_up(info: NodeInfo, proc: subprocess.Popen, timeout: float) -> None:
    from opensearchpy.exceptions import ConnectionError, TransportError

    from ..connection import EsSettings, connect
    from ..errors import XlirError

    settings = EsSettings(url=info.url, engine="opensearch", request_timeout=5)
    local_node.wait_until_up(
        info,
        proc,
        timeout,
        lambda: connect(settings).close(),
        (XlirError, ConnectionError, TransportError),
        "OpenSearch",
    )
