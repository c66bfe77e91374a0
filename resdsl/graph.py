"""The op graph while it is built and checked, and its conversion to networkx.

Elaboration, shape inference and analysis need only ordered nodes with
attribute dicts and predecessor / successor maps. Importing networkx costs
more than checking resnet152 does (0.16 s against 0.04 s on the 2-core
machine), so the pipeline works on this small container and `Network.graph`
hands out a `networkx.DiGraph` the first time it is asked for.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator


class OpGraph:
    """Nodes in execution order, each a dict of attributes; edges carry a dict too."""

    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.pred: dict[str, dict[str, dict[str, Any]]] = {}
        self.succ: dict[str, dict[str, dict[str, Any]]] = {}

    def __contains__(self, node: str) -> bool:
        return node in self.nodes

    def __len__(self) -> int:
        return len(self.nodes)

    def add_node(self, node: str, **attrs: Any) -> None:
        self.nodes[node] = attrs
        self.pred[node] = {}
        self.succ[node] = {}

    def add_edge(self, u: str, v: str, **attrs: Any) -> None:
        self.succ[u][v] = self.pred[v][u] = attrs

    def remove_edge(self, u: str, v: str) -> None:
        del self.succ[u][v]
        del self.pred[v][u]

    def edges(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        for u, targets in self.succ.items():
            for v, attrs in targets.items():
                yield u, v, attrs

    def main_input(self, node: str) -> str:
        return next(u for u, edge in self.pred[node].items() if edge["role"] == "main")

    def reorder(self, key: Callable[[dict[str, Any]], Any]) -> None:
        """Re-sort the nodes (execution order after insertions); edges are untouched."""
        self.nodes = dict(sorted(self.nodes.items(), key=lambda item: key(item[1])))

    def to_networkx(self):
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_nodes_from(self.nodes.items())
        graph.add_edges_from(self.edges())
        return graph
