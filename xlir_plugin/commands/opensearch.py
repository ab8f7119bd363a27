"""`xlir os start|stop|status|env|install-model`: a local OpenSearch node (with the k-NN plugin; plain HTTP on
loopback: the distribution has no security plugin), the same actions as `xlir es`."""

from __future__ import annotations

import argparse

from ..testing import opensearch as node
from ..testing.local_node import NodeInfo
from .node import add_actions, ensure_started


def register(verbs: argparse._SubParsersAction) -> None:
    actions = add_actions(verbs, "os", node, start_node)
    from .es_model import register_install_model

    register_install_model(actions, node.ENGINE, node.LABEL)


def start_node(args: argparse.Namespace) -> NodeInfo:
    """A node, or a cluster of `--nodes` on loopback."""
    if args.nodes > 1:
        from ..testing.cluster import start_cluster

        return start_cluster(args.nodes, version=args.version, heap=args.heap, engine=node)
    return node.start(version=args.version, heap=args.heap)


def ensure_local() -> tuple[NodeInfo, bool]:
    """The running local node, or a new one with the defaults (for `xlir demo`)."""
    return ensure_started(
        argparse.Namespace(engine=node.ENGINE, heap=None, version=node.VERSION), start_node
    )
