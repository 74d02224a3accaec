"""Know a local model by what it is (its config and weights), not by the name of its folder.

Two different models in folders both named ``model`` used to share cached vectors and pass the
knowledge base's embedder check. The fingerprint hashes the contents of every file that decides
the vectors (config, tokenizer, pooling, weights); it is memoised per file by (path, size,
mtime), so asking again costs a ``stat`` per file.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path

from agentrag.errors import EmbedderMismatchError, EmbeddingError

__all__ = ["check_embedder_name", "model_fingerprint", "split_embedder_name"]

log = logging.getLogger(__name__)

# Files that cannot change a vector. Exported runtimes (``onnx/``, ``openvino/``) are derived from
# the weights, so they are left out too: the fingerprint names the source model.
_SKIP_SUFFIXES = (".md", ".txt.lock", ".lock")
_SKIP_DIRS = {".git", ".cache", "onnx", "openvino", "__pycache__"}

_memo: dict[tuple[str, int, int], str] = {}
_memo_lock = threading.Lock()


def _file_digest(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _memo_lock:
        hit = _memo.get(key)
    if hit is not None:
        return hit
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    with _memo_lock:
        _memo[key] = digest
    return digest


def model_fingerprint(path: Path, *, length: int = 12) -> str:
    """Hex digest of a model folder's contents (config, tokenizer, pooling and weight files).

    Args:
        path: A local model folder (sentence-transformers or Hugging Face layout).
        length: Hex characters kept.

    Returns:
        The first ``length`` hex characters of a sha256 over (relative path, file sha256) pairs.

    Raises:
        EmbeddingError: ``path`` is not a folder, or holds no files.
    """
    if not path.is_dir():
        raise EmbeddingError(
            f"embedding model folder {path} does not exist",
            hint="set [embedder] model to a local sentence-transformers folder; nothing is downloaded",
        )
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file()
        and not p.name.endswith(_SKIP_SUFFIXES)
        and not _SKIP_DIRS.intersection(p.relative_to(path).parts[:-1])
    )
    if not files:
        raise EmbeddingError(
            f"embedding model folder {path} is empty", hint="point [embedder] model at a model"
        )
    h = hashlib.sha256()
    for file in files:
        h.update(file.relative_to(path).as_posix().encode())
        h.update(b"\0")
        h.update(_file_digest(file).encode())
        h.update(b"\n")
    return h.hexdigest()[:length]


def split_embedder_name(name: str) -> tuple[str, str | None]:
    """``"st:model@abc|q=..."`` -> (``"st:model|q=..."``, ``"abc"``); no fingerprint -> None."""
    head, sep, tail = name.partition("|")
    base, at, fp = head.partition("@")
    rest = sep + tail
    return base + rest, (fp if at else None)


def check_embedder_name(recorded: str, current: str, *, kb: str) -> None:
    """Refuse to mix vectors of two different models in one knowledge base.

    A name recorded before fingerprints existed (``st:all-MiniLM-L6-v2``) is accepted, with a
    warning, only for the bundled default model (its package pins the weights); a path-given
    legacy name (``st:model``) is ambiguous and must be re-ingested.

    Args:
        recorded: The embedder name stored when the knowledge base was built.
        current: The name of the embedder opening it.
        kb: The knowledge base's name (for the message).

    Raises:
        EmbedderMismatchError: The names denote different models (or prefixes).
    """
    if recorded == current:
        return
    from agentrag.embed.local import DEFAULT_MODEL_NAME

    rec_base, rec_fp = split_embedder_name(recorded)
    cur_base, cur_fp = split_embedder_name(current)
    if rec_fp is None and rec_base == cur_base and rec_base.startswith(f"st:{DEFAULT_MODEL_NAME}"):
        log.warning(
            "knowledge base %r predates model fingerprints; assuming the bundled %s", kb, DEFAULT_MODEL_NAME
        )
        return
    if rec_base == cur_base and rec_fp is not None and cur_fp is not None:
        why = "a model with the same folder name but different weights or config"
    else:
        why = "a different model or prefixes"
    raise EmbedderMismatchError(
        f"knowledge base {kb!r} was built with embedder {recorded!r}, not {current!r} ({why})",
        hint="open it with the same [embedder] settings (the model it was built with), or ingest "
        "into a new knowledge base "
        "(the part after '@' is a hash of the model's config and weights)",
    )
