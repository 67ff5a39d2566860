"""Reads right after a 2xx see the acknowledged spans: the read barrier (server/resolving.py).

With the write-ahead log (decision 0022) a 2xx means "logged"; the insert follows. Each
test holds the inserter at a gate, acknowledges spans, starts the read, and opens the gate
only once the read has had ample time to answer on its own: a route without the barrier
answers from a store that does not hold the spans yet and the test fails.
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from serverkit import InProcess, make_settings, open_in_process

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "storage"))

from spanfactory import GatedStore, make_table  # noqa: E402

import mentatlab.server.routes  # noqa: E402
from mentatlab.server.deps import resolved_reads  # noqa: E402

_ALONE_S = 1.0
"""How long a read runs with the inserter held before the gate opens, in s."""


async def read_after_ack(app: InProcess, table: pa.Table, path: str,
                         params: dict[str, Any] | None = None) -> httpx.Response:
    """Acknowledge ``table`` with the inserter held, read ``path``, then let the insert go."""
    writer = app.state.writer
    gated = GatedStore(writer.store)
    writer.store = gated
    assert await writer.submit(table) == table.num_rows  # logged: acknowledged
    reading = asyncio.ensure_future(app.client.get(path, params=params))
    await asyncio.wait({reading}, timeout=_ALONE_S)
    gated.gate.set()
    return await reading


def now_spans(num_spans: int, **overrides: Any) -> pa.Table:
    start = datetime.now(UTC) - timedelta(minutes=1)
    return make_table(range(num_spans), start_time=start,
                      end_time=start + timedelta(milliseconds=5), **overrides)


async def test_the_compliance_report_counts_spans_still_in_the_log(
        _isolated_data_dir: Path) -> None:
    settings = make_settings(_isolated_data_dir, wal=True, ingest_workers=0, resolve_wait_s=30)
    findings = '[{"category": "email", "key": "gen_ai.prompt", "offset": 0, "length": 9}]'
    async with open_in_process(settings) as app:
        answer = await read_after_ack(
            app, now_spans(4, pii_findings=findings, policy_ids=("p1",),
                           policy_actions=("block",)),
            "/api/v1/governance/report", {"framework": "gdpr"})
        assert answer.status_code == 200, answer.text
        decisions = answer.json()["sections"]["decisions"]
        assert decisions["pii_findings"]["num_spans_with_findings"] == 4
        assert decisions["pii_findings"]["by_category"] == {"email": 4}
        assert decisions["policy_decisions"]["num_spans_blocked"] == 4


async def test_without_a_resolver_the_barrier_still_waits_for_the_insert(
        _isolated_data_dir: Path) -> None:
    # resolve_interval_s = 0: no attribution resolver runs, but state.resolver is still set
    # and its barrier waits until the acknowledged stamp is inserted (commit 4ffdd1a).
    settings = make_settings(_isolated_data_dir, wal=True, ingest_workers=0,
                             resolve_interval_s=0, resolve_wait_s=30)
    async with open_in_process(settings) as app:
        assert app.state.resolver is not None and not app.state.resolver.enabled
        answer = await read_after_ack(app, now_spans(3), "/api/v1/spans",
                                      {"window_s": 3600})
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["spans"]) == 3


_NO_SPAN_READS = {
    "admin": "the control store (orgs, keys, members)",
    "alerts": "the control store (rules, recorded alerts)",
    "audit": "the control store's audit log",
    "auth": "sign-in",
    "docs": "static pages",
    "events": "ingest",
    "governance_retention": "the control store; an erasure flushes the writer first",
    "health": "liveness, readiness and in-process metrics",
    "otlp": "ingest",
    "prices": "price data",
    "quotas": "the control store and in-process counters",
    "system": "in-process ingest counters",
}
"""Route modules that read no span data, and what they read instead."""

_NO_BARRIER = {
    "GET /api/v1/analytics/bottlenecks": "settled traces only (span_timing, filled by the "
    "settle job trace_quiet_s after a trace's last span): no wait at the barrier makes a "
    "trace acknowledged just before settled",
    "POST /api/v1/reprice": "flushes the writer (inserts the log) before it reads",
    "GET /metrics/tenants": "in-process RED counters",
    "POST /api/v1/governance/versions": "the control store's version registry",
    "GET /api/v1/governance/versions": "the control store's version registry",
    "GET /api/v1/policies": "the control store",
    "GET /api/v1/policies/{policy_id}": "the control store",
    "POST /api/v1/policies": "the control store",
    "PATCH /api/v1/policies/{policy_id}": "the control store",
    "DELETE /api/v1/policies/{policy_id}": "the control store",
    "POST /api/v1/policies/check": "the policies in force (memory)",
    "POST /api/v1/policies/{policy_id}/overrides": "the control store",
}
"""Routes of other modules without the barrier, and why they need none."""


def _waits(dependant: Dependant) -> bool:
    return any(d.call is resolved_reads or _waits(d) for d in dependant.dependencies)


def test_every_route_reading_spans_waits_at_the_barrier() -> None:
    # A new route must either wait or say here why it need not.
    unclassified = []
    for module in pkgutil.iter_modules(mentatlab.server.routes.__path__):
        if module.name in _NO_SPAN_READS:
            continue
        router = getattr(importlib.import_module(f"mentatlab.server.routes.{module.name}"),
                         "router", None)
        for route in getattr(router, "routes", []):
            if not isinstance(route, APIRoute):
                continue
            for method in sorted(route.methods):
                name = f"{method} {route.path}"
                if not _waits(route.dependant) and name not in _NO_BARRIER:
                    unclassified.append(name)
    assert unclassified == []
