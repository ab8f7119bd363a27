"""`xlir es start|stop|status|env`: a local Elasticsearch node for trying XLIR out."""

from __future__ import annotations

import argparse
import json

from ..connection import EsSettings, connect, local_node_file
from ..errors import XlirError
from ..testing import elasticsearch as node


def register(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "es", help="start/stop a local Elasticsearch node (or a small cluster)"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = actions.add_parser("start", help="install (once) and start a node on 127.0.0.1")
    start.add_argument(
        "--heap", default=None, help="JVM heap, e.g. 1g (default: XLIR_ES_HEAP or 1g)"
    )
    start.add_argument("--version", default=node.ES_VERSION, help="Elasticsearch version")
    start.add_argument(
        "--nodes",
        type=int,
        default=1,
        help="nodes in the local cluster (default 1; 2+: loopback discovery, own ports and data)",
    )
    start.add_argument(
        "--tls", action="store_true", help="serve HTTPS with a CA generated here (single node)"
    )
    start.add_argument("--json", action="store_true", help="print the node as JSON (no password)")
    start.set_defaults(handler=run_start)
    stop = actions.add_parser("stop", help="stop the node `xlir es start` started")
    stop.set_defaults(handler=run_stop)
    status = actions.add_parser("status", help="is the local node up, and where")
    status.add_argument("--json", action="store_true", help="print the state as JSON (no password)")
    status.set_defaults(handler=run_status)
    env = actions.add_parser("env", help="print shell exports that point clients at the node")
    env.set_defaults(handler=run_env)
    from .es_model import register_install_model

    register_install_model(actions)


def running_node() -> node.NodeInfo | None:
    """The node recorded by `xlir es start`, if its process is still alive."""
    path = local_node_file()
    if not path.is_file():
        return None
    info = node.NodeInfo.load(path)
    if node.is_running(info):
        return info
    path.unlink()
    return None


def ensure_started(
    heap: str | None = None, version: str = node.ES_VERSION, nodes: int = 1, tls: bool = False
) -> tuple[node.NodeInfo, bool]:
    """The running local node, or a new one (or cluster of `nodes`); the flag says whether we
    started it."""
    info = running_node()
    if info:
        return info, False
    if nodes > 1:
        if tls:
            raise XlirError("--tls starts a single node: leave out --nodes, or --tls")
        from ..testing.cluster import start_cluster

        info = start_cluster(nodes, version=version, heap=heap)
    else:
        info = node.start(version=version, heap=heap, tls=tls)
    info.save(local_node_file())
    return info, True


def node_json(info: node.NodeInfo, **state: object) -> str:
    """What scripts need to know about the node; the password stays in the node file."""
    public = {"url": info.url, "version": info.version, "pid": info.pid, "user": info.user}
    if info.ca_certs:
        public["ca_certs"] = info.ca_certs
    return json.dumps(public | state)


def run_start(args: argparse.Namespace) -> int:
    info, started = ensure_started(args.heap, args.version, args.nodes, args.tls)
    if args.json:
        print(node_json(info, started=started))
        return 0
    verb = "started" if started else "already running"
    print(f"Elasticsearch {info.version} {verb} at {info.url} (pid {info.pid}, user {info.user}).")
    print(
        f"xlir commands use it automatically; credentials are in {local_node_file()} (mode 0600)."
    )
    return 0


def run_stop(args: argparse.Namespace) -> int:
    info = running_node()
    if not info:
        print("no local node is running")
        return 0
    node.stop(info)
    local_node_file().unlink(missing_ok=True)
    print(f"stopped Elasticsearch at {info.url}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    info = running_node()
    if not info:
        print(
            json.dumps({"running": False})
            if args.json
            else "no local node is running (start one with `xlir es start`)"
        )
        return 1
    try:
        es = connect(
            EsSettings(url=info.url, user=info.user, password=info.password, ca_certs=info.ca_certs)
        )
        health = es.cluster.health()
        nodes = cluster_nodes(es)
    except XlirError as exc:
        if args.json:
            print(node_json(info, running=True, status=None, error=str(exc)))
        else:
            print(f"node pid {info.pid} at {info.url} does not answer: {exc}")
        return 1
    if args.json:
        print(node_json(info, running=True, status=health["status"], nodes=nodes))
    else:
        print(
            f"Elasticsearch {info.version} at {info.url}: status {health['status']}, pid {info.pid}"
        )
        if len(nodes) > 1:
            print(f"cluster {health['cluster_name']}: {len(nodes)} nodes")
            for n in nodes:
                master = " (elected master)" if n["master"] else ""
                print(f"  {n['name']} {n['url']} roles {','.join(n['roles'])}{master}")
    return 0


def cluster_nodes(es) -> list[dict]:
    """Each node of the cluster: name, HTTP URL, roles, whether it is the elected master."""
    master = es.cluster.state(metric="master_node")["master_node"]
    found = es.nodes.info(metric="http")["nodes"]
    return [
        {
            "name": n["name"],
            "url": f"{n['http']['publish_address']}",
            "roles": sorted(n["roles"]),
            "master": node_id == master,
        }
        for node_id, n in sorted(found.items(), key=lambda item: item[1]["name"])
    ]


def run_env(args: argparse.Namespace) -> int:
    """Prints the password on purpose: the user asked for it, for their own shell."""
    info = running_node()
    if not info:
        raise XlirError("no local node is running (start one with `xlir es start`)")
    print(
        f"export XLIR_ES_URL={info.url} XLIR_ES_USER={info.user} XLIR_ES_PASSWORD={info.password}"
        + (f" XLIR_ES_CA_CERTS={info.ca_certs}" if info.ca_certs else "")
    )
    return 0
