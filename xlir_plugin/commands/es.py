"""`xlir es start|stop|status|env|install-model`: a local Elasticsearch node for trying XLIR
out (the actions every engine has are in `node.py`)."""

from __future__ import annotations

import argparse

from ..errors import XlirError
from ..testing import elasticsearch as node
from ..testing.local_node import NodeInfo
from .node import add_actions, ensure_started


def register(verbs: argparse._SubParsersAction) -> None:
    actions = add_actions(verbs, "es", node, start_node)
    actions.choices["start"].add_argument(
        "--tls", action="store_true", help="serve HTTPS with a CA generated here (single node)"
    )
    from .es_model import register_install_model

    register_install_model(actions, node.ENGINE, node.LABEL)


def start_node(args: argparse.Namespace) -> NodeInfo:
    """A node (or a cluster of `--nodes`), HTTPS with `--tls`."""
    if args.nodes > 1:
        if args.tls:
            raise XlirError("--tls starts a single node: leave out --nodes, or --tls")
        from ..testing.cluster import start_cluster

        return start_cluster(args.nodes, version=args.version, heap=args.heap)
    return node.start(version=args.version, heap=args.heap, tls=args.tls)


def ensure_local() -> tuple[NodeInfo, bool]:
    """The running local node, or a new single node with the defaults (for `xlir demo`)."""
    defaults = argparse.Namespace(
        engine=node.ENGINE, heap=None, version=node.VERSION, nodes=1, tls=False
    )
    return ensure_started(defaults, start_node)
