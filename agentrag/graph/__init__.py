"""Graphs as data: specs in YAML, compiled to LangGraph with checkpoints, budgets and traces."""

from agentrag.graph.compile import Graph, GraphEvent, load_graph, open_checkpointer
from agentrag.graph.context import ChatModel, Retriever, RunContext
from agentrag.graph.registry import NoParams, get_node, get_router, node, nodes, router, routers
from agentrag.graph.spec import END, GraphSpec, list_specs, load_spec, parse_spec

__all__ = [
    "END",
    "ChatModel",
    "Graph",
    "GraphEvent",
    "GraphSpec",
    "NoParams",
    "Retriever",
    "RunContext",
    "get_node",
    "get_router",
    "list_specs",
    "load_graph",
    "load_spec",
    "node",
    "nodes",
    "open_checkpointer",
    "parse_spec",
    "router",
    "routers",
]
