"""Fixtures of the analytics tests: one chDB store loaded with the generated dataset."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dataset import build_spans, resent

from mentatlab.model.schema import spans_to_arrow
from mentatlab.model.span import CanonicalSpan
from mentatlab.storage.chdb_store import ChdbSpanStore


@pytest.fixture(scope="module")
def spans() -> list[CanonicalSpan]:
    return build_spans()


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory, spans: list[CanonicalSpan]
           ) -> Iterator[ChdbSpanStore]:
    store = ChdbSpanStore(tmp_path_factory.mktemp("analytics") / "spans")
    store.migrate()
    half = len(spans) // 2
    store.append_batch(spans_to_arrow(spans[:half]))
    store.append_batch(spans_to_arrow(spans[half:]))
    store.append_batch(spans_to_arrow(resent(spans)))  # duplicates: FINAL must collapse them
    yield store
    store.close()
