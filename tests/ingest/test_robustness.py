"""Ingest robustness against real Chroma, real bm25s and the real MiniLM embedder.

One odd entry never aborts a folder: symlink loops, a file name that is not UTF-8, a FIFO,
an unreadable folder, a path past PATH_MAX each become a skip line with the reason. A source
that becomes empty or binary stops being served. BEIR folders ingest only the corpus. Bad
arguments are typed errors.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from agentrag.errors import AgentragError, ConfigError, IngestError, RetrievalError
from agentrag.kb import KnowledgeBase
from agentrag.settings import Settings


@pytest.fixture
def kb(settings: Settings, embedder):
    base = KnowledgeBase.open(settings, "rob", embedder=embedder)
    yield base
    base.close()


def _odd_folder(root: Path) -> Path:
    root.mkdir(parents=True)
    for i in range(50):
        (root / f"good{i:02d}.txt").write_text(f"Good file number {i} talks about topic {i * 7}.")
    os.symlink("loop_b.txt", root / "loop_a.txt")
    os.symlink("loop_a.txt", root / "loop_b.txt")
    bad_name = os.fsencode(str(root)) + b"/caf\xe9.txt"  # Latin-1 é: not UTF-8
    with open(bad_name, "wb") as handle:
        handle.write(b"A file whose name is not UTF-8 but whose text is.")
    os.mkfifo(root / "pipe.txt")
    return root


def test_odd_folder_ingests_the_good_files_and_says_why_for_the_rest(kb, tmp_path: Path) -> None:
    root = _odd_folder(tmp_path / "odd")
    done = threading.Event()
    result: dict = {}

    def run() -> None:
        try:
            result["report"] = kb.ingest([root])
        except BaseException as exc:
            result["error"] = exc
        finally:
            done.set()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    # A FIFO opened for reading blocks until a writer appears: a hang here is the bug.
    assert done.wait(300), "ingest hung (a FIFO was opened?)"
    if "error" in result:
        raise result["error"]
    report = result["report"]
    reasons = {Path(s.source).name: s.reason for s in report.skipped}
    assert reasons["loop_a.txt"] == reasons["loop_b.txt"] == "symlink loop"
    assert "FIFO" in reasons["pipe.txt"]
    # The non-UTF-8 name is ingested (51 documents), with its name spelled from its bytes.
    assert report.added == 51, reasons
    sources = {c.source for c in kb.get(kb.index_ids()["manifest"])}
    assert any(s.endswith("caf\\xe9.txt") for s in sources)
    assert sum(1 for s in sources if Path(s).name.startswith("good")) == 50
    assert report.missing == []
    hits = kb.search("not UTF-8 name", k=3, mode="bm25")
    assert hits and hits[0].source.endswith("caf\\xe9.txt")
    # A rerun changes nothing and still does not hang.
    again = kb.ingest([root])
    assert (again.added, again.unchanged) == (0, 51)


def test_unreadable_folder_and_long_paths_are_skip_lines(kb, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "ok.txt").write_text("A readable file about owls.")
    deep = root
    # Past PATH_MAX (4096 on Linux) through relative creation: each component is legal.
    os.chdir(root)
    try:
        part = "d" * 200
        for _ in range(22):
            os.mkdir(part)
            os.chdir(part)
        with open("deep.txt", "w") as handle:
            handle.write("A file too deep to name.")
    finally:
        os.chdir(tmp_path)
    report = kb.ingest([root])
    assert report.added == 1
    assert any("too long" in s.reason for s in report.skipped), report.skipped
    del deep


def test_missing_path_is_reported_and_the_cli_exits_non_zero(settings: Settings, kb, tmp_path: Path) -> None:
    report = kb.ingest([tmp_path / "nope"])
    assert report.missing == [str(tmp_path / "nope")]
    from typer.testing import CliRunner

    from agentrag.cli.app import app

    env = {"AGENTRAG_DATA_DIR": str(tmp_path / "clidata")}
    res = CliRunner().invoke(app, ["ingest", str(tmp_path / "nope"), "--json"], env=env)
    assert res.exit_code != 0, res.output


def test_redaction_emptied_and_binary_files_stop_being_served(kb, tmp_path: Path) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "secret.txt").write_text("The launch code for the vault is zebra-omega-77.")
    (root / "blob.txt").write_text("Quarterly numbers mention pelicans and revenue.")
    (root / "keep.txt").write_text("An unrelated note about gardening.")
    kb.ingest([root])
    assert kb.search("launch code vault zebra", k=1, mode="bm25")[0].source.endswith("secret.txt")
    (root / "secret.txt").write_text("")
    (root / "blob.txt").write_bytes(b"\x00\x01binary now")
    report = kb.sync()
    assert report.removed == 2, report
    for mode in ("bm25", "dense", "hybrid"):
        hits = kb.search("launch code vault zebra-omega-77", k=5, mode=mode)
        assert not any(h.source.endswith(("secret.txt", "blob.txt")) for h in hits), mode
    assert any("removed from the index" in s.reason for s in report.skipped)
    assert {c.source.rsplit("/", 1)[-1] for c in kb.get(kb.index_ids()["manifest"])} == {"keep.txt"}
    ids = kb.index_ids()
    assert ids["manifest"] == ids["store"] == ids["bm25"]


def test_redaction_on_plain_ingest(kb, tmp_path: Path) -> None:
    f = tmp_path / "note.txt"
    f.write_text("Password hint: the blue heron flies at dawn.")
    kb.ingest([f])
    f.write_text("   \n")
    report = kb.ingest([f])
    assert report.removed == 1
    assert kb.search("blue heron dawn", k=3) == []


def test_beir_folder_ingests_only_the_corpus(kb, tmp_path: Path) -> None:
    beir = tmp_path / "beir"
    beir.mkdir()
    (beir / "corpus.jsonl").write_text(
        json.dumps({"_id": "d1", "title": "T", "text": "Corpus text about volcanoes."}) + "\n"
    )
    (beir / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "what erupts?"}) + "\n")
    report = kb.ingest([beir])
    assert report.added == 1
    assert any("BEIR queries" in s.reason for s in report.skipped)
    assert all("queries.jsonl" not in c.source for c in kb.get(kb.index_ids()["manifest"]))


@pytest.mark.parametrize("k", [0, -3, "5", 2.5, True])
def test_bad_k_is_a_typed_error(kb, k) -> None:
    with pytest.raises(RetrievalError, match="k must") as info:
        kb.search("anything", k=k)
    assert info.value.hint


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda kb: kb.search(None), RetrievalError),
        (lambda kb: kb.search("x", mode="fuzzy"), RetrievalError),
        (lambda kb: kb.search("x", alpha=2.0), RetrievalError),
        (lambda kb: kb.search("x", candidates=0), RetrievalError),
        (lambda kb: kb.ingest([123]), IngestError),
        (lambda kb: kb.ingest(["."], include="*.md"), IngestError),
        (lambda kb: kb.get("abc"), RetrievalError),
    ],
)
def test_api_arguments_are_validated(kb, call, error) -> None:
    with pytest.raises(error):
        call(kb)


def test_cli_search_k_below_one_is_refused(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from agentrag.cli.app import app

    for k in ("0", "-3"):
        res = CliRunner().invoke(
            app, ["kb", "search", "x", "q", "-k", k], env={"AGENTRAG_DATA_DIR": str(tmp_path)}
        )
        assert res.exit_code != 0 and "-k" in res.output


def test_data_dir_that_is_a_file_is_a_typed_error(tmp_path: Path, embedder) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("not a folder")
    s = Settings.load(config=None, data_dir=blocker)
    with pytest.raises(ConfigError, match="not a folder") as info:
        KnowledgeBase.open(s, "x", embedder=embedder)
    assert isinstance(info.value, AgentragError) and "data_dir" in info.value.hint


def test_ingest_documents_refuses_what_is_not_a_document(kb) -> None:
    with pytest.raises(IngestError, match="Document"):
        kb.ingest_documents(["plain string"])
    with pytest.raises(IngestError, match="iterable"):
        kb.ingest_documents("plain string")
