"""Replay of a constructed trace at chosen instants, on both backends, worked out by hand.

Trace (org acme, times in ms after B; checkpoint patches are RFC 7386)::

    r   agent root   0 .. 1000  checkpoints: 100 replace {"step": "plan", "plan": {"a": 1, "b": 2}}
                                             600 {"step": "done", "plan": null, "result": "ok"}
    c1  tool       200 .. 500                300.000001 {"step": "act", "plan": {"b": null, "c": 3}}
    c2  step       500 .. 900                500 {"hits": [1, 2]}
                                             700 "[REDACTED]" (unreadable: skipped, counted)
    c3  open span  800 ..  ?    (a started native event, no end yet)
    g   globex's span in the same trace 950 .. 990, checkpoint 960 replace {"secret": 1}

Event instants for acme: 0, 100, 200, 300.000001, 500, 600, 700, 800, 900, 1000.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from mentatlab.analytics.replay import Replay, get_replay, to_ns
from mentatlab.model.span import CanonicalSpan, Operation, SpanStatus
from mentatlab.storage.base import SpanStore

B = datetime(2026, 11, 4, 12, 0, tzinfo=UTC)
B_NS = to_ns(B)
TRACE = "ab" * 16
ACME = {"org_id": "acme"}
MS = 1_000_000


def _checkpoint(at_ns: int, patch: Any, seq: int, *, replace: bool = False) -> dict[str, Any]:
    text = patch if isinstance(patch, str) else orjson.dumps(patch).decode()
    return {"name": "mentat.checkpoint", "time_ns": B_NS + at_ns, "attributes": {
        "mentat.checkpoint.patch": text, "mentat.checkpoint.replace": replace,
        "mentat.checkpoint.seq": seq}}


def _span(n: int, parent: int | None, begin_ms: int, end_ms: int, *, org: str = "acme",
          events: list[dict[str, Any]] | None = None, open_: bool = False,
          op: Operation = Operation.OTHER, status: SpanStatus = SpanStatus.OK) -> CanonicalSpan:
    return CanonicalSpan(
        trace_id=TRACE, span_id=f"{n:016x}", parent_span_id="" if parent is None else
        f"{parent:016x}", name=f"s{n}", kind="internal",
        start_time=B + timedelta(milliseconds=begin_ms),
        end_time=B + timedelta(milliseconds=end_ms), duration_ms=float(end_ms - begin_ms),
        status=status, operation=op, org_id=org, project_id="p", service_name="svc",
        ingested_at_ns=1, events=orjson.dumps(events or []).decode(),
        attributes='{"mentat.span.open": true}' if open_ else "{}")


def build() -> list[CanonicalSpan]:
    return [
        _span(1, None, 0, 1000, op=Operation.AGENT, events=[
            _checkpoint(100 * MS, {"step": "plan", "plan": {"a": 1, "b": 2}}, 1, replace=True),
            _checkpoint(600 * MS, {"step": "done", "plan": None, "result": "ok"}, 4)]),
        _span(2, 1, 200, 500, op=Operation.TOOL, status=SpanStatus.ERROR, events=[
            _checkpoint(300 * MS + 1, {"step": "act", "plan": {"b": None, "c": 3}}, 2)]),
        _span(3, 1, 500, 900, events=[_checkpoint(500 * MS, {"hits": [1, 2]}, 3),
                                      _checkpoint(700 * MS, "[REDACTED]", 5)]),
        _span(4, 1, 800, 800, open_=True),
        _span(5, 1, 950, 990, org="globex", events=[
            _checkpoint(960 * MS, {"secret": 1}, 1, replace=True)]),
    ]


@pytest.fixture(scope="module")
def spans() -> list[CanonicalSpan]:
    """Overrides the conftest dataset: ``loaded`` holds these spans (and resent copies)."""
    return build()


def _at(store: SpanStore, at_ns: int | None) -> Replay:
    replay = get_replay(store, TRACE, None if at_ns is None else B_NS + at_ns, ACME)
    assert replay is not None
    return replay


def _states(replay: Replay) -> dict[str, tuple[str, float]]:
    c = replay.spans
    return {n: (st, ms) for n, st, ms in zip(c["name"], c["state"], c["elapsed_ms"], strict=True)}


def _rel(ns: int | None) -> int | None:
    return None if ns is None else ns - B_NS


def test_before_the_first_span(loaded: SpanStore) -> None:
    r = _at(loaded, -MS)
    assert (r.spans["span_id"], r.state, r.num_not_started, r.num_checkpoints) == ([], {}, 4, 0)
    assert (_rel(r.previous_ns), _rel(r.next_ns)) == (None, 0)
    assert (_rel(r.start_ns), _rel(r.end_ns), r.num_spans) == (0, 1000 * MS, 4)


def test_before_the_first_checkpoint(loaded: SpanStore) -> None:
    r = _at(loaded, 50 * MS)
    assert _states(r) == {"s1": ("running", 50.0)}
    assert (r.state, r.last_checkpoint) == ({}, None)
    assert (_rel(r.previous_ns), _rel(r.next_ns)) == (0, 100 * MS)


def test_exactly_at_a_checkpoint(loaded: SpanStore) -> None:
    r = _at(loaded, 100 * MS)
    assert r.state == {"step": "plan", "plan": {"a": 1, "b": 2}}
    assert r.last_checkpoint is not None
    assert (r.last_checkpoint.span_id, r.last_checkpoint.seq) == (f"{1:016x}", 1)
    assert (_rel(r.previous_ns), _rel(r.next_ns)) == (0, 200 * MS)


def test_one_ns_before_a_checkpoint(loaded: SpanStore) -> None:
    r = _at(loaded, 300 * MS)  # c1's checkpoint is at 300 ms + 1 ns
    assert r.state == {"step": "plan", "plan": {"a": 1, "b": 2}}
    assert _states(r) == {"s1": ("running", 300.0), "s2": ("running", 100.0)}
    assert (_rel(r.previous_ns), _rel(r.next_ns)) == (200 * MS, 300 * MS + 1)
    assert _at(loaded, 300 * MS + 1).state == {"step": "act", "plan": {"a": 1, "c": 3}}


def test_at_an_end_that_is_also_a_start(loaded: SpanStore) -> None:
    r = _at(loaded, 500 * MS)  # c1 ends, c2 starts and checkpoints
    assert _states(r) == {"s1": ("running", 500.0), "s2": ("finished", 300.0),
                          "s3": ("running", 0.0)}
    done = r.spans["name"].index("s2")
    assert (r.spans["status"][done], r.spans["end_ns"][done]) == ("error", B_NS + 500 * MS)
    assert r.spans["status"][r.spans["name"].index("s3")] is None  # running: no status yet
    assert r.spans["end_ns"][r.spans["name"].index("s1")] is None
    assert r.state == {"step": "act", "plan": {"a": 1, "c": 3}, "hits": [1, 2]}
    assert (r.num_finished, r.num_running, r.num_not_started) == (1, 2, 1)
    assert (_rel(r.previous_ns), _rel(r.next_ns)) == (300 * MS + 1, 600 * MS)


def test_between_with_a_removal_and_an_unreadable_patch(loaded: SpanStore) -> None:
    r = _at(loaded, 750 * MS)
    assert r.state == {"step": "done", "result": "ok", "hits": [1, 2]}
    assert (r.num_checkpoints, r.num_bad_checkpoints) == (5, 1)
    assert r.last_checkpoint is not None and r.last_checkpoint.seq == 5
    assert set(_states(r)) == {"s1", "s2", "s3"}  # the open span starts at 800
    assert (_rel(r.previous_ns), _rel(r.next_ns)) == (700 * MS, 800 * MS)


def test_after_the_end_the_open_span_still_runs(loaded: SpanStore) -> None:
    r = _at(loaded, 5000 * MS)
    assert _states(r) == {"s1": ("finished", 1000.0), "s2": ("finished", 300.0),
                          "s3": ("finished", 400.0), "s4": ("running", 4200.0)}
    assert (_rel(r.previous_ns), r.next_ns) == (1000 * MS, None)
    assert r.state == {"step": "done", "result": "ok", "hits": [1, 2]}  # not globex's


def test_default_instant_is_the_last(loaded: SpanStore) -> None:
    r = _at(loaded, None)
    assert (_rel(r.at_ns), r.num_finished, r.num_running) == (1000 * MS, 3, 1)
    assert (_rel(r.previous_ns), r.next_ns) == (900 * MS, None)


def test_other_org_sees_only_its_part(loaded: SpanStore) -> None:
    r = get_replay(loaded, TRACE, B_NS + 970 * MS, {"org_id": "globex"})
    assert r is not None and r.state == {"secret": 1} and _states(r) == {
        "s5": ("running", 20.0)}
    assert get_replay(loaded, "cd" * 16, None, ACME) is None
