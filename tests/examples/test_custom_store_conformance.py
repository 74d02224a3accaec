"""The user-written store of examples/custom_vector_store.py passes the VectorStore conformance suite.

The suite's tests are imported here and run against a ``backend`` fixture that opens the
example's store, so the example keeps the same contract as the shipped backends.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.examples.conftest import load_example
from tests.stores.test_conformance import (  # noqa: F401 - collected here against our backend
    Backend,
    test_add_get_count_ids,
    test_delete,
    test_destroy,
    test_filter_matching_nothing,
    test_is_a_vector_store,
    test_metadata_filters,
    test_reopen_after_restart,
    test_search_order_and_cosine_scores,
    test_upsert_is_idempotent_and_replaces,
    test_wrong_dimension_is_a_store_error,
)

example = load_example("custom_vector_store.py")


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    opened = []

    def make():
        store = example.NumpyDirStore(tmp_path / "store")
        opened.append(store)
        return store

    yield Backend("numpy-dir", make)
    for store in opened:
        store.close()


def test_a_kill_between_flushes_keeps_the_last_flush(tmp_path: Path) -> None:
    import numpy as np

    from agentrag.stores import VectorRecord

    store = example.NumpyDirStore(tmp_path / "store")
    vec = np.ones(4, dtype=np.float32)
    store.upsert([VectorRecord(id="a", vector=vec, text="first")])
    store.flush()
    store.upsert([VectorRecord(id="b", vector=vec, text="unflushed")])
    # No flush, no close: what a killed process leaves behind.
    again = example.NumpyDirStore(tmp_path / "store")
    assert sorted(again.ids()) == ["a"] and again.get(["a"])[0].text == "first"
    assert not list((tmp_path / "store").glob(".*"))  # no temp files left over
