"""find_regressions over settled traces gives test_regressions.py's answers.

The same constructed traces, on both backends, read through the settled tables
(``version_sightings`` for the first sightings, ``trace_facts`` for the comparisons):
every trace settled, and half of them settled with the rest still in the unsettled tail
(read from raw spans). Every test of test_regressions.py runs again on these stores.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from itertools import count

import pytest
import test_regressions
from test_regressions import (  # noqa: F401 — collected again with this module's stores
    ACME,
    WINDOW,
    test_bad_input_names_the_field,
    test_field_choice_scope_and_cap,
    test_new_versions_and_baselines,
    test_the_widest_range_the_store_holds,
    test_too_few_samples_not_reported_with_reason,
    test_worse_detected_same_and_better_not,
)

from backends import SPAN_BACKENDS, span_stores
from mentatlab.analytics import regressions
from mentatlab.analytics.compare import compare_versions
from mentatlab.analytics.query import QueryParams, TimeRange
from mentatlab.analytics.regressions import find_regressions
from mentatlab.model.schema import spans_to_arrow
from mentatlab.model.span import CanonicalSpan
from mentatlab.resolver.settle import Settler
from mentatlab.storage.base import SpanStore

S = 1_000_000_000
MODES = ("settled", "tail")


def _stamped(spans: list[CanonicalSpan], ns: int) -> object:
    return spans_to_arrow([replace(s, ingested_at_ns=ns) for s in spans])


@pytest.fixture(scope="module", params=[(b, m) for b in SPAN_BACKENDS for m in MODES],
                ids=lambda p: f"{p[0]}-{p[1]}")
def loaded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[SpanStore]:
    backend, mode = request.param
    test_regressions._numbers = count(1)
    spans = test_regressions.build()
    with span_stores(backend, tmp_path_factory.mktemp("regressions"), request) as stores:
        store = stores.open()
        store.migrate()
        early = spans if mode == "settled" else spans[::2]
        store.append_batch(_stamped(early, 10 * S))  # type: ignore[arg-type]
        Settler(store, 1.0).run_pass(10**18, now_ns=20 * S)
        if mode == "tail":  # committed after the watermark: read from raw spans
            store.append_batch(_stamped(spans[1::2], 30 * S))  # type: ignore[arg-type]
        yield store


def test_capped_samples_are_compares(loaded: SpanStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # sides above the cap: the cut is read separately; the sample is still compare's
    monkeypatch.setattr(regressions, "MAX_SAMPLE_PER_SIDE", 3)
    r = find_regressions(loaded, QueryParams(WINDOW, filters=ACME), ["prompt_version"])
    slow = next(v for v in r.versions if v.agent_id == "slow")
    scope = TimeRange(slow.first_seen - timedelta(hours=2), WINDOW.end)
    c = compare_versions(loaded, QueryParams(scope, filters={**ACME, "agent_id": "slow",
                                                              "operation": "chat"}),
                         "prompt_version", "v1", "v2", max_sample=3)
    got = {m.metric: m for m in slow.checks}
    assert (got["latency_ms"].n_baseline, got["latency_ms"].n_version) == (3, 3)
    for metric, test in c.tests.items():
        assert got[metric].p_value == test.p_value
        assert got[metric].effect_size == test.effect_size
