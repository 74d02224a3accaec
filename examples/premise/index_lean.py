"""Index a Lean 4 source tree as a premise knowledge base (one chunk per declaration).

Usage::

    python examples/premise/index_lean.py LEAN_DIR [--kb premises]

For Mathlib, ``LEAN_DIR`` is the folder holding ``Mathlib/`` (module names are paths relative
to it). The knowledge base lives under ``$AGENTRAG_DATA_DIR`` (default ``.agentrag``).
Re-running on an unchanged tree embeds nothing. Same as ``agentrag premise index``.

The standard setup is the whole Mathlib tree (~246k declarations), e.g.::

    git clone https://github.com/leanprover-community/mathlib4
    /usr/bin/time -v python examples/premise/index_lean.py mathlib4 --kb mathlib
    python examples/premise/eval_premises.py path/to/MathlibQR.json --kb mathlib

Embedding runs through ONNX Runtime int8 by default (``[embedder] runtime``), exported once
from the local model folder. Measured with ``agentrag premise index`` (the same code) on a 2-core
box shared with a busy vLLM server: 26.9 declarations/s, peak RSS 2.5 GB, ~8 MB on disk per
1,000 declarations (embedding cache included), so ~2.5 h and ~2 GB for the whole tree there;
an interrupted run resumes where it stopped when run again (see the README's premise section).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agentrag import KnowledgeBase, Settings
from agentrag.premise.corpus import IndexProgress, index_tree


def main(argv: list[str]) -> int:
    """Extract and index the declarations under a Lean tree; print what was done."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lean_dir", type=Path)
    parser.add_argument("--kb", default="premises", help="premise knowledge base name")
    args = parser.parse_args(argv)

    def progress(event: IndexProgress) -> None:
        # Progress goes to stderr: stdout stays the report, easy to parse.
        print(
            f"  {event.files_done}/{event.files_total} files, {event.declarations} declarations",
            file=sys.stderr,
        )

    with KnowledgeBase.open(Settings.load().for_premises(), args.kb) as kb:
        report = index_tree(kb, args.lean_dir, progress=progress)
    print(f"kb: {report.kb}")
    print(f"files: {report.files} ({len(report.failed)} failed)")
    print(
        f"declarations: {report.declarations} (added {report.added}, unchanged {report.unchanged}, "
        f"replaced {report.replaced}, removed {report.removed})"
    )
    print(f"index: {report.documents} declarations, {report.disk_bytes / 1e6:.1f} MB, {report.seconds:.1f}s")
    for failure in report.failed:
        print(f"failed: {failure['path']}: {failure['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
