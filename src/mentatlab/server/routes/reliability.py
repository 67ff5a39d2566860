"""``GET /api/v1/analytics/reliability``: success, failure taxonomy, retries, loops, cycles.

Definitions in :mod:`mentatlab.analytics.reliability` and docs/api.md ("Reliability").
A key scoped to an org or project sees only its own spans and traces.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query, Request

from mentatlab.analytics.query import Bucket
from mentatlab.analytics.reliability import (
    HEATMAP_STEPS,
    MAX_CYCLE_TRACES,
    MAX_LISTED,
    MAX_STEPS,
    TIMEOUT_CATEGORIES,
    Reliability,
    get_reliability,
)
from mentatlab.server.deps import Caller, scoped_filter
from mentatlab.server.routes.analytics_params import (
    ANALYTICS_ERRORS,
    RESOLVED_READS,
    EndQ,
    FilterQ,
    StartQ,
    build_query,
)
from mentatlab.server.serialize import jsonable
from mentatlab.server.state import server_state

__all__ = ["reliability_to_json", "router"]

router = APIRouter(prefix="/api/v1", tags=["analytics"])


def reliability_to_json(r: Reliability) -> dict[str, Any]:
    """The answer's sections (shape in docs/api.md)."""
    return {
        "spans": {"num_spans": r.num_spans, "num_failed": r.num_failed,
                  "success_rate": r.span_success_rate},
        "traces": jsonable(r.traces),
        "operations": [{k: v for k, v in jsonable(o).items() if k != "step"}
                       for o in r.operations],
        "steps": jsonable(r.steps), "steps_truncated": r.steps_truncated,
        "errors": {"by_class": [{k: v for k, v in jsonable(e).items()
                                 if k != "error_category"} for e in r.errors_by_class],
                   "by_category": jsonable(r.errors_by_category)},
        "retries": {"num_retries": r.num_retries, "num_succeeded": r.num_retries_ok,
                    "retry_rate": r.retry_rate, "retry_success_rate": r.retry_success_rate},
        "fallbacks": {"num_spans": r.num_fallback_spans,
                      "num_traces": r.traces.num_with_fallback,
                      "activation_rate": r.traces.fallback_rate},
        "loop_detected": {"min_calls": r.loop_min_calls, "num_traces": r.num_loop_traces,
                          "rate": r.loop_rate, "loops": jsonable(r.loops)},
        "cycles": {"num_traces": r.num_cycle_traces, "truncated": r.cycles_truncated,
                   "traces": jsonable(r.cycles)},
        "deadlock_suspects": {"num_traces": r.num_deadlock_suspects,
                              "traces": jsonable(r.deadlock_suspects)},
        "heatmap": jsonable(r.heatmap),
    }


@router.get("/analytics/reliability", summary="Success, failures, retries, loops and cycles",
            responses=ANALYTICS_ERRORS, dependencies=RESOLVED_READS)
async def reliability(request: Request, caller: Caller, start: StartQ = None,
                      end: EndQ = None,
                      filter: FilterQ = None,  # noqa: A002 — public name
                      bucket: Annotated[Bucket | None, Query(description=(
                          "Heatmap bucket: minute, hour or day; default from the range "
                          "(minute up to 3 h, hour up to 8 days, else day)"))] = None,
                      ) -> dict[str, Any]:
    """Success, errors by class and category, retries, fallbacks, loops and cycles.

    End to end (per trace) and per step, over the range and filter. Rates are fractions
    in [0, 1] (null when nothing to divide by). Bad input: 400/422 naming the field.
    """
    params = build_query(start, end, scoped_filter(caller, filter).equals)
    result = await anyio.to_thread.run_sync(get_reliability, server_state(request).store,
                                            params, bucket)
    window = params.time_range
    return {"ok": True, "start": jsonable(window.start), "end": jsonable(window.end),
            "limits": {"loop_min_calls": result.loop_min_calls, "max_listed": MAX_LISTED,
                       "max_steps": MAX_STEPS, "heatmap_steps": HEATMAP_STEPS,
                       "max_cycle_traces": MAX_CYCLE_TRACES,
                       "timeout_categories": list(TIMEOUT_CATEGORIES)},
            **reliability_to_json(result)}
