"""Several local nodes in one cluster, and node faults: a kill (no clean shutdown) and a restart.

`start_cluster(2)` starts nodes that discover each other on loopback, each with its own
ports and data dir; `kill` and `restart` are what the fault tests do to a node.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from types import ModuleType

from . import elasticsearch, local_node
from .elasticsearch import ES_VERSION, _wait_until_up, start
from .local_node import NodeInfo, free_port, is_running, reap, stop


def kill(info: NodeInfo, timeout: float = 30) -> None:
    """SIGKILL the node (a crash: no clean shutdown), keeping its data for `restart`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(info.pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while is_running(info) and time.monotonic() < deadline:
        reap(info.pid)
        time.sleep(0.1)


def restart(info: NodeInfo, timeout: float = 240) -> NodeInfo:
    """Start a stopped or killed node again with its own data, ports and settings."""
    workdir = Path(info.workdir)
    launch = json.loads((workdir / "launch.json").read_text())
    proc = local_node.launch(workdir, launch["cmd"], dict(os.environ, **launch["env"]))
    info = replace(info, pid=proc.pid)
    _wait_until_up(info, proc, timeout)
    info.save(workdir / "node.json")
    return info


def start_cluster(
    nodes: int = 2,
    version: str = ES_VERSION,
    heap: str | None = None,
    timeout: float = 300,
    engine: ModuleType | None = None,
) -> NodeInfo:
    """`nodes` nodes on loopback (distinct ports and data dirs) forming one cluster.

    engine: the node module (`testing.elasticsearch`, the default, or `testing.opensearch`):
    its `start` and the name of its initial master setting (`INITIAL_MASTERS`).

    The first node is master-eligible and holds data; the others hold data only, so stopping
    any but the first keeps the cluster answering (a real cluster wants three master-eligible
    nodes to lose any one). Returns the first node with `url` listing every node's URL (a
    client fails over between them) and the others in `peers`; `stop` stops them all.
    """
    node = engine or elasticsearch
    name = f"xlir-local-{secrets.token_hex(4)}"
    password = secrets.token_hex(16)  # Elasticsearch's: one for the whole cluster
    start_node = partial(start, password=password) if node is elasticsearch else node.start
    transports = [free_port() for _ in range(nodes)]

    def one(i: int) -> NodeInfo:
        settings: dict[str, str | None] = {
            "discovery.type": None,
            "cluster.name": name,
            "node.name": f"xlir-{i + 1}",
            "transport.port": str(transports[i]),
            "discovery.seed_hosts": f"127.0.0.1:{transports[0]}",
        }
        if i == 0:
            settings[node.INITIAL_MASTERS] = "xlir-1"
        else:
            settings["node.roles"] = "data,ingest"
        return start_node(version, heap, timeout, settings=settings)

    with ThreadPoolExecutor(nodes) as pool:
        futures = [pool.submit(one, i) for i in range(nodes)]
        started = []
        for future in futures:
            try:
                started.append(future.result())
            except Exception:
                for info in started:
                    stop(info)
                raise
    first = started[0]
    cluster = replace(
        first,
        url=",".join(info.url for info in started),
        peers=[asdict(info) for info in started[1:]],
    )
    try:
        _wait_for_nodes(cluster, node.ENGINE, nodes, timeout)
    except Exception:
        stop(cluster)
        raise
    return cluster


def _wait_for_nodes(cluster: NodeInfo, engine: str, nodes: int, timeout: float) -> None:
    """Until the cluster counts `nodes` nodes (polled: the two clients spell the health
    API's own timeout differently)."""
    from ..connection import EsSettings, connect

    settings = EsSettings(
        url=cluster.url, user=cluster.user or None, password=cluster.password or None, engine=engine
    )
    client = connect(settings)
    deadline = time.monotonic() + timeout
    try:
        while client.cluster.health()["number_of_nodes"] < nodes:
            if time.monotonic() > deadline:
                raise local_node.NodeError(f"{nodes} nodes did not form one cluster in {timeout}s")
            time.sleep(0.5)
    finally:
        client.close()
