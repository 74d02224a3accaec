from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest

from agentrag.embed import regex_token_spans
from agentrag.ingest.chunking import TokenChunker, chunk_id, content_hash, doc_id, sentence_starts
from agentrag.ingest.loaders import Document


def _invariants(chunker: TokenChunker, doc: Document, size: int) -> list:
    chunks = chunker.chunk(doc)
    spans = chunker.token_spans(doc.text)
    assert chunks, "non-empty text gives chunks"
    for c in chunks:
        # Exact slice of the extracted text: citations quote what is there.
        assert c.text == doc.text[c.start : c.end]
        assert c.text == c.text.strip()
        assert len(chunker.token_spans(c.text)) <= size
        assert c.source == doc.source and c.title == doc.title and c.doc_id == doc_id(doc.source)
    # Every token is covered by some chunk; chunks advance.
    covered = [any(c.start <= a and b <= c.end for c in chunks) for a, b in spans]
    assert all(covered)
    assert all(b.start > a.start for a, b in itertools.pairwise(chunks))
    assert len({c.id for c in chunks}) == len(chunks)
    return chunks


def test_doc_example_cuts_at_sentences() -> None:
    chunker = TokenChunker(regex_token_spans, chunk_tokens=8, overlap_tokens=2)
    text = "One two three. Four five six seven. Eight nine ten eleven twelve."
    assert [text[a:b] for a, b in chunker.split(text)] == [
        "One two three.",
        "Four five six seven.",
        "Eight nine ten eleven twelve.",
    ]


def test_overlap_by_whole_sentences_and_words() -> None:
    text = " ".join(f"S{i} a b c." for i in range(12))  # 12 sentences of 5 tokens
    spans = TokenChunker(regex_token_spans, chunk_tokens=16, overlap_tokens=6).split(text)
    pieces = [text[a:b] for a, b in spans]
    assert all(p.startswith("S") and p.endswith(".") for p in pieces)  # whole sentences
    # Consecutive chunks share a sentence (the overlap).
    for a, b in itertools.pairwise(pieces):
        assert a.split(".")[-2].strip() + "." == b.split(". ")[0] + "." or b.split(". ")[0] + "." in a
    words = "w " * 50
    spans = TokenChunker(regex_token_spans, chunk_tokens=10, overlap_tokens=3).split(words)
    assert [b - a for a, b in spans][:3] == [19, 19, 19]
    assert spans[1][0] == spans[0][1] - 5  # three tokens back: "w w w"


def test_long_sentence_falls_back_to_word_boundaries() -> None:
    text = "word " * 30 + "end."
    chunker = TokenChunker(regex_token_spans, chunk_tokens=8, overlap_tokens=0)
    for a, b in chunker.split(text):
        assert text[a - 1 : a] in ("", " ") and text[b : b + 1] in ("", " ")


def test_sentence_starts() -> None:
    text = "First one. Second one! third? No. \n\nPara. \n- item\n2) item\n# Head"
    starts = sentence_starts(text)
    assert text.index("Second") in starts and text.index("No") in starts
    assert text.index("third") not in starts  # lower case after "!" is not a new sentence
    assert text.index("Para") in starts and text.index("- item") in starts
    assert text.index("2) item") in starts and text.index("# Head") in starts


def test_empty_and_whitespace() -> None:
    chunker = TokenChunker(regex_token_spans, chunk_tokens=8)
    assert chunker.split("") == [] and chunker.split("   \n ") == []


def test_ids_are_stable_and_content_addressed() -> None:
    doc = Document(source="/x/a.txt", text="Alpha beta. Gamma delta.", title="T", metadata={"k": 1})
    chunker = TokenChunker(regex_token_spans, chunk_tokens=3, overlap_tokens=0)
    first = [c.id for c in chunker.chunk(doc)]
    assert first == [c.id for c in chunker.chunk(doc)]
    other_source = doc.model_copy(update={"source": "/x/b.txt"})
    assert not set(first) & {c.id for c in chunker.chunk(other_source)}
    retitled = doc.model_copy(update={"title": "U"})
    assert not set(first) & {c.id for c in chunker.chunk(retitled)}
    assert chunk_id("s", 0, "t") != chunk_id("s", 1, "t")
    fp = chunker.fingerprint
    assert content_hash(doc, fp) == content_hash(doc, fp)
    assert content_hash(doc, fp) != content_hash(doc, fp + "x")
    assert content_hash(doc, fp) != content_hash(doc.model_copy(update={"metadata": {"k": 2}}), fp)


