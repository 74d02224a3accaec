from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentrag.ingest.loaders import Document, Skipped, html_to_text, load_paths, match_glob
from tests.support.pdf import write_pdf


def _tree(root: Path) -> None:
    (root / "docs" / "sub").mkdir(parents=True)
    (root / "docs" / ".hidden").mkdir()
    (root / "docs" / "a.txt").write_text("Plain text here.\nSecond line.")
    (root / "docs" / "b.md").write_text("---\ntitle: Front Matter Title\n---\n# Heading\n\nBody text.")
    (root / "docs" / "sub" / "c.md").write_text("Intro line\n\n# The Real Title\n\nMore.")
    (root / "docs" / "sub" / "page.html").write_text(
        "<html><head><title>Page  Title</title><style>p{color:red}</style>"
        "<script>var x = 'no';</script></head><body><h1>Header</h1><p>First   para &amp; more.</p>"
        "<ul><li>one</li><li>two</li></ul><pre>keep   this\n  spacing</pre></body></html>"
    )
    (root / "docs" / ".hidden" / "secret.txt").write_text("should not be read")
    (root / "docs" / ".dotfile.txt").write_text("hidden file")
    (root / "docs" / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    (root / "docs" / "binary.txt").write_bytes(b"abc\x00def")
    (root / "docs" / "latin1.txt").write_bytes("café".encode("latin-1"))
    (root / "docs" / "utf16.txt").write_bytes("ünïcode text".encode("utf-16"))
    (root / "docs" / "empty.txt").write_text("  \n")


def _split(items: list[Document | Skipped]) -> tuple[dict[str, Document], dict[str, str]]:
    docs = {Path(i.source).name: i for i in items if isinstance(i, Document)}
    skipped = {Path(i.source).name: i.reason for i in items if isinstance(i, Skipped)}
    return docs, skipped


def test_directory_tree_with_default_excludes(tmp_path: Path) -> None:
    _tree(tmp_path)
    docs, skipped = _split(list(load_paths([tmp_path / "docs"], exclude=[".*", "__pycache__"])))
    assert set(docs) == {"a.txt", "b.md", "c.md", "page.html", "utf16.txt"}
    assert docs["a.txt"].title == "a" and docs["a.txt"].text == "Plain text here.\nSecond line."
    assert docs["b.md"].title == "Front Matter Title"
    assert docs["c.md"].title == "The Real Title"
    assert docs["utf16.txt"].text == "ünïcode text"
    html = docs["page.html"]
    assert html.title == "Page Title"
    assert "var x" not in html.text and "color" not in html.text
    assert "First para & more." in html.text
    assert "one\n" in html.text and "keep   this\n  spacing" in html.text
    # Nothing is lost silently: every file not loaded is reported with its reason.
    assert skipped["binary.txt"] == "binary file (NUL bytes)"
    assert skipped["latin1.txt"].startswith("not UTF-8 text (byte 0xe9")
    assert skipped["empty.txt"] == "empty file"
    assert "no loader for '.png'" in skipped["image.png"]
    assert "secret.txt" not in skipped and ".dotfile.txt" not in skipped  # excluded on purpose


def test_include_and_exclude_globs(tmp_path: Path) -> None:
    _tree(tmp_path)
    docs, skipped = _split(list(load_paths([tmp_path / "docs"], include=["*.md"], exclude=[".*"])))
    assert set(docs) == {"b.md", "c.md"} and not skipped
    docs, _ = _split(list(load_paths([tmp_path / "docs"], include=["sub/**"], exclude=["*.html"])))
    assert set(docs) == {"c.md"}
    docs, _ = _split(list(load_paths([tmp_path / "docs"], include=["**/*.md"], exclude=["sub"])))
    assert set(docs) == {"b.md"}


def test_glob_semantics() -> None:
    assert match_glob("a/b/c.md", "*.md")
    assert not match_glob("a/b/c.md", "a/*.md")
    assert match_glob("a/b/c.md", "a/**/*.md") and match_glob("a/c.md", "a/**/*.md")
    assert match_glob("x/.git/config", ".*", any_component=True)
    assert not match_glob("x/git/config", ".*", any_component=True)
    assert match_glob("f1.txt", "f[0-9].txt") and not match_glob("fa.txt", "f[0-9].txt")


def test_named_file_is_read_whatever_its_suffix(tmp_path: Path) -> None:
    f = tmp_path / "notes.log"
    f.write_text("a log line")
    (doc,) = load_paths([f])
    assert isinstance(doc, Document) and doc.source == f.resolve().as_posix()


def test_missing_path_is_reported(tmp_path: Path) -> None:
    (item,) = load_paths([tmp_path / "nope"])
    assert isinstance(item, Skipped) and item.reason == "no such file or directory"


def test_beir_corpus_rows(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    rows = [
        {"_id": "d1", "title": "Title One", "text": "Body one.", "metadata": {"year": 2001, "tags": ["x"]}},
        {"_id": "d2", "title": "", "text": "Body two.", "lang": "en"},
    ]
    corpus.write_text("\n".join(json.dumps(r) for r in rows) + '\n\nnot json\n{"_id": "d3"}\n[1, 2]\n')
    items = list(load_paths([corpus]))
    docs = [i for i in items if isinstance(i, Document)]
    skipped = [i for i in items if isinstance(i, Skipped)]
    base = corpus.resolve().as_posix()
    assert [d.source for d in docs] == [f"{base}#d1", f"{base}#d2"]
    assert docs[0].title == "Title One" and docs[0].text == "Body one."
    assert docs[0].metadata == {"metadata.year": 2001, "row_id": "d1"}
    assert docs[1].metadata == {"lang": "en", "row_id": "d2"}
    assert [(s.source.rsplit("#", 1)[1], s.reason.split(":")[0]) for s in skipped] == [
        ("line 4", "invalid JSON"),
        ("line 5", "row has no text field (one of text, contents, content, body)"),
        ("line 6", "row is not a JSON object"),
    ]


def test_scifact_corpus_loads_completely(shared_data: Path) -> None:
    corpus = shared_data / "scifact" / "corpus.jsonl"
    items = list(load_paths([corpus]))
    assert all(isinstance(i, Document) for i in items)
    assert len(items) == 5183
    first = items[0]
    assert isinstance(first, Document) and first.source.endswith("corpus.jsonl#4983") and first.title


def test_pdf_pages(tmp_path: Path) -> None:
    pytest.importorskip("pypdf")
    f = tmp_path / "paper.pdf"
    write_pdf(f, ["Page one says hello.", "Page two says goodbye."], title="A Paper")
    (doc,) = load_paths([tmp_path])
    assert isinstance(doc, Document)
    assert doc.title == "A Paper" and doc.metadata == {"pages": 2}
    assert doc.text == "Page one says hello.\n\nPage two says goodbye."
    assert doc.page_starts == (0, 22)
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 this is not really a pdf")
    (item,) = load_paths([broken])
    assert isinstance(item, Skipped) and item.reason.startswith("unreadable PDF")


def test_html_to_text_entities_and_blocks() -> None:
    text, title = html_to_text("<div>A&nbsp;B</div><div>C<br>D</div><noscript>x</noscript>")
    # &nbsp; reads as a space; <br> is a line break; blocks are separated by a blank line.
    assert text == "A B\n\nC\nD"
    assert title == ""


def test_nuls_past_the_sniffed_prefix_are_stripped(tmp_path: Path) -> None:
    from agentrag.ingest.loaders import load_file

    f = tmp_path / "late_nul.txt"
    f.write_bytes(b"a" * 9000 + b" tail\x00 text\x00.")
    (doc,) = load_file(f)
    assert isinstance(doc, Document) and "\x00" not in doc.text and doc.text.endswith("tail text.")


def test_large_text_file_is_read_in_parts(tmp_path: Path) -> None:
    from agentrag.ingest.loaders import PART_CHARS, load_file

    line = "Line of text number {i} with words.\r\n"
    f = tmp_path / "big.md"
    f.write_text("# Big Title\n\n" + "".join(line.format(i=i) for i in range(90_000)), newline="")
    parts = list(load_file(f))
    assert len(parts) > 2 and all(isinstance(p, Document) for p in parts)
    assert all(len(p.text) <= PART_CHARS and p.title == "Big Title" for p in parts)
    whole = f.read_text()  # universal newlines, as the loader normalises them
    assert "".join(p.text for p in parts) == whole
    assert [p.metadata["char_offset"] for p in parts[:2]] == [0, len(parts[0].text)]
    assert parts[1].source.endswith("big.md#part-0001")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok text " * 200_000 + b"\xff")
    (skip,) = load_file(bad)
    assert isinstance(skip, Skipped) and "not UTF-8" in skip.reason


def test_unreadable_folder_is_a_skip_line(tmp_path: Path, monkeypatch) -> None:
    # Tests run as root here, where chmod 000 does not stop reading: make listing fail instead.
    import os

    from agentrag.ingest.loaders import expand_paths

    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "a.txt").write_text("fine")
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "b.txt").write_text("hidden")
    real = os.scandir

    def scandir(path=".", *a, **k):
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(os, "scandir", scandir)
    items = list(expand_paths([tmp_path]))
    files = [i for i in items if isinstance(i, Path)]
    skipped = [i for i in items if isinstance(i, Skipped)]
    assert [f.name for f in files] == ["a.txt"]
    assert len(skipped) == 1 and skipped[0].source.endswith("locked")
    assert skipped[0].reason == "folder not readable: Permission denied"
