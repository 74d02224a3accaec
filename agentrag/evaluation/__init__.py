"""Side-by-side evaluations: retrieval on BEIR folders, question answering on HotpotQA.

``agentrag eval retrieval --data DIR`` and ``agentrag eval qa --data FILE`` run on these
modules: :mod:`~agentrag.evaluation.data` reads the data sets, :mod:`~agentrag.evaluation.runner`
runs jobs resumably (one cached JSONL line per finished query), :mod:`~agentrag.evaluation.retrieval`
and :mod:`~agentrag.evaluation.qa` score, and :mod:`~agentrag.evaluation.report` writes
``results.json``, ``report.md`` and ``report.png``. Submodules import their heavy dependencies
lazily; import them directly.
"""
