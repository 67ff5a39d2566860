"""Performance reads: latency percentiles per group, agent peer ranks, per-tenant RED.

``GET /api/v1/analytics/latency`` and ``GET /api/v1/analytics/peers``; the numbers and
their definitions are :mod:`mentatlab.analytics.latency` and
:mod:`mentatlab.analytics.peers`. Money is a string (exact decimal), durations are ms. A
key scoped to an org/project only ever sees its own spans (``scoped_filter``).

``GET /metrics/tenants``: the RED metrics of :mod:`mentatlab.server.red_metrics` with
``org_id`` and ``project_id`` labels, only the caller's scope, only for a credential (the
public ``/metrics`` has them summed over tenants).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from mentatlab.analytics.latency import (
    LATENCY_GROUPS,
    MAX_GROUPS,
    LatencyGroupBy,
    latency_by,
)
from mentatlab.analytics.peers import PEER_METRICS, PERCENTILE_KIND, rank_peers
from mentatlab.errors import Unauthenticated
from mentatlab.server.deps import Caller, resolved_reads, scoped_filter
from mentatlab.server.errors import error_responses
from mentatlab.server.metrics import CONTENT_TYPE_LATEST
from mentatlab.server.routes.analytics_params import (
    EndQ,
    FilterQ,
    StartQ,
    build_query,
    run_blocking,
)
from mentatlab.server.serialize import jsonable
from mentatlab.server.state import server_state

__all__ = ["QUANTILE_METHOD", "router"]

router = APIRouter()  # tags per route: /metrics/tenants is "health", like /metrics

ANALYTICS_ERRORS = error_responses(400, 401, 403, 422, 429, 503, 504)
RESOLVED_READS = [Depends(resolved_reads)]
QUANTILE_METHOD = ("exact; linear interpolation between closest ranks (ClickHouse "
                   "quantilesExactInclusive = numpy.quantile method='linear')")
"""How the percentiles are computed, echoed in every latency answer."""


@router.get("/api/v1/analytics/latency", tags=["analytics"],
            summary="Latency percentiles and histograms per group",
            responses=ANALYTICS_ERRORS, dependencies=RESOLVED_READS)
async def latency(request: Request, caller: Caller,
                  group_by: Annotated[LatencyGroupBy, Query(description=(
                      f"One of {', '.join(LATENCY_GROUPS)}"))] = "operation",
                  start: StartQ = None, end: EndQ = None,
                  filter: FilterQ = None,  # noqa: A002 — public name
                  limit: Annotated[int, Query(ge=1, le=MAX_GROUPS, description=(
                      "Most groups, the busiest first"))] = 50,
                  ) -> dict[str, Any]:
    """Exact p50/p90/p95/p99, mean and max span duration (ms) and a histogram per group.

    Which spans each grouping counts: :mod:`mentatlab.analytics.latency`. Unknown
    ``group_by`` or ``limit`` out of 1..1000: 422 naming the field.
    """
    params = build_query(start, end, scoped_filter(caller, filter).equals)
    report = await run_blocking(lambda: latency_by(server_state(request).store, params, group_by,
                                           limit=limit))
    window = params.time_range
    groups = [{"key": g.key, "num_spans": g.num_spans, "p50_ms": g.p50_ms,
               "p90_ms": g.p90_ms, "p95_ms": g.p95_ms, "p99_ms": g.p99_ms,
               "mean_ms": g.mean_ms, "max_ms": g.max_ms,
               "histogram": list(g.histogram_counts)} for g in report.groups]
    return {"ok": True, "group_by": report.group_by, "unit": "ms",
            "start": jsonable(window.start), "end": jsonable(window.end),
            "quantile_method": QUANTILE_METHOD,
            "histogram_bounds_ms": list(report.histogram_bounds_ms),
            "num_groups": report.num_groups, "groups": groups}


@router.get("/api/v1/analytics/peers", tags=["analytics"],
            summary="Each agent's percentile rank among its peers",
            responses=ANALYTICS_ERRORS, dependencies=RESOLVED_READS)
async def peers(request: Request, caller: Caller, start: StartQ = None, end: EndQ = None,
                filter: FilterQ = None,  # noqa: A002 — public name
                ) -> dict[str, Any]:
    """Per agent: runs, successes, cost, tokens and its percentile ranks among its peers.

    Ranked on cost per success (USD), median run latency (ms) and tokens per success among
    the agents of the same operation type (scipy ``percentileofscore``, kind ``mean``;
    lower is better): :mod:`mentatlab.analytics.peers`.
    """
    params = build_query(start, end, scoped_filter(caller, filter).equals)
    agents = await run_blocking(rank_peers, server_state(request).store, params)
    window = params.time_range
    rows = [{"agent_id": a.agent_id, "operation_type": a.operation_type,
             "num_runs": a.num_runs, "num_successes": a.num_successes,
             "total_cost": jsonable(a.total_cost), "total_tokens": a.total_tokens,
             **{m: jsonable(a.ranks[m]) for m in PEER_METRICS}} for a in agents]
    return {"ok": True, "unit": "agent run", "currency": "USD",
            "start": jsonable(window.start), "end": jsonable(window.end),
            "percentile_kind": PERCENTILE_KIND, "lower_is_better": True,
            "metrics": list(PEER_METRICS), "agents": rows}


@router.get("/metrics/tenants", summary="Per-tenant RED metrics (Prometheus)", tags=["health"],
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}},
                       **error_responses(401, 403, 429)})
async def tenant_metrics(request: Request, caller: Caller) -> Response:
    """RED metrics per org, project, service, operation and model, in the caller's scope.

    Span rate, errors and duration histograms; an org key sees its org's projects.

    Needs a credential with ``read_usage`` even when ``auth_required`` is off (401
    without one), so tenant names never reach an anonymous scrape.
    """
    if caller.kind == "anonymous":
        raise Unauthenticated("Per-tenant metrics need an API key (Authorization: Bearer) "
                              "or a dashboard session")
    red = server_state(request).metrics.red
    return Response(red.render_tenants(caller.scope.org_id, caller.scope.project_id),
                    media_type=CONTENT_TYPE_LATEST)
