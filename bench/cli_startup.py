"""How long `agentrag --help` takes, next to a bare interpreter start in the same run.

Run: .venv/bin/python bench/cli_startup.py [--runs 20]
Target (issue 2): `agentrag --help` under 0.5 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def timed(cmd: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    exe = shutil.which("agentrag") or f"{sys.prefix}/bin/agentrag"
    timed([exe, "--help"], 2)  # warm the page cache
    base = timed([sys.executable, "-c", "pass"], args.runs)
    cli = timed([exe, "--help"], args.runs)
    b, c = statistics.median(base), statistics.median(cli)
    print(f"python -c pass   median {b * 1000:7.1f} ms")
    p95 = sorted(cli)[int(0.95 * len(cli)) - 1]
    print(f"agentrag --help  median {c * 1000:7.1f} ms  p95 {p95 * 1000:.1f} ms")
    print(f"ratio to bare interpreter: {c / b:.2f}x   target < 500 ms: {'OK' if c < 0.5 else 'MISSED'}")


if __name__ == "__main__":
    main()
