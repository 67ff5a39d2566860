"""Request dependencies shared by the routes: the caller, its scoped filter, the read barrier."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from mentatlab.access.principal import Principal
from mentatlab.analytics.filters import SpanFilter, parse_filter
from mentatlab.server.auth import authorize
from mentatlab.server.state import server_state

__all__ = ["Caller", "resolved_reads", "scoped_filter"]

Caller = Annotated[Principal, Depends(authorize)]
"""The authenticated, authorized caller of a route (see :mod:`mentatlab.server.auth`)."""


def scoped_filter(caller: Principal, expr: str | None, *, allow_min_cost: bool = False
                  ) -> SpanFilter:
    """Parse ``?filter=`` and fix the caller's org/project in it.

    Raises:
        FilterError: (400) the expression cannot be read.
        Forbidden: (403) it names an org or project outside the caller's scope.
    """
    flt = parse_filter(expr, allow_min_cost=allow_min_cost)
    return flt.with_equals(caller.scope_filters(flt.equals))


async def resolved_reads(conn: HTTPConnection) -> None:
    """Dependency of analytics reads: wait until this node's acknowledged spans are resolved.

    Bounded by ``resolve_wait_s``; see :mod:`mentatlab.server.resolving`.
    """
    resolver = server_state(conn).resolver
    if resolver is not None:
        await resolver.wait_resolved()
