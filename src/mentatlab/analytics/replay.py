"""Replay: a trace as it stood at one instant, with the state its checkpoints recorded.

Over the trace's spans (read by :func:`mentatlab.analytics.traces.get_trace`, so only the
caller's org/project's spans), at instant ``at`` (ns since the epoch, UTC; span times are
stored to the µs):

* a span is **finished** when ``end <= at`` (a span ending exactly at ``at`` has
  finished), **running** when ``start <= at < end`` (one starting exactly at ``at`` is
  running), and is left out when ``start > at`` (not yet started). An *open* span (a
  ``*.started`` native event not yet completed, ``mentat.span.open``) has no known end:
  from its start on it is running.
* the **state** is the JSON object built by applying, in order, the ``mentat.checkpoint``
  events (recorded by :func:`mentatlab.checkpoint`, :mod:`mentatlab.sdk.checkpoint`) of
  every span of the trace whose event time is ``<= at``. Each carries an RFC 7386 JSON
  Merge Patch (:mod:`mentatlab.merge_patch`) in ``mentat.checkpoint.patch``; one with
  ``mentat.checkpoint.replace`` true starts over from ``{}``. Order: event time, then
  the span's start, span id and the event's place on the span. A checkpoint whose patch
  is not a JSON object (unreadable, or rewritten by redaction) is skipped and counted in
  ``num_bad_checkpoints``. Before the first checkpoint the state is ``{}``.
* the **event instants** are every span start, every known span end and every
  checkpoint time; ``previous_ns`` is the latest one strictly before ``at`` and
  ``next_ns`` the earliest strictly after (None at either end), so stepping from
  ``next_ns`` to ``next_ns`` visits each instant once.

Per-trace work in Python over one trace's spans (the issue allows it): a 5,000-span trace
replays in a few tens of ms (``bench/graph_replay.py``).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from mentatlab.analytics.traces import SpanNode, _is_open, get_trace
from mentatlab.merge_patch import apply_merge_patch
from mentatlab.model.span import CanonicalSpan
from mentatlab.storage.base import SpanStore

__all__ = ["CHECKPOINT_EVENT", "CheckpointRef", "Replay", "ReplaySpan", "get_replay",
           "replay_spans", "to_ns"]

CHECKPOINT_EVENT: Final = "mentat.checkpoint"
"""Name of the span event :func:`mentatlab.checkpoint` records."""
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


def to_ns(value: datetime) -> int:
    """``value`` (timezone-aware) as ns since the epoch."""
    return (value - _EPOCH) // _MICROSECOND * 1000


@dataclass(frozen=True, slots=True)
class ReplaySpan:
    """One span of the trace that had started by the instant."""

    span_id: str
    parent_span_id: str
    name: str
    operation: str
    agent_id: str
    tool_name: str
    start_ns: int
    end_ns: int | None
    """None while running."""
    state: str
    """``finished`` or ``running``."""
    status: str | None
    """``ok``, ``error`` or ``timeout`` once finished; None while running."""
    elapsed_ms: float
    """Finished: its duration; running: ``at - start``; ms."""


@dataclass(frozen=True, slots=True)
class CheckpointRef:
    """Where the last checkpoint applied was recorded."""

    span_id: str
    time_ns: int
    seq: int | None
    """``mentat.checkpoint.seq`` (per trace and process), when recorded."""


@dataclass(frozen=True, slots=True)
class Replay:
    """A trace at one instant (see the module doc)."""

    trace_id: str
    at_ns: int
    start_ns: int
    """The trace's first event instant (normally its first span's start)."""
    end_ns: int
    """The trace's last event instant (span end, start or checkpoint)."""
    num_spans: int
    """Spans of the trace (started or not)."""
    num_finished: int
    num_running: int
    num_not_started: int
    spans: tuple[ReplaySpan, ...]
    """Started spans, by start then span id."""
    state: dict[str, Any]
    num_checkpoints: int
    """Checkpoints applied (time ``<= at``), bad ones included."""
    num_bad_checkpoints: int
    last_checkpoint: CheckpointRef | None
    previous_ns: int | None
    next_ns: int | None


@dataclass(frozen=True, slots=True)
class _Checkpoint:
    time_ns: int
    span_id: str
    seq: int | None
    replace: bool
    patch: dict[str, Any] | None
    """None when unreadable."""


def _walk(roots: Sequence[SpanNode]) -> Iterator[CanonicalSpan]:
    stack = list(reversed(roots))
    while stack:
        node = stack.pop()
        yield node.span
        stack.extend(reversed(node.children))


