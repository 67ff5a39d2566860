"""Fixtures of the analytics tests: the generated dataset loaded once per backend and module.

``loaded`` is a store of each backend (ids ``[chdb]``, ``[clickhouse]``) holding the
dataset of dataset.py (read-only); ``store`` and ``open_span_store`` give a test an empty
store of each backend (tests/backends.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dataset import build_spans, resent

from backends import SPAN_BACKENDS, span_stores
from mentatlab.model.schema import spans_to_arrow
from mentatlab.model.span import CanonicalSpan
from mentatlab.storage.base import SpanStore


@pytest.fixture(scope="module")
def spans() -> list[CanonicalSpan]:
    return build_spans()


@pytest.fixture(scope="module", params=SPAN_BACKENDS)
def loaded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           spans: list[CanonicalSpan]) -> Iterator[SpanStore]:
    with span_stores(request.param, tmp_path_factory.mktemp("analytics"), request) as stores:
        store = stores.open()
        store.migrate()
        half = len(spans) // 2
        store.append_batch(spans_to_arrow(spans[:half]))
        store.append_batch(spans_to_arrow(spans[half:]))
        store.append_batch(spans_to_arrow(resent(spans)))  # duplicates: FINAL must collapse them
        yield store
