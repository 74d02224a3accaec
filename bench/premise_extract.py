"""Extract a whole Mathlib tree and report speed, failures and MathlibQR gold-name coverage.

Not part of the test run (it needs a Mathlib checkout). Example::

    git --git-dir=/work/.mirror/mpenciak+mathlib4/repo archive 5352afcc Mathlib | tar -x -C /tmp/mathlib
    python bench/premise_extract.py --root /tmp/mathlib

Prints: files, declarations (by kind), seconds, declarations per second, parse failures, and how
many MathlibQR gold ``full_name`` values the extractor finds exactly (with the misses listed, and
whether the gold file:line agrees with the declaration line we found).
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import time
from pathlib import Path

from agentrag.premise.extract import Declaration, ExtractionFailure, iter_tree

DEFAULT_GOLD = Path("/work/shared/data/mathlib/MathlibQR.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, type=Path, help="directory holding Mathlib/")
    parser.add_argument("--gold", type=Path, default=DEFAULT_GOLD, help="MathlibQR.json")
    parser.add_argument("--progress", action="store_true", help="show a progress bar")
    parser.add_argument("--dump", type=Path, help="write all declarations as JSON lines here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    failures: list[ExtractionFailure] = []
    files = 0

    def count(_path: Path, _n: int) -> None:
        nonlocal files
        files += 1

    started = time.perf_counter()
    cpu_started = time.process_time()
    decls: list[Declaration] = list(
        iter_tree(args.root, progress=args.progress, failures=failures, on_file=count)
    )
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started

    kinds = collections.Counter(d.kind for d in decls)
    print(f"files            {files} extracted, {len(failures)} failed")
    print(f"declarations     {len(decls)}")
    # CPU time is the honest figure on a shared machine: wall time includes waiting for a core.
    print(f"seconds          {seconds:.1f} wall, {cpu_seconds:.1f} CPU (one process, one core)")
    print(f"decls/s          {len(decls) / seconds:,.0f} wall, {len(decls) / cpu_seconds:,.0f} CPU")
    print("by kind          " + ", ".join(f"{k} {n}" for k, n in kinds.most_common()))
    print(f"anonymous inst.  {sum(d.anonymous for d in decls)}")
    for failure in failures:
        print(f"FAILED {failure.path}: {failure.reason}")

    if args.dump:
        with args.dump.open("w", encoding="utf-8") as fh:
            for d in decls:
                fh.write(d.model_dump_json() + "\n")

    if args.gold.exists():
        gold = json.loads(args.gold.read_text(encoding="utf-8"))
        by_name: dict[str, list[Declaration]] = collections.defaultdict(list)
        for d in decls:
            by_name[d.name].append(d)
        found = [g for g in gold if g["full_name"] in by_name]
        print(f"MathlibQR gold   {len(found)}/{len(gold)} = {100 * len(found) / len(gold):.1f} % found")
        line_ok = 0
        with_line = 0
        for g in gold:
            file, _, line = g["file"].partition(":")
            hits = by_name.get(g["full_name"], [])
            if not hits:
                print(f"  MISS {g['full_name']} ({g['kind']}, {g['file']})")
                continue
            if line:
                with_line += 1
                if any(h.path == file and h.decl_line == int(line) for h in hits):
                    line_ok += 1
        # Informative only: the gold lines come from a later Mathlib than the usual checkout.
        print(f"gold file:line   {line_ok}/{with_line} found names sit at the gold file and line")


if __name__ == "__main__":
    main()
