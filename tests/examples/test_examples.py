"""Every example runs, as a user would run it, and prints what it promises.

Each example is a subprocess of this interpreter with a temp data directory given through
``AGENTRAG_DATA_DIR``: real Chroma (or the example's own store), real bm25s, the real embedding
model. The ones that ask questions talk to the real vLLM server (``vllm_server``) and are slow.
Assertions are on the structure and content of the output, not only the exit code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.examples.conftest import EXAMPLES, REPO, run_example

LEAN = REPO / "tests" / "premise" / "data"
QR = LEAN / "eval" / "qr_small.json"
QUESTION = "How long is the Aurora K2 warranty and what does it cover?"


def _llm_env(tmp_path: Path, vllm_server: str, server_settings) -> dict[str, str]:
    return {
        "AGENTRAG_DATA_DIR": str(tmp_path / "data"),
        "AGENTRAG_GENERATOR__API_BASE": vllm_server,
        "AGENTRAG_GENERATOR__MODEL": f"hosted_vllm/{server_settings.served_name}",
        # A 135M model on 2 shared cores: short answers and no per-passage evidence
        # generations keep one question to about a minute; the pipeline is the same.
        "AGENTRAG_GENERATOR__MAX_TOKENS": "160",
        "AGENTRAG_RERANK__GENERATE_EVIDENCE": "false",
    }


def _section(out: str, label: str) -> tuple[str, list[str]]:
    """The value after ``label:`` and the indented lines under it."""
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(label + ":"):
            body = []
            for follow in lines[i + 1 :]:
                if not follow.startswith("  "):
                    break
                body.append(follow.strip())
            return line.split(":", 1)[1].strip(), body
    raise AssertionError(f"no {label!r} section in:\n{out}")


# --------------------------------------------------------------------------- no LLM


def test_custom_vector_store_example(tmp_path: Path) -> None:
    env = {"AGENTRAG_DATA_DIR": str(tmp_path / "data")}
    out = run_example("custom_vector_store.py", env=env).stdout
    store_dir = tmp_path / "data" / "kb" / "custom-store" / "numpy"
    assert f"store: numpy-dir, 5 vectors in {store_dir}" in out
    assert "ingested: 5 added, 0 unchanged, 5 chunks" in out
    assert (store_dir / "vectors.npy").is_file() and len(
        json.loads((store_dir / "records.json").read_text())
    ) == 5
    dense, hybrid = out.split("hybrid:")
    hit = re.compile(r"^  (\d\.\d{3}) (\S+):(\d+)-(\d+) (.*)$", re.M)
    dense_hits, hybrid_hits = hit.findall(dense), hit.findall(hybrid)
    assert len(dense_hits) == 3 and len(hybrid_hits) == 3
    assert dense_hits[0][1] == "warranty.md" and hybrid_hits[0][1] == "warranty.md"
    assert all(h[4].startswith("dense=") and "bm25=" not in h[4] for h in dense_hits)
    assert "bm25=" in hybrid_hits[0][4] and "convex=" in hybrid_hits[0][4]
    scores = [float(h[0]) for h in dense_hits]
    assert scores == sorted(scores, reverse=True)

    # A second run reopens the store from its files: nothing to embed, same vectors.
    again = run_example("custom_vector_store.py", env=env).stdout
    assert "ingested: 0 added, 5 unchanged, 0 chunks" in again and "5 vectors" in again


def test_custom_graph_validates_with_its_registered_node() -> None:
    out = run_example("custom_graph/run.py", "--show").stdout
    assert out.startswith("graph allowlisted_rag: ")
    assert 'allowlist["allowlist<br/>(source_allowlist)"]' in out
    edges = re.findall(r"^  (\w+) --> (\w+)$", out, re.M)
    assert edges == [
        ("START", "rewrite"),
        ("rewrite", "retrieve"),
        ("retrieve", "rerank"),
        ("rerank", "allowlist"),
        ("allowlist", "pack"),
        ("pack", "generate"),
        ("generate", "END_"),
    ]


def test_custom_graph_spec_needs_the_node_registered() -> None:
    # The spec names a node only the script registers: loading it bare must fail loudly.
    from agentrag.errors import GraphSpecError
    from agentrag.graph import load_spec

    spec_file = EXAMPLES / "custom_graph" / "graph.yaml"
    with pytest.raises(GraphSpecError, match="unknown node 'source_allowlist'"):
        load_spec(spec_file)


def test_premise_examples_index_search_eval(tmp_path: Path) -> None:
    env = {"AGENTRAG_DATA_DIR": str(tmp_path / "data")}
    out = run_example("premise/index_lean.py", str(LEAN), "--kb", "lean", env=env).stdout
    assert "files: 3 (0 failed)" in out
    assert "declarations: 78 (added 78, unchanged 0, replaced 0, removed 0)" in out
    again = run_example("premise/index_lean.py", str(LEAN), "--kb", "lean", env=env).stdout
    assert "declarations: 78 (added 0, unchanged 78, replaced 0, removed 0)" in again

    out = run_example(
        "premise/search_premises.py",
        "every Kan complex is a quasicategory",
        "--kb",
        "lean",
        "-k",
        "3",
        env=env,
    ).stdout
    hits = re.findall(r"^(\d+)\. (\S+) \[(\w+)\] (\S+):(\d+) (.*)$", out, re.M)
    assert [h[0] for h in hits] == ["1", "2", "3"]
    assert hits[0][1:5] == ("SSet.instQuasicategoryOfKanComplex", "instance", "MathlibExcerpts", "36")
    assert "convex=" in hits[0][5]
    assert "(S : SSet) [KanComplex S] : Quasicategory S" in out

    out = run_example(
        "premise/search_premises.py", "Lattice", "--kb", "lean", "--mode", "bm25", env=env
    ).stdout
    names = re.findall(r"^\d+\. (\S+) ", out, re.M)
    assert "Lattice" in names and len(names) == 3  # only declarations containing the word

    run_dir = tmp_path / "qr-run"
    out = run_example(
        "premise/eval_premises.py", str(QR), "--kb", "lean", "--out", str(run_dir), env=env
    ).stdout
    assert "**MathlibQR** on `lean` · hybrid · k=10 · 16 queries" in out
    assert "Gold names in the corpus: 3/4" in out
    styles = re.findall(r"^\| (q\w+) \| (\d+) \|", out, re.M)
    assert [s for s, _ in styles][:3] == ["q1a_lean", "q1b_latex", "q1c_natural"]
    assert sum(int(n) for _, n in styles) == 16
    overall = dict(re.findall(r"(\w+@\d+)=(\d\.\d{3})", _section(out, "overall")[0]))
    assert 0.5 <= float(overall["recall@10"]) <= 1.0 and float(overall["ndcg@10"]) > 0.5
    assert len((run_dir / "records.jsonl").read_text().splitlines()) == 16
    assert (run_dir / "report.md").is_file()


# --------------------------------------------------------------------------- with the LLM


@pytest.mark.slow
def test_quickstart(tmp_path: Path, vllm_server: str, server_settings) -> None:
    env = _llm_env(tmp_path, vllm_server, server_settings)
    data = tmp_path / "quick"
    out = run_example("quickstart.py", str(data), env=env).stdout
    assert f"ingested: 5 added, 0 unchanged, 5 chunks into {data}" in out
    assert _section(out, "question")[0] == QUESTION
    outcome = _section(out, "outcome")[0]
    assert outcome in {"answered", "abstained"}
    text = _section(out, "answer")[0]
    if outcome == "answered":
        assert text

    n_cit, cit_lines = _section(out, "citations")
    assert int(n_cit) == len(cit_lines)
    for line in cit_lines:
        # Every citation resolves to an exact span of a real file: the quote is that span.
        m = re.fullmatch(r'\[(\d+)\] (\S+):(\d+)-(\d+) "(.*)"', line)
        assert m, line
        assert f"[{m.group(1)}]" in text
        source, start, end = Path(m.group(2)), int(m.group(3)), int(m.group(4))
        assert source.parent == EXAMPLES / "docs" and start < end
        if source.suffix in {".md", ".txt"}:  # extracted text == file text for these loaders
            quoted = " ".join(source.read_text()[start:end].split())
            assert quoted.startswith(m.group(5).rstrip("…")[:60])

    n_ev, ev_lines = _section(out, "evidence")
    assert int(n_ev) == len(ev_lines) >= 1
    ev = [re.fullmatch(r"\((\d+)\) p=(\d\.\d\d) (\S+):(\d+-\d+|-) (.*)", line) for line in ev_lines]
    assert all(ev), ev_lines
    assert any(Path(m.group(3)).name == "warranty.md" for m in ev if m)  # the document that answers

    udcg = _section(out, "udcg")[0]
    assert udcg == "-" or 0.0 <= float(udcg) <= 1.0
    n_drop, drop_lines = _section(out, "dropped")
    assert int(n_drop) == len(drop_lines)
    assert all(re.fullmatch(r"[0-9a-f]{16} \w+: .+", line) for line in drop_lines), drop_lines
    usage = _section(out, "usage")[0]
    assert re.fullmatch(r"\d+ LLM calls, \d+ tokens, \d+\.\ds", usage) and not usage.startswith("0 ")


@pytest.mark.slow
def test_custom_graph_run(tmp_path: Path, vllm_server: str, server_settings) -> None:
    env = _llm_env(tmp_path, vllm_server, server_settings)
    out = run_example("custom_graph/run.py", env=env).stdout
    assert "graph: allowlisted_rag" in out
    assert "trace: rewrite -> retrieve -> rerank -> allowlist -> pack -> generate" in out
    evidence = re.findall(r"^evidence p=\d\.\d\d (\S+)$", out, re.M)
    assert evidence and all(src.endswith(".md") for src in evidence)
    assert any(src.endswith("warranty.md") for src in evidence)
    dropped = re.findall(r"^dropped source_allowlist: (\S+) is not allowlisted \(\*\.md\)$", out, re.M)
    assert sorted(dropped) == ["company.html", "troubleshooting.txt"]
    for cited in re.findall(r"^citation \[\d+\] (\S+):\d+-\d+$", out, re.M):
        assert cited.endswith(".md")
