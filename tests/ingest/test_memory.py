"""Ingesting a 50 MB text file keeps peak memory bounded (measured in a subprocess).

Before streaming, the chunker tokenized a whole document at once (~230 MB of RSS per MB of
text): a 50 MB file was OOM-killed at 8.1 GB. Real embedded Chroma and real bm25s; the
embedder is the deterministic bag-of-words fake, because embedding ~50k chunks with MiniLM on
this 2-core CPU takes far longer than a test may (the other ingest tests use real MiniLM).
The peak is ``VmHWM`` of the ingesting process (tests/support/memory_driver.py).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

_WORDS = (  # noqa: SIM905 - a word list reads better as text
    "the of and a to in is was that for it with as his on be at by had are but from or have an "
    "they which one you were all her she there would their we him been has when who will no "
    "more if out so said what up its about into than them can only other time new some could "
    "these two may first then "
).split()
NEEDLE = "A needle sentence about a purple walrus hides here. "


def _write_text(path: Path, mb: int) -> None:
    rng = random.Random(1)
    size = 0
    i = 0
    with path.open("w") as f:
        while size < mb * 1_000_000:
            s = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(8, 20))).capitalize() + ". "
            if i % 12 == 11:
                s += "\n\n"
            if i == 5000:
                s = NEEDLE
            f.write(s)
            size += len(s)
            i += 1


def _ingest(tmp: Path, mb: int) -> dict:
    text = tmp / f"big{mb}.txt"
    _write_text(text, mb)
    cmd = [sys.executable, "-m", "tests.support.memory_driver", str(tmp / f"data{mb}"), str(text)]
    proc = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("REPORT "))
    return json.loads(line[len("REPORT ") :])


def test_a_50mb_file_ingests_under_a_memory_ceiling(tmp_path: Path) -> None:
    small = _ingest(tmp_path, 5)
    big = _ingest(tmp_path, 50)
    assert big["report"]["skipped"] == [] and big["chunks"] > 9 * small["chunks"]
    assert "purple walrus" in big["top"]
    peaks = {mb: (r["pipeline_peak_rss_mb"], r["peak_rss_mb"]) for mb, r in ((5, small), (50, big))}
    # A ceiling far below the 8.1 GB OOM.
    assert big["peak_rss_mb"] < 1024, peaks
    # Reading, chunking, embedding and writing: bounded by a part, not the file (10x the text).
    assert big["pipeline_peak_rss_mb"] < 1.5 * small["pipeline_peak_rss_mb"], peaks
    # What still grows is the BM25 rebuild over the whole knowledge base: well below 10x.
    assert big["peak_rss_mb"] < 4 * small["peak_rss_mb"], peaks
    print("peak RSS MB (pipeline, overall):", peaks)
