"""Replay: a trace as it stood at one instant, with the state its checkpoints recorded.

Over the trace's spans (read like :func:`mentatlab.analytics.traces.get_trace` reads them:
``spans FINAL``, the trace id and the caller's org/project filters, so only the caller's
spans; but only the dozen columns replay needs, as columns: building every span's full
``CanonicalSpan`` took 1.5 s of a 5,000-span trace's 1.7 s), at instant ``at`` (ns since
the epoch, UTC; span times are stored to the µs):

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

Per-trace work in Python over one trace's spans (the issue allows it); timings in
bench/RESULTS.md (``bench/graph_replay.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
import orjson

from mentatlab.analytics.query import FINAL_SETTINGS, build_where
from mentatlab.merge_patch import apply_merge_patch
from mentatlab.storage.base import SpanStore

__all__ = ["CHECKPOINT_EVENT", "SPAN_COLUMNS", "CheckpointRef", "Replay", "SpanColumns",
           "get_replay", "replay_spans", "to_ns"]

CHECKPOINT_EVENT: Final = "mentat.checkpoint"
"""Name of the span event :func:`mentatlab.checkpoint` records."""
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


def to_ns(value: datetime) -> int:
    """``value`` (timezone-aware) as ns since the epoch."""
    return (value - _EPOCH) // _MICROSECOND * 1000


SPAN_COLUMNS: Final = ("span_id", "parent_span_id", "name", "operation", "agent_id",
                       "tool_name", "start_ns", "end_ns", "state", "status", "elapsed_ms")
"""The columns of :attr:`Replay.spans`: one value per started span, by start then span id.
``end_ns`` and ``status`` are None while running; ``state`` is ``finished`` or
``running``; ``elapsed_ms`` the duration once finished, ``at - start`` while running."""


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
    spans: dict[str, list[Any]]
    """The started spans as columns (:data:`SPAN_COLUMNS`), by start then span id."""
    state: dict[str, Any]
    num_checkpoints: int
    """Checkpoints applied (time ``<= at``), bad ones included."""
    num_bad_checkpoints: int
    last_checkpoint: CheckpointRef | None
    previous_ns: int | None
    next_ns: int | None


@dataclass(frozen=True, slots=True)
class SpanColumns:
    """What replay reads of a trace's spans, as columns sorted by (start, span id)."""

    span_id: list[str]
    parent_span_id: list[str]
    name: list[str]
    operation: list[str]
    agent_id: list[str]
    tool_name: list[str]
    status: list[str]
    start_ns: np.ndarray
    """int64, ns since the epoch."""
    end_ns: np.ndarray
    is_open: np.ndarray
    """bool: a ``*.started`` native event not yet completed (``mentat.span.open`` true)."""
    events: list[str]
    """The span's events (JSON text) when one is a checkpoint, else ``""``."""


@dataclass(frozen=True, slots=True)
class _Checkpoint:
    time_ns: int
    span_id: str
    seq: int | None
    replace: bool
    patch: dict[str, Any] | None
    """None when unreadable."""


def _checkpoints_of(span_id: str, text: str) -> list[_Checkpoint]:
    try:
        events = orjson.loads(text or "[]")
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
        out.append(_Checkpoint(time_ns, span_id, seq if isinstance(seq, int) else None,
                               attrs.get("mentat.checkpoint.replace") is True,
                               patch if isinstance(patch, dict) else None))
    return out


def replay_spans(trace_id: str, spans: SpanColumns, at_ns: int | None) -> Replay:
    """The trace made of ``spans`` (at least one row) at ``at_ns`` (see the module doc).

    ``at_ns`` None means the trace's last event instant (the whole trace). Whole columns
    at a time (numpy); Python only for the started spans of the answer and checkpoints.
    """
    starts, ends, is_open = spans.start_ns, spans.end_ns, spans.is_open
    checkpoints: list[tuple[int, int, str, int, _Checkpoint]] = []
    for row, text in enumerate(spans.events):
        if text:
            span_id = spans.span_id[row]
            for index, found in enumerate(_checkpoints_of(span_id, text)):
                checkpoints.append((found.time_ns, int(starts[row]), span_id, index, found))
    checkpoints.sort(key=lambda c: c[:4])
    instants = np.unique(np.concatenate([
        starts, ends[~is_open], np.array([c[0] for c in checkpoints], np.int64)]))
    at = int(instants[-1]) if at_ns is None else at_ns
    started = np.flatnonzero(starts <= at)
    finished = ~is_open[started] & (ends[started] <= at)
    elapsed_ms = (np.where(finished, ends[started], at) - starts[started]) / 1e6
    rows, done = started.tolist(), finished.tolist()
    out: dict[str, list[Any]] = {
        name: [getattr(spans, name)[r] for r in rows]
        for name in ("span_id", "parent_span_id", "name", "operation", "agent_id", "tool_name")}
    out["start_ns"] = starts[started].tolist()
    out["end_ns"] = [e if d else None for e, d in zip(ends[started].tolist(), done, strict=True)]
    out["state"] = ["finished" if d else "running" for d in done]
    out["status"] = [spans.status[r] if d else None for r, d in zip(rows, done, strict=True)]
    out["elapsed_ms"] = elapsed_ms.tolist()
    state: dict[str, Any] = {}
    applied = bad = 0
    last: CheckpointRef | None = None
    for time_ns, _, span_id, _, found in checkpoints:
        if time_ns > at:
            break
        applied += 1
        last = CheckpointRef(span_id, time_ns, found.seq)
        if found.patch is None:
            bad += 1
            continue
        state = apply_merge_patch({} if found.replace else state, found.patch)
    before = int(np.searchsorted(instants, at, side="left"))
    after = int(np.searchsorted(instants, at, side="right"))
    num_finished = int(finished.sum())
    return Replay(
        trace_id=trace_id, at_ns=at, start_ns=int(instants[0]), end_ns=int(instants[-1]),
        num_spans=len(starts), num_finished=num_finished,
        num_running=len(rows) - num_finished, num_not_started=len(starts) - len(rows),
        spans=out, state=state, num_checkpoints=applied, num_bad_checkpoints=bad,
        last_checkpoint=last, previous_ns=int(instants[before - 1]) if before else None,
        next_ns=int(instants[after]) if after < len(instants) else None)


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
    parts = build_where(None, {**(filters or {}), "trace_id": trace_id})
    table = store.query_arrow(
        "SELECT span_id, parent_span_id, name, toString(operation) AS operation, agent_id,"
        " tool_name, toString(status) AS status,"
        " toUnixTimestamp64Nano(start_time) AS start_ns,"
        " toUnixTimestamp64Nano(end_time) AS end_ns,"
        " JSONExtractBool(attributes, 'mentat.span.open') AS is_open,"
        f" if(position(events, '{CHECKPOINT_EVENT}') > 0, events, '') AS events"
        f" FROM spans FINAL WHERE {parts.where} ORDER BY start_ns, span_id {FINAL_SETTINGS}",
        parts.binds)
    if table.num_rows == 0:
        return None
    numbers = {"start_ns": np.int64, "end_ns": np.int64, "is_open": bool}
    columns = {f.name: (table.column(f.name).to_numpy().astype(numbers[f.name])
                        if f.name in numbers else table.column(f.name).to_pylist())
               for f in fields(SpanColumns)}
    return replay_spans(trace_id, SpanColumns(**columns), at_ns)
