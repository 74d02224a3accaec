"""BEIR and HotpotQA readers on small files written here; bad input raises EvalDataError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentrag.errors import ConfigError, EvalDataError
from agentrag.evaluation.data import default_split, read_beir, read_hotpotqa


def write_beir(root: Path, *, splits: dict[str, str] | None = None) -> Path:
    (root / "qrels").mkdir(parents=True)
    docs = [{"_id": f"d{i}", "title": f"T{i}", "text": f"text {i}"} for i in range(4)]
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    queries = [
        {"_id": "q1", "text": "first"},
        {"_id": "q2", "text": "second"},
        {"_id": "q3", "text": "unjudged"},
    ]
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    for split, body in (splits or {"train": "q1\td0\t1\nq2\td2\t1\nq2\td3\t2\n"}).items():
        (root / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + body)
    return root


def test_beir_reads_judged_queries_in_file_order(tmp_path: Path) -> None:
    data = read_beir(write_beir(tmp_path / "b"))
    assert data.split == "train"
    assert data.queries == {"q1": "first", "q2": "second"}  # q3 has no judgement
    assert data.qrels == {"q1": {"d0": 1}, "q2": {"d2": 1, "d3": 2}}
    assert list(data.limited(1).queries) == ["q1"] and list(data.limited(1).qrels) == ["q1"]
    assert data.limited(None) is data


def test_default_split_prefers_test(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "b", splits={"train": "q1\td0\t1\n", "test": "q2\td2\t1\n"})
    assert default_split(root) == "test"
    assert list(read_beir(root).queries) == ["q2"]
    assert list(read_beir(root, "train").queries) == ["q1"]


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda r: (r / "corpus.jsonl").unlink(), "no corpus.jsonl"),
        (lambda r: (r / "qrels" / "train.tsv").unlink(), "no <split>.tsv"),
        (
            lambda r: (r / "queries.jsonl").write_text('{"_id": "q1", "text": "ok"}\nnot json\n'),
            ":2 is not JSON",
        ),
        (lambda r: (r / "queries.jsonl").write_text('{"id": "q1"}\n'), "needs '_id' and 'text'"),
        (
            lambda r: (r / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1 d0 1\n"),
            ":2 is not",
        ),
        (
            lambda r: (r / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq9\td0\t1\n"),
            "no query",
        ),
    ],
)
def test_beir_bad_folders_raise_typed_errors(tmp_path: Path, breakage, message: str) -> None:
    root = write_beir(tmp_path / "b")
    breakage(root)
    with pytest.raises(EvalDataError, match=message) as info:
        read_beir(root)
    assert info.value.code == "eval.data" and info.value.hint
    assert isinstance(info.value, ConfigError)  # the CLI renders it like any config error


def test_beir_unknown_split_names_the_ones_there(tmp_path: Path) -> None:
    with pytest.raises(EvalDataError, match="split 'test'") as info:
        read_beir(write_beir(tmp_path / "b"), "test")
    assert "train" in info.value.hint
    with pytest.raises(EvalDataError, match="not a folder"):
        read_beir(tmp_path / "missing")


IRCOT = {
    "question_id": "a1",
    "question_text": "Who?",
    "answers_objects": [{"number": "", "spans": ["Ann Lee"]}],
    "contexts": [
        {"id": "0", "title": "X", "paragraph_text": "x text", "is_supporting": False},
        {"id": "1", "title": "Ann", "paragraph_text": "Ann Lee did it.", "is_supporting": True},
    ],
}
RELEASE = {
    "_id": "b2",
    "question": "Where?",
    "answer": "Paris",
    "context": [["France", ["Paris is", " the capital."]], ["Spain", ["Madrid."]]],
    "supporting_facts": [["France", 0]],
}


def test_hotpotqa_ircot_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "dev.jsonl"
    path.write_text(json.dumps(IRCOT) + "\n\n" + json.dumps({**IRCOT, "question_id": "a2"}) + "\n")
    items = read_hotpotqa(path)
    assert [q.id for q in items] == ["a1", "a2"]
    q = items[0]
    assert q.question == "Who?" and q.answers == ["Ann Lee"]
    assert [(p.id, p.title, p.supporting) for p in q.paragraphs] == [("0", "X", False), ("1", "Ann", True)]
    assert [q.id for q in read_hotpotqa(path, limit=1)] == ["a1"]


def test_hotpotqa_release_json(tmp_path: Path) -> None:
    path = tmp_path / "dev.json"
    path.write_text(json.dumps([RELEASE]))
    [q] = read_hotpotqa(path)
    assert (q.id, q.answers) == ("b2", ["Paris"])
    assert [(p.title, p.text, p.supporting) for p in q.paragraphs] == [
        ("France", "Paris is  the capital.", True),
        ("Spain", "Madrid.", False),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "no questions"),
        ("[1, 2", "not valid JSON"),
        ('{"question_text": "q"}\n', r"dev\.x:1 is not a HotpotQA question"),
        (json.dumps({**IRCOT, "answers_objects": [{"spans": []}]}) + "\n", "not a HotpotQA question"),
        ("[" + json.dumps({**RELEASE, "context": "oops"}) + "]", "item 0 is not a HotpotQA question"),
        (json.dumps(IRCOT) + "\n" + json.dumps(IRCOT) + "\n", "repeats question ids"),
        ("{bad\n", ":1 is not JSON"),
    ],
)
def test_hotpotqa_bad_files_raise_typed_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "dev.x"
    path.write_text(content)
    with pytest.raises(EvalDataError, match=message):
        read_hotpotqa(path)
    with pytest.raises(EvalDataError, match="not a file"):
        read_hotpotqa(tmp_path / "nope.jsonl")
