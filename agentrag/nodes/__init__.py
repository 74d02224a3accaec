"""Built-in graph nodes. Importing this package registers them (see agentrag.graph.registry).

A node is a plain async function ``(state, runtime, params) -> partial update``: it reads
:class:`~agentrag.state.RAGState`, gets its clients from ``runtime.context``
(:class:`~agentrag.graph.context.RunContext`) and its parameters from the graph spec.
"""

from agentrag.nodes import crag, generate, pack, query, rerank, srr

__all__ = ["crag", "generate", "pack", "query", "rerank", "srr"]
