"""`agentrag ingest` / `agentrag kb ...` through typer's CliRunner and one real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import invoke
from tests.conftest import REPO


def tree(root: Path) -> Path:
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "cats.md").write_text("# Cats\n\nCats purr when they are content.")
    (root / "notes" / "dogs.txt").write_text("Dogs bark at the mail carrier every morning.")
    (root / "notes" / "blob.txt").write_bytes(b"\x00\x01\x02")
    (root / "notes" / "draft.md").write_text("Unfinished draft about cats.")
    return root / "notes"


def test_ingest_list_stats_search_sync_delete(tmp_path: Path) -> None:
    notes = tree(tmp_path)
    data = tmp_path / "data"
    res = invoke(data, "ingest", str(notes), "--kb", "pets", "--exclude", "draft.md")
    assert res.exit_code == 0, res.output
    assert "added" in res.output and "binary file (NUL bytes)" in res.output
    assert "chunks/s" in res.output
    res = invoke(data, "ingest", str(notes), "--kb", "pets", "--exclude", "draft.md", "--json")
    report = json.loads(res.output)
    assert (report["added"], report["unchanged"]) == (0, 2)

    assert invoke(data, "kb", "list").output.split() == ["pets"]
    st = json.loads(invoke(data, "kb", "stats", "pets", "--json").output)
    assert st["documents"] == 2 and st["chunks"] == st["store_count"] == st["bm25_chunks"] == 2
    assert "health      ok" in invoke(data, "kb", "stats", "pets").output

    hits = json.loads(invoke(data, "kb", "search", "pets", "why do cats purr", "-k", "1", "--json").output)
    assert hits[0]["source"].endswith("cats.md") and set(hits[0]["scores"]) >= {"bm25", "dense"}

    (notes / "dogs.txt").unlink()
    (notes / "birds.txt").write_text("Birds sing at dawn.")
    res = invoke(data, "kb", "sync", "pets", "--json")
    report = json.loads(res.output)
    assert (report["added"], report["removed"], report["unchanged"]) == (1, 1, 1)

    res = invoke(data, "kb", "delete", "pets", "--yes")
    assert res.exit_code == 0 and invoke(data, "kb", "list", "--json").output.strip() == "[]"


def test_errors_are_readable(tmp_path: Path) -> None:
    res = invoke(tmp_path / "data", "kb", "stats", "nope")
    assert res.exit_code == 1
    assert "kb.not_found" in res.output and "hint" in res.output
    res = invoke(tmp_path / "data", "ingest", str(tmp_path), "--kb", "bad/name")
    assert res.exit_code == 1 and "config.invalid" in res.output


@pytest.mark.slow
def test_real_subprocess(tmp_path: Path) -> None:
    notes = tree(tmp_path)
    data = tmp_path / "data"
    cmd = [sys.executable, "-m", "agentrag", "--data-dir", str(data)]
    out = subprocess.run(
        [*cmd, "ingest", str(notes), "--kb", "sub", "--include", "*.md", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    report = json.loads(out)
    assert report["added"] == 2 and report["skipped"] == []
    out = subprocess.run(
        [*cmd, "kb", "stats", "sub", "--json"], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout)["documents"] == 2
    # The progress bar goes to stderr; the summary to stdout.
    run = subprocess.run(
        [*cmd, "ingest", str(notes), "--kb", "sub"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0 and "unchanged" in run.stdout
