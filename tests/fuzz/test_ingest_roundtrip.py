"""Through a live server: odd OTLP requests and event batches never get a 5xx or an
unmapped exception, and no span the server acknowledged is missing from the store.

Hypothesis builds well-formed but odd OTLP requests (any times the wire carries, any
kinds, status codes and nested attributes; some spans invalid) and posts them as
protobuf to ``/v1/traces``; the answer's ``partial_success.rejected_spans`` must account
for every span not found afterwards by ``GET /api/v1/spans`` (nothing accepted is lost).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)
from serverkit import LiveServer, make_settings, run_live_server
from test_event_properties import event, placed_event
from test_otlp_properties import _any_value, _request, times

pytestmark = [pytest.mark.fuzz, pytest.mark.slow]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz-ingest")
    yield from run_live_server(make_settings(data_dir))


span_fields = st.fixed_dictionaries({
    "span_id": st.binary(min_size=8, max_size=8), "parent_span_id": st.one_of(
        st.just(b""), st.binary(min_size=8, max_size=8), st.binary(max_size=9)),
    "name": st.text(max_size=20), "kind": st.integers(0, 2**31 - 1),
    "start_time_unix_nano": times, "end_time_unix_nano": times,
    "code": st.integers(0, 2**31 - 1),
    "attributes": st.dictionaries(st.sampled_from([
        "gen_ai.request.model", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
        "gen_ai.system", "mentat.attempt", "mentat.project_id", "llm.token_count.prompt",
        "mentat.resource.cpu_core_seconds", "service.name", "x"]), _any_value(1), max_size=5)})


@seed(14)
@settings(max_examples=100, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(spans=st.lists(span_fields, min_size=1, max_size=6,
                      unique_by=lambda f: f["span_id"]))
def test_acknowledged_spans_are_stored(live: LiveServer, spans: list[dict[str, Any]]) -> None:
    trace_id = secrets.token_bytes(16)
    request = _request([[{**f, "trace_id": trace_id} for f in spans]])
    answer = httpx.post(f"{live.url}/v1/traces", content=request.SerializeToString(),
                        headers={"Content-Type": "application/x-protobuf"}, timeout=60)
    assert answer.status_code < 500, answer.content[:500]
    if answer.status_code != 200:
        assert answer.status_code in (400, 413, 415, 422), answer.content[:500]
        return
    rejected = ExportTraceServiceResponse.FromString(
        answer.content).partial_success.rejected_spans
    stored = httpx.get(f"{live.url}/api/v1/spans", params={
        "after_ns": 0, "filter": f"trace_id={trace_id.hex()}", "limit": 100}, timeout=60)
    assert stored.status_code == 200, stored.text
    stored_ids = {s["span_id"] for s in stored.json()["spans"]}
    assert len(stored_ids) == len(spans) - rejected, (len(stored_ids), len(spans), rejected)
    _assert_no_unhandled_errors(live)


@seed(14)
@settings(max_examples=100, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(batch=st.lists(st.one_of(event, placed_event), min_size=1, max_size=4))
def test_odd_event_batches_are_stored_or_refused(live: LiveServer,
                                                 batch: list[dict[str, Any]]) -> None:
    answer = httpx.post(f"{live.url}/api/v1/events", content=json.dumps(batch).encode(),
                        headers={"Content-Type": "application/json"}, timeout=60)
    assert answer.status_code in (200, 400, 422), answer.text
    if answer.status_code == 200:
        assert answer.json()["num_events"] == len(batch)
    _assert_no_unhandled_errors(live)


def _assert_no_unhandled_errors(live: LiveServer) -> None:
    unhandled = live.state.metrics.unhandled_errors.collect()[0].samples
    assert not [s for s in unhandled if s.value], unhandled
