"""Readers for the evaluation data sets: BEIR folders and HotpotQA files.

**BEIR** (e.g. SciFact): a folder with ``corpus.jsonl`` (``_id``, ``title``, ``text``),
``queries.jsonl`` (``_id``, ``text``) and ``qrels/<split>.tsv`` (header ``query-id  corpus-id
score``, then one judgement per line). Only queries judged in the split are kept, in the order
of ``queries.jsonl``. The corpus itself is not loaded here: the knowledge base ingests the file.

**HotpotQA** (distractor setting), in either of two layouts, detected from the first character:

- the release's JSON list: ``_id``, ``question``, ``answer``, ``context`` (``[title,
  [sentences]]`` pairs) and ``supporting_facts`` (``[title, sentence index]`` pairs);
- IRCoT's JSONL (the shared ``dev250.jsonl``): ``question_id``, ``question_text``,
  ``answers_objects[].spans``, ``contexts[]`` of ``{id, title, paragraph_text, is_supporting}``.

Either way a question becomes a :class:`QAItem` whose paragraphs say whether they support the
answer. Malformed input raises :class:`~agentrag.errors.EvalDataError` naming the file and line.

Example:
    >>> beir = read_beir("/work/shared/data/scifact")              # doctest: +SKIP
    >>> beir.split, len(beir.queries)                              # doctest: +SKIP
    ('train', 809)
    >>> items = read_hotpotqa("/work/shared/data/hotpotqa/dev250.jsonl", limit=3)  # doctest: +SKIP
    >>> items[0].answers, sum(p.supporting for p in items[0].paragraphs)           # doctest: +SKIP
    (['Chief of Protocol'], 2)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentrag.errors import EvalDataError

__all__ = [
    "BeirData",
    "Paragraph",
    "QAItem",
    "default_split",
    "read_beir",
    "read_hotpotqa",
]

SPLIT_PREFERENCE = ("test", "dev", "validation", "train")
"""Splits tried, in order, when none is asked for."""


BEIR_HINT = (
    "a BEIR folder holds corpus.jsonl (_id, title, text), queries.jsonl (_id, text), qrels/<split>.tsv"
)
HOTPOTQA_HINT = (
    "a HotpotQA file is the release's JSON list (_id, question, answer, context, supporting_facts) or "
    "IRCoT's JSONL (question_id, question_text, answers_objects, contexts), one question per line"
)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class BeirData(_Frozen):
    """The queries and judgements of one BEIR split (the corpus stays on disk)."""

    root: Path
    """The BEIR folder."""

    split: str
    """The qrels split read."""

    corpus: Path
    """``corpus.jsonl``."""

    queries: dict[str, str]
    """Judged queries of the split, ``{query id: text}``, in file order."""

    qrels: dict[str, dict[str, int]]
    """``{query id: {doc id: grade}}`` (grade >= 1 is relevant)."""

    def limited(self, limit: int | None) -> BeirData:
        """The first ``limit`` queries (all when None)."""
        if limit is None:
            return self
        ids = list(self.queries)[:limit]
        return self.model_copy(
            update={"queries": {q: self.queries[q] for q in ids}, "qrels": {q: self.qrels[q] for q in ids}}
        )


def _jsonl(path: Path, hint: str) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        fh = path.open(encoding="utf-8")
    except OSError as exc:
        raise EvalDataError(f"cannot read {path}: {exc}", hint=hint) from None
    with fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EvalDataError(f"{path}:{lineno} is not JSON ({exc.msg})", hint=hint) from None
            if not isinstance(row, dict):
                raise EvalDataError(f"{path}:{lineno} is not a JSON object", hint=hint)
            yield lineno, row


def default_split(root: str | Path) -> str:
    """The split to use when none is given.

    The first of test, dev, validation, train that has a ``qrels/<split>.tsv``, else the first
    ``.tsv`` there in name order.

    Raises:
        EvalDataError: There is no ``qrels`` folder or it holds no ``.tsv`` file.
    """
    qrels = Path(root) / "qrels"
    found = sorted(p.stem for p in qrels.glob("*.tsv")) if qrels.is_dir() else []
    if not found:
        raise EvalDataError(f"{qrels} has no <split>.tsv files", hint="is this a BEIR folder?")
    for split in SPLIT_PREFERENCE:
        if split in found:
            return split
    return found[0]


def read_beir(root: str | Path, split: str | None = None) -> BeirData:
    """Read a BEIR folder's queries and qrels for ``split``.

    Args:
        root: The folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/``).
        split: ``test``, ``dev``, ``train``, ... (default :func:`default_split`).

    Raises:
        EvalDataError: A file is missing or malformed, or no judged query has text.
    """
    root = Path(root)
    if not root.is_dir():
        raise EvalDataError(f"{root} is not a folder", hint="--data takes a BEIR folder")
    corpus = root / "corpus.jsonl"
    if not corpus.is_file():
        raise EvalDataError(f"{root} has no corpus.jsonl", hint=BEIR_HINT)
    split = split or default_split(root)
    qrels_path = root / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        have = ", ".join(sorted(p.stem for p in (root / "qrels").glob("*.tsv"))) or "none"
        raise EvalDataError(f"no qrels for split {split!r} in {root}", hint=f"splits there: {have}")
    qrels: dict[str, dict[str, int]] = {}
    with qrels_path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            parts = line.rstrip("\n").split("\t")
            if not line.strip() or (lineno == 1 and parts[0] == "query-id"):
                continue
            try:
                qid, did, grade = parts
                qrels.setdefault(qid, {})[did] = int(grade)
            except ValueError:
                raise EvalDataError(
                    f"{qrels_path}:{lineno} is not 'query-id<TAB>corpus-id<TAB>score'", hint=BEIR_HINT
                ) from None
    queries: dict[str, str] = {}
    for lineno, row in _jsonl(root / "queries.jsonl", BEIR_HINT):
        if "_id" not in row or not isinstance(row.get("text"), str):
            raise EvalDataError(f"{root / 'queries.jsonl'}:{lineno} needs '_id' and 'text'", hint=BEIR_HINT)
        qid = str(row["_id"])
        if qid in qrels and row["text"].strip():
            queries[qid] = row["text"]
    if not queries:
        raise EvalDataError(
            f"no query of {root / 'queries.jsonl'} is judged in qrels/{split}.tsv",
            hint="query ids in qrels must match _id in queries.jsonl; try another --split",
        )
    return BeirData(
        root=root,
        split=split,
        corpus=corpus,
        queries=queries,
        qrels={q: qrels[q] for q in queries},
    )


class Paragraph(_Frozen):
    """One context paragraph of a question."""

    id: str
    """Unique within the question."""

    title: str
    """Wikipedia title."""

    text: str
    """Paragraph text."""

    supporting: bool = False
    """Whether it is one of the supporting paragraphs."""


class QAItem(_Frozen):
    """One HotpotQA question with its gold answers and context paragraphs."""

    id: str
    """Question id."""

    question: str
    """Question text."""

    answers: list[str] = Field(min_length=1)
    """Gold answers (any one is right)."""

    paragraphs: list[Paragraph] = Field(min_length=1)
    """Context paragraphs (distractor setting: 10, of which 2 support)."""


def _from_ircot(row: dict[str, Any]) -> QAItem:
    answers = [str(s) for a in row["answers_objects"] for s in a.get("spans", []) if str(s).strip()]
    paragraphs = [
        Paragraph(
            id=str(c.get("id", i)),
            title=str(c.get("title", "")),
            text=str(c["paragraph_text"]),
            supporting=bool(c.get("is_supporting", False)),
        )
        for i, c in enumerate(row["contexts"])
    ]
    return QAItem(
        id=str(row["question_id"]), question=str(row["question_text"]), answers=answers, paragraphs=paragraphs
    )


def _from_release(row: dict[str, Any]) -> QAItem:
    support = {str(title) for title, _ in row.get("supporting_facts", [])}
    paragraphs = [
        Paragraph(id=str(i), title=str(title), text=" ".join(sentences).strip(), supporting=title in support)
        for i, (title, sentences) in enumerate(row["context"])
    ]
    return QAItem(
        id=str(row["_id"]), question=str(row["question"]), answers=[str(row["answer"])], paragraphs=paragraphs
    )


def _item(row: Any, where: str) -> QAItem:
    try:
        if not isinstance(row, dict):
            raise TypeError("not a JSON object")
        return _from_ircot(row) if "question_text" in row else _from_release(row)
    except (KeyError, TypeError, ValueError) as exc:
        raise EvalDataError(
            f"{where} is not a HotpotQA question ({type(exc).__name__}: {exc})", hint=HOTPOTQA_HINT
        ) from None


def read_hotpotqa(path: str | Path, limit: int | None = None) -> list[QAItem]:
    """Read HotpotQA questions (release JSON list or IRCoT JSONL).

    Args:
        path: The file.
        limit: Only the first N questions.

    Raises:
        EvalDataError: The file is missing, malformed, or holds no question.
    """
    path = Path(path)
    if not path.is_file():
        raise EvalDataError(f"{path} is not a file", hint="--data takes a HotpotQA .json or .jsonl file")
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:4096].lstrip()[:1]
    except OSError as exc:
        raise EvalDataError(f"cannot read {path}: {exc}", hint=HOTPOTQA_HINT) from None
    items: list[QAItem] = []
    if head == "[":
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise EvalDataError(
                f"{path} is not valid JSON ({exc.msg}, line {exc.lineno})", hint=HOTPOTQA_HINT
            ) from None
        for i, row in enumerate(rows[:limit] if limit is not None else rows):
            items.append(_item(row, f"{path} item {i}"))
    else:
        for lineno, row in _jsonl(path, HOTPOTQA_HINT):
            if limit is not None and len(items) >= limit:
                break
            items.append(_item(row, f"{path}:{lineno}"))
    if not items:
        raise EvalDataError(f"no questions in {path}", hint=HOTPOTQA_HINT)
    ids = [q.id for q in items]
    if len(set(ids)) != len(ids):
        raise EvalDataError(f"{path} repeats question ids", hint="each question needs a unique id")
    return items