def _checkpoints_of(span: CanonicalSpan) -> list[_Checkpoint]:
    if CHECKPOINT_EVENT not in span.events:  # cheap test before parsing
        return []
    try:
        events = orjson.loads(span.events or "[]")
    except orjson.JSONDecodeError:
        return []
    out: list[_Checkpoint] = []
    for event in events if isinstance(events, list) else ():
        if not isinstance(event, dict) or event.get("name") != CHECKPOINT_EVENT:
            continue
        time_ns = event.get("time_ns")
        if not isinstance(time_ns, int):
            continue
        attrs = event.get("attributes")
        attrs = attrs if isinstance(attrs, dict) else {}
        patch: Any = None
        try:
            patch = orjson.loads(attrs.get("mentat.checkpoint.patch", ""))
        except (orjson.JSONDecodeError, TypeError):
            pass
        seq = attrs.get("mentat.checkpoint.seq")
        out.append(_Checkpoint(time_ns, span.span_id, seq if isinstance(seq, int) else None,
                               attrs.get("mentat.checkpoint.replace") is True,
                               patch if isinstance(patch, dict) else None))
    return out


def replay_spans(trace_id: str, spans: Sequence[CanonicalSpan], at_ns: int | None) -> Replay:
    """The trace made of ``spans`` (at least one) at ``at_ns`` (see the module doc).

    ``at_ns`` None means the trace's last event instant (the whole trace).
    """
    ordered = sorted(spans, key=lambda s: (s.start_time, s.span_id))
    starts = [to_ns(s.start_time) for s in ordered]
    ends = [to_ns(s.end_time) for s in ordered]
    open_ = [_is_open(s) for s in ordered]
    checkpoints: list[tuple[int, int, str, int, _Checkpoint]] = []
    for row, span in enumerate(ordered):
        for index, found in enumerate(_checkpoints_of(span)):
            checkpoints.append((found.time_ns, starts[row], span.span_id, index, found))
    checkpoints.sort(key=lambda c: c[:4])
    instants = sorted({*starts, *(e for e, o in zip(ends, open_, strict=True) if not o),
                       *(c[0] for c in checkpoints)})
    if at_ns is None:
        at_ns = instants[-1]
    out: list[ReplaySpan] = []
    num_finished = 0
    for span, start, end, is_open in zip(ordered, starts, ends, open_, strict=True):
        if start > at_ns:
            continue
        finished = not is_open and end <= at_ns
        num_finished += finished
        out.append(ReplaySpan(
            span_id=span.span_id, parent_span_id=span.parent_span_id, name=span.name,
            operation=str(span.operation), agent_id=span.agent_id, tool_name=span.tool_name,
            start_ns=start, end_ns=end if finished else None,
            state="finished" if finished else "running",
            status=str(span.status) if finished else None,
            elapsed_ms=((end if finished else at_ns) - start) / 1e6))
    state: dict[str, Any] = {}
    applied = bad = 0
    last: CheckpointRef | None = None
    for time_ns, _, span_id, _, found in checkpoints:
        if time_ns > at_ns:
            break
        applied += 1
        last = CheckpointRef(span_id, time_ns, found.seq)
        if found.patch is None:
            bad += 1
            continue
        state = apply_merge_patch({} if found.replace else state, found.patch)
    before = bisect.bisect_left(instants, at_ns)
    after = bisect.bisect_right(instants, at_ns)
    return Replay(
        trace_id=trace_id, at_ns=at_ns, start_ns=instants[0], end_ns=instants[-1],
        num_spans=len(ordered), num_finished=num_finished,
        num_running=len(out) - num_finished, num_not_started=len(ordered) - len(out),
        spans=tuple(out), state=state, num_checkpoints=applied, num_bad_checkpoints=bad,
        last_checkpoint=last, previous_ns=instants[before - 1] if before else None,
        next_ns=instants[after] if after < len(instants) else None)


def get_replay(store: SpanStore, trace_id: str, at_ns: int | None = None,
               filters: Mapping[str, str] | None = None) -> Replay | None:
    """Trace ``trace_id`` at ``at_ns`` (default: its last event instant, the whole trace).

    Args:
        store: the span store.
        trace_id: 32 lowercase hex digits.
        at_ns: the instant, ns since the epoch (UTC); None for the trace's end.
        filters: the caller's org/project: only matching spans are read.

    Returns:
        The replay, or None when no span of the trace is stored (for the caller).

    Raises:
        StoreError: the query failed.
    """
    detail = get_trace(store, trace_id, filters=filters)
    if detail is None:
        return None
    return replay_spans(trace_id, list(_walk(detail.roots)), at_ns)
