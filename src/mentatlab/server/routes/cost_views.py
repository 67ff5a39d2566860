"""Cost view routes: token waterfall, attribution tree, unit economics, provider × model.

Definitions and formulas are in :mod:`mentatlab.analytics.cost_views`. Money is a string
(exact decimal, USD unless the pricing file names another currency); times ISO-8601 UTC.
Every route reads only the caller's org/project (a scoped key's filter is narrowed to its
scope; naming another org or project is 403), like the other analytics routes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from mentatlab.analytics.cost_views import (
    MAX_LEVELS,
    MAX_PROVIDER_MODELS,
    AttributionNode,
    attribution_tree,
    parse_levels,
    provider_models,
    token_waterfall,
    unit_economics,
)
from mentatlab.analytics.query import GROUP_BY_COLUMNS, QueryParams
from mentatlab.server.deps import Caller, scoped_filter
from mentatlab.server.routes.analytics_params import (
    ANALYTICS_ERRORS,
    RESOLVED_READS,
    EndQ,
    FilterQ,
    StartQ,
    build_query,
    run_blocking,
)
from mentatlab.server.serialize import jsonable
from mentatlab.server.state import server_state

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])


def _window(params: QueryParams) -> dict[str, Any]:
    window = params.time_range
    return {"ok": True, "currency": "USD", "start": jsonable(window.start),
            "end": jsonable(window.end)}


@router.get("/tokens", summary="Token waterfall: tokens and cost per kind, cache savings",
            responses=ANALYTICS_ERRORS, dependencies=RESOLVED_READS)
async def tokens(request: Request, caller: Caller, start: StartQ = None, end: EndQ = None,
                 filter: FilterQ = None,  # noqa: A002 — public name
                 ) -> dict[str, Any]:
    """Tokens and cost of each kind, and the cache savings.

    Kinds: uncached input, cache read, cache write, output, reasoning, request fees,
    unattributed roll-up usage, in ``kinds`` in that order; the first six costs add up
    to ``token_cost`` exactly.
    ``cache_savings`` = Σ (cache-read tokens × uncached input price − their cost), USD.
    """
    params = build_query(start, end, scoped_filter(caller, filter).equals)
    result = await run_blocking(token_waterfall, server_state(request).store, params)
    return {**_window(params), **jsonable(result)}


def _node_json(node: AttributionNode) -> dict[str, Any]:
    return {"level": node.level, "key": node.key, "total_cost": jsonable(node.total_cost),
            "token_cost": jsonable(node.token_cost),
            "unattributed_cost": jsonable(node.unattributed_cost),
            "discount": jsonable(node.discount), "requests": node.requests,
            "num_spans": node.num_spans, "children": [_node_json(c) for c in node.children]}


@router.get("/attribution", summary="Cost as a tree by levels in the caller's order",
            responses=ANALYTICS_ERRORS, dependencies=RESOLVED_READS)
async def attribution(request: Request, caller: Caller,
                      levels: Annotated[str, Query(max_length=200, description=(
                          f"1 to {MAX_LEVELS} distinct names, comma-separated, outermost "
                          f"first, from {', '.join(GROUP_BY_COLUMNS)} (short forms org, "
                          "project, agent, user, customer, workflow, tool, service)."))] = (
                          "org_id,project_id,agent_id,model"),
                      start: StartQ = None, end: EndQ = None,
                      filter: FilterQ = None,  # noqa: A002 — public name
                      ) -> dict[str, Any]:
    """Cost by ``levels`` as a tree (``tree`` is the root: the whole range and filter).

    Every node's ``total_cost``, ``token_cost``, ``unattributed_cost``, ``discount``,
    ``requests`` and ``num_spans`` are the exact sums of its children's; ``key`` ``""`` is
    spans without a value for that level. Bad ``levels`` (none, more than 5, unknown,
    repeated): 422 naming ``levels``.
    """
    names = parse_levels(levels)
    params = build_query(start, end, scoped_filter(caller, filter).equals)
    tree = await run_blocking(attribution_tree, server_state(request).store, params, names)
    return {**_window(params), "levels": list(tree.levels), "num_leaves": tree.num_leaves,
            "tree": _node_json(tree.root)}


@router.get("/unit-economics", summary="Cost per successful trace, per user, per session",
            responses=ANALYTICS_ERRORS, dependencies=RESOLVED_READS)
async def unit_economics_route(request: Request, caller: Caller, start: StartQ = None,
                               end: EndQ = None,
                               filter: FilterQ = None,  # noqa: A002 — public name
                               ) -> dict[str, Any]:
    """Cost per trace, successful trace, user and session, with counts.

    A successful trace has no span ``error``/``timeout``; the cost of failed traces is
    included; users and sessions are distinct ``user_id`` and ``session_id`` values.
    Ratios are null when their count is 0.
    """
    params = build_query(start, end, scoped_filter(caller, filter).equals)
    result = await run_blocking(unit_economics, server_state(request).store, params)
    return {**_window(params), **jsonable(result)}


@router.get("/provider-models", summary="Cost, requests, latency and errors per provider "
            "and model", responses=ANALYTICS_ERRORS, dependencies=RESOLVED_READS)
async def provider_models_route(request: Request, caller: Caller, start: StartQ = None,
                                end: EndQ = None,
                                filter: FilterQ = None,  # noqa: A002 — public name
                                limit: Annotated[int, Query(
                                    ge=1, le=MAX_PROVIDER_MODELS)] = 200,
                                ) -> dict[str, Any]:
    """One row per (provider, model) of LLM calls, costliest first.

    Rows: ``total_cost``, ``token_cost``, ``requests``, ``error_requests``, ``error_rate`` (0..1),
    ``latency_p50_ms`` and ``latency_p95_ms`` (exact, linear interpolation), tokens.
    """
    params = build_query(start, end, scoped_filter(caller, filter).equals)
    rows = await run_blocking(lambda: provider_models(server_state(request).store, params,
                                              limit=limit))
    return {**_window(params), "rows": jsonable(rows)}