def test_pdf_page_numbers() -> None:
    doc = Document(source="p.pdf", text="Page one text.\n\nPage two text.", page_starts=(0, 16))
    chunks = TokenChunker(regex_token_spans, chunk_tokens=4, overlap_tokens=0).chunk(doc)
    assert [c.metadata["page"] for c in chunks] == [1, 2]
    assert [c.metadata["seq"] for c in chunks] == [0, 1]


def test_random_texts_keep_invariants() -> None:
    rng = random.Random(3)
    vocab = [
        "alpha",
        "beta",
        "gamma",
        "Delta",
        "e.g.",
        "x",
        "(note)",
        "3.14",
        "end.",
        "Stop!",
        "\n\n",
        "\n- ",
    ]
    for trial in range(40):
        text = " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 300)))
        size = rng.randint(4, 40)
        chunker = TokenChunker(regex_token_spans, chunk_tokens=size, overlap_tokens=rng.randint(0, size))
        if regex_token_spans(text):
            _invariants(chunker, Document(source=f"r{trial}", text=text), size)


def test_minilm_chunks_of_scifact_fit_the_model(embedder, shared_data: Path) -> None:
    # The real tokenizer: default window = the model's limit (254 word pieces for MiniLM).
    assert embedder.max_tokens == 254
    chunker = TokenChunker(embedder.token_spans, chunk_tokens=embedder.max_tokens, overlap_tokens=32)
    lines = (shared_data / "scifact" / "corpus.jsonl").open().readlines()[:150]
    n_chunks = 0
    ends_at_sentence = 0
    for line in lines:
        row = json.loads(line)
        doc = Document(source=f"scifact#{row['_id']}", text=row["text"], title=row["title"])
        chunks = _invariants(chunker, doc, embedder.max_tokens)
        n_chunks += len(chunks)
        starts = sentence_starts(doc.text)
        for c in chunks[:-1]:
            nxt = next((s for s in sorted(starts) if s >= c.end), None)
            ends_at_sentence += nxt is not None and doc.text[c.end : nxt].strip() == ""
    assert n_chunks > len(lines)  # long abstracts are split
    cut = n_chunks - len(lines)
    assert ends_at_sentence >= 0.9 * cut, (ends_at_sentence, cut)


@pytest.mark.parametrize("overlap", [0, 32])
def test_minilm_long_document(embedder, overlap: int) -> None:
    text = " ".join(
        f"Sentence {i} talks about topic {i % 7} with some extra words to make it longer." for i in range(300)
    )
    chunker = TokenChunker(embedder.token_spans, chunk_tokens=100, overlap_tokens=overlap)
    chunks = _invariants(chunker, Document(source="long", text=text), 100)
    assert all(c.text.startswith("Sentence") and c.text.endswith(".") for c in chunks)
    if overlap:
        assert all(b.start < a.end for a, b in itertools.pairwise(chunks))
    else:
        assert all(b.start >= a.end for a, b in itertools.pairwise(chunks))


def test_a_run_with_no_spaces_is_cut_by_the_character_cap(embedder) -> None:
    # MiniLM's tokenizer turns a 200 KB word into one [UNK]: before the cap, one 200,000-char chunk.
    text = "Intro sentence here. " + "x" * 200_000 + " The end."
    chunker = TokenChunker(embedder.token_spans, chunk_tokens=embedder.max_tokens, overlap_tokens=32)
    chunks = chunker.chunk(Document(source="run", text=text))
    assert max(len(c.text) for c in chunks) <= chunker.max_chars == 12 * embedder.max_tokens
    assert all(c.text == text[c.start : c.end] for c in chunks)
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    assert sum(len(c.text) for c in chunks) >= 200_000


def test_windowed_tokenization_equals_whole_text() -> None:
    from agentrag.ingest import chunking

    rng = random.Random(5)
    words = ["alpha", "beta.", "Gamma", "delta,", "\n\n", "Epsilon!", "zeta"]
    text = " ".join(rng.choice(words) for _ in range(20_000))
    chunker = TokenChunker(regex_token_spans, chunk_tokens=50, overlap_tokens=10)
    windowed = chunker.split(text)
    old = chunking._WINDOW_CHARS
    chunking._WINDOW_CHARS = 10**9  # one window: the whole text at once
    try:
        whole = chunker.split(text)
    finally:
        chunking._WINDOW_CHARS = old
    assert windowed == whole
