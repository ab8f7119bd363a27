"""`xlir es|os start|stop|status|env`: a local node of either engine, the same four actions.

What differs per engine (the node module, its extra start flags) is given by `es.py` and
`opensearch.py`; the node each engine started is recorded in its own file
(`connection.local_node_file(engine)`), so an Elasticsearch and an OpenSearch node can run
side by side.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from types import ModuleType

from ..connection import EsSettings, connect, local_node_file
from ..engines import engine_named
from ..errors import XlirError
from ..testing.local_node import NodeInfo, is_running, stop

Starter = Callable[[argparse.Namespace], NodeInfo]


def add_actions(
    verbs: argparse._SubParsersAction, verb: str, node: ModuleType, starter: Starter
) -> argparse._SubParsersAction:
    """The `verb` parser with start (its flags: heap, version, --json), stop, status and env;
    returns its actions, for an engine's own flags and actions."""
    label = node.LABEL
    parser = verbs.add_parser(verb, help=f"start/stop a local {label} node (or a small cluster)")
    parser.set_defaults(engine=node.ENGINE)
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = actions.add_parser("start", help="install (once) and start a node on 127.0.0.1")
    heap_env = f"XLIR_{verb.upper()}_HEAP"
    start.add_argument(
        "--heap", default=None, help=f"JVM heap, e.g. 1g (default: {heap_env} or 1g)"
    )
    start.add_argument("--version", default=node.VERSION, help=f"{label} version")
    start.add_argument(
        "--nodes",
        type=int,
        default=1,
        help="nodes in the local cluster (default 1; 2+: loopback discovery, own ports and data)",
    )
    start.add_argument("--json", action="store_true", help="print the node as JSON (no password)")
    start.set_defaults(handler=lambda args: run_start(args, starter, label))
    stop_parser = actions.add_parser("stop", help=f"stop the node `xlir {verb} start` started")
    stop_parser.set_defaults(handler=lambda args: run_stop(args, label))
    status = actions.add_parser("status", help="is the local node up, and where")
    status.add_argument("--json", action="store_true", help="print the state as JSON (no password)")
    status.set_defaults(handler=lambda args: run_status(args, label))
    env = actions.add_parser("env", help="print shell exports that point clients at the node")
    env.set_defaults(handler=run_env)
    return actions


def running_node(engine: str = "elasticsearch") -> NodeInfo | None:
    """The node recorded by `xlir es|os start`, if its process is still alive."""
    path = local_node_file(engine)
    if not path.is_file():
        return None
    info = NodeInfo.load(path)
    if is_running(info):
        return info
    path.unlink()
    return None


def ensure_started(args: argparse.Namespace, starter: Starter) -> tuple[NodeInfo, bool]:
    """The running local node, or a new one from `starter`; the flag says whether we started it."""
    info = running_node(args.engine)
    if info:
        return info, False
    info = starter(args)
    info.save(local_node_file(args.engine))
    return info, True


def node_json(info: NodeInfo, **state: object) -> str:
    """What scripts need to know about the node; the password stays in the node file."""
    public = {"url": info.url, "version": info.version, "pid": info.pid, "user": info.user}
    if info.ca_certs:
        public["ca_certs"] = info.ca_certs
    return json.dumps(public | state)


def run_start(args: argparse.Namespace, starter: Starter, label: str) -> int:
    info, started = ensure_started(args, starter)
    if args.json:
        print(node_json(info, started=started))
        return 0
    verb = "started" if started else "already running"
    who = f", user {info.user}" if info.user else ", no authentication: loopback only"
    print(f"{label} {info.version} {verb} at {info.url} (pid {info.pid}{who}).")
    print(f"xlir commands use it automatically; it is recorded in {local_node_file(args.engine)}.")
    return 0


def run_stop(args: argparse.Namespace, label: str) -> int:
    info = running_node(args.engine)
    if not info:
        print("no local node is running")
        return 0
    stop(info)
    local_node_file(args.engine).unlink(missing_ok=True)
    print(f"stopped {label} at {info.url}")
    return 0


def run_status(args: argparse.Namespace, label: str) -> int:
    info = running_node(args.engine)
    if not info:
        verb = "os" if args.engine == "opensearch" else "es"
        print(
            json.dumps({"running": False})
            if args.json
            else f"no local node is running (start one with `xlir {verb} start`)"
        )
        return 1
    try:
        client = connect(node_settings(info))
        health = client.cluster.health()
        nodes = cluster_nodes(client, engine_named(info.engine).master_metric)
    except XlirError as exc:
        if args.json:
            print(node_json(info, running=True, status=None, error=str(exc)))
        else:
            print(f"node pid {info.pid} at {info.url} does not answer: {exc}")
        return 1
    if args.json:
        print(node_json(info, running=True, status=health["status"], nodes=nodes))
    else:
        print(f"{label} {info.version} at {info.url}: status {health['status']}, pid {info.pid}")
        if len(nodes) > 1:
            print(f"cluster {health['cluster_name']}: {len(nodes)} nodes")
            for n in nodes:
                master = " (elected master)" if n["master"] else ""
                print(f"  {n['name']} {n['url']} roles {','.join(n['roles'])}{master}")
    return 0


def node_settings(info: NodeInfo) -> EsSettings:
    """How to reach a recorded node."""
    return EsSettings(
        url=info.url,
        user=info.user or None,
        password=info.password or None,
        ca_certs=info.ca_certs,
        engine=info.engine,
    )


def cluster_nodes(client, master_metric: str = "master_node") -> list[dict]:
    """Each node of the cluster: name, HTTP URL, roles, whether it is the elected master."""
    master = client.cluster.state(metric=master_metric)[master_metric]
    found = client.nodes.info(metric="http")["nodes"]
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
    info = running_node(args.engine)
    if not info:
        raise XlirError("no local node is running (start one with `xlir es|os start`)")
    exports = [f"XLIR_ES_URL={info.url}"]
    if info.user:
        exports += [f"XLIR_ES_USER={info.user}", f"XLIR_ES_PASSWORD={info.password}"]
    if info.ca_certs:
        exports.append(f"XLIR_ES_CA_CERTS={info.ca_certs}")
    if args.engine != "elasticsearch":
        exports.append(f"XLIR_ENGINE={args.engine}")
    print("export " + " ".join(exports))
    return 0
