"""The dashboard's HTML pages (issue 15): the shell, overview, models, alerts, "coming" pages.

Pages are documents first: Jinja templates under ``ui/templates/``, real links and a GET
form for the time range and filters, so the view state lives in the URL and a view can be
shared as a link. Numbers are not rendered here: the page's static scripts fetch them from
the documented REST API (``/api/v1/overview``, ``/api/v1/cost``) with the same
credentials, so the dashboard has no private back door and a scoped key sees only its org.

Every page is checked against the permission matrix like an API route
(:mod:`mentatlab.access.routes`), but answers HTML: a sign-in page (401) when auth is on
and no credential came, a "not allowed" page (403) when the role lacks the permission.
The Content-Security-Policy is the strict one of
:mod:`mentatlab.server.security_headers`, without a nonce: pages hold no inline code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import QueryParams

from mentatlab.access.principal import Principal
from mentatlab.access.roles import Permission
from mentatlab.errors import Forbidden, Unauthenticated
from mentatlab.server.auth import authorize
from mentatlab.server.routes.docs import STATIC_PATH
from mentatlab.server.security_headers import page_headers

__all__ = ["DEFAULT_RANGE", "FILTERS", "MODEL_SORTS", "RANGES", "VIEWS", "View", "ViewState",
           "router", "view_state"]

@dataclass(frozen=True, slots=True)
class View:
    """One entry of the navigation."""

    path: str
    """URL path of the page."""
    title: str
    """Navigation label and page title."""
    built: bool
    """False: the page shows a "coming" empty state (issue 15 builds it later)."""
    summary: str
    """One sentence on what the view shows, for its empty state."""


VIEWS: Final = (
    View("/", "Overview", True, "Spend, requests, success rate and latency at a glance."),
    View("/ops", "Ops", False, "Live request rate, errors and latency percentiles."),
    View("/cost", "Cost", False, "Spend by any dimension, crossed, with CSV export."),
    View("/traces", "Traces", False, "Trace list and the waterfall of each trace."),
    View("/alerts", "Alerts", True, "Alert rules and budgets, their state and history."),
    View("/models", "Models", True, "Models seen, their price sources and unpriced ones."),
    View("/settings", "Settings", False, "API keys, members, roles, quotas and the audit log."),
)
"""The navigation, in order (the matrix in access/routes.py names each path)."""

RANGES: Final = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1),
                 "24h": timedelta(hours=24), "7d": timedelta(days=7),
                 "30d": timedelta(days=30)}
"""Time-range picker choices (``?range=``) → the window ending now."""
DEFAULT_RANGE: Final = "24h"
"""The range of a URL without (or with an unknown) ``range``."""
_BUCKETS: Final = {"15m": "minute", "1h": "minute", "24h": "hour", "7d": "day", "30d": "day"}
"""Trend bucket per range: about 15 to 60 bars whatever the range."""

FILTERS: Final = {"project": "project_id", "agent": "agent_id", "model": "model",
                  "status": "status"}
"""Filter-bar fields: URL parameter → canonical field of the API's ``filter``."""
STATUSES: Final = ("ok", "error", "timeout")
"""The choices of the status filter."""
_VALUE = re.compile(r"^[A-Za-z0-9._:/@ +-]{1,128}$")
"""A filter value the API's ``key=value,...`` expression can carry unchanged."""


@dataclass(frozen=True, slots=True)
class ViewState:
    """What the URL says about the view: range and filters (unknown values dropped)."""

    range: str
    """Key of :data:`RANGES`."""
    filters: dict[str, str]
    """URL parameter (key of :data:`FILTERS`) → value."""
    start: datetime
    """Window start, UTC."""
    end: datetime
    """Window end (exclusive), UTC: the time the page was rendered."""

    @property
    def api_filter(self) -> str:
        """The API's ``filter`` expression: ``project_id=acme,status=error``."""
        return ",".join(f"{FILTERS[k]}={v}" for k, v in self.filters.items())

    @property
    def bucket(self) -> str:
        """The trend's bucket for this range: ``minute``, ``hour`` or ``day``."""
        return _BUCKETS[self.range]

    def query(self, **changes: str | None) -> str:
        """This state as a query string (``?range=1h&model=x``), with ``changes`` applied.

        A change to None removes the parameter.
        """
        values: dict[str, str | None] = {"range": self.range, **self.filters, **changes}
        kept = {k: v for k, v in values.items() if v}
        return "?" + str(QueryParams(kept)) if kept else ""


def view_state(params: QueryParams, now: datetime | None = None) -> ViewState:
    """Read the range and filters from a page's query parameters.

    A value the picker or filter bar cannot have produced (an unknown range or status, a
    filter value with characters outside ``[A-Za-z0-9._:/@ +-]``) is dropped rather than
    refused: a shared link with a stale parameter still opens.

    Args:
        params: the request's query parameters.
        now: the window's end (default: now, UTC).
    """
    end = now or datetime.now(UTC)
    chosen = params.get("range", DEFAULT_RANGE)
    range_key = chosen if chosen in RANGES else DEFAULT_RANGE
    filters: dict[str, str] = {}
    for name in FILTERS:
        value = params.get(name, "").strip()
        if _VALUE.match(value) and (name != "status" or value in STATUSES):
            filters[name] = value
    return ViewState(range_key, filters, end - RANGES[range_key], end)


_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("mentatlab.ui", "templates"),
    autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)

router = APIRouter(include_in_schema=False)


def _render(request: Request, template: str, status_code: int = 200,
            **context: Any) -> HTMLResponse:
    """A page from ``template`` with the shell's context and the strict page headers."""
    root = request.scope.get("root_path", "")
    state = view_state(request.query_params)
    page = _templates.get_template(template).render(
        root=root, static=root + STATIC_PATH, views=VIEWS, ranges=list(RANGES),
        filters=FILTERS, statuses=STATUSES, state=state, path=request.url.path,
        **context)
    return HTMLResponse(page, status_code=status_code, headers=page_headers())


async def _checked(request: Request) -> HTMLResponse | Principal:
    """Authorize like an API route: the caller, or the sign-in (401) or not-allowed (403) page.

    Raises:
        RateLimited: (429, the JSON error) the caller is over its query rate.
    """
    try:
        return await authorize(request)
    except Unauthenticated:
        return _render(request, "signin.html", 401, title="Sign in")
    except Forbidden as exc:
        return _render(request, "forbidden.html", 403, title="Not allowed",
                       reason="; ".join(e.reason for e in exc.errors))


@router.get("/", response_class=HTMLResponse)
async def overview_page(request: Request) -> HTMLResponse:
    """The overview: headline numbers, spend trend, top agents and traces of the range.

    The top traces need ``read_spans`` (span payloads); without it the page says so rather
    than asking the API for what it would refuse.
    """
    caller = await _checked(request)
    if isinstance(caller, HTMLResponse):
        return caller
    base_url = str(request.base_url).rstrip("/")
    return _render(request, "overview.html", title="Overview", base_url=base_url,
                   can_read_spans=caller.can(Permission.READ_SPANS))


_QUERY = re.compile(r"^[A-Za-z0-9._:/@ *+-]{0,128}$")
"""A model search (``?q=``) the page hands to its script; anything else is dropped."""
MODEL_SORTS: Final = {"spans": "Spans", "model": "Model", "last_seen": "Last seen"}
"""Orders of the unpriced table (``?sort=``): most spans first (the API's), by name, newest."""


@router.get("/models", response_class=HTMLResponse)
async def models_page(request: Request) -> HTMLResponse:
    """Models: the unpriced ones of the range (with how to price them) and the prices in force.

    ``?q=`` narrows both tables to models whose provider or name contains it; ``?sort=``
    (a key of :data:`MODEL_SORTS`) orders the unpriced table.
    """
    caller = await _checked(request)
    if isinstance(caller, HTMLResponse):
        return caller
    search = request.query_params.get("q", "").strip()
    sort = request.query_params.get("sort", "spans")
    return _render(request, "models.html", title="Models",
                   search=search if _QUERY.match(search) else "",
                   sort=sort if sort in MODEL_SORTS else "spans", sorts=MODEL_SORTS)


@router.get("/alerts", response_class=HTMLResponse)
async def alerts_page(request: Request) -> HTMLResponse:
    """Alerts: budgets and threshold rules with their state, and the alert history."""
    caller = await _checked(request)
    if isinstance(caller, HTMLResponse):
        return caller
    # the money's currency is the pricing's (GET /api/v1/prices), for roles that may read it
    return _render(request, "alerts.html", title="Alerts",
                   can_read_usage=caller.can(Permission.READ_USAGE))


def _coming_page(view: View) -> Any:
    async def coming(request: Request) -> HTMLResponse:
        caller = await _checked(request)
        if isinstance(caller, HTMLResponse):
            return caller
        return _render(request, "coming.html", title=view.title, view=view)

    coming.__doc__ = f"The {view.title} view (not built yet: a 'coming' empty state)."
    return coming


for _view in VIEWS:
    if not _view.built:
        router.add_api_route(_view.path, _coming_page(_view), methods=["GET"],
                             response_class=HTMLResponse, name=f"{_view.title.lower()}_page")
# one trace's waterfall (linked from the overview's top traces) comes with the Traces view
router.add_api_route("/traces/{trace_id}", _coming_page(VIEWS[3]), methods=["GET"],
                     response_class=HTMLResponse, name="trace_page")
