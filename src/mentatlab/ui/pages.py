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
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import QueryParams

from mentatlab.access.principal import Principal
from mentatlab.access.roles import Permission
from mentatlab.alerting.alert_rule import METRICS, OPS, PERIODS
from mentatlab.analytics.compare import COMPARE_FIELDS
from mentatlab.analytics.cost_views import MAX_LEVELS, parse_levels
from mentatlab.analytics.query import GROUP_BY_COLUMNS, NAME_ALIASES
from mentatlab.analytics.zone import UTC_NAME, zone_of
from mentatlab.errors import Forbidden, Unauthenticated, ValidationError
from mentatlab.server.auth import authorize
from mentatlab.server.routes.docs import STATIC_PATH
from mentatlab.server.security_headers import page_headers
from mentatlab.server.state import server_state

__all__ = ["CUSTOM_RANGE", "DEFAULT_RANGE", "DEFAULT_TZ", "FILTERS", "MODEL_SORTS", "MORE_FILTERS",
           "RANGES", "TZ_COOKIE", "VIEWS", "View", "ViewState", "page_state", "preset_start",
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
    View("/ops", "Ops", True, "Live request rate, errors and latency percentiles."),
    View("/cost", "Cost", True, "Spend by any dimension, crossed, with CSV export."),
    View("/traces", "Traces", True, "Trace list and the waterfall of each trace."),
    View("/performance", "Performance", True,
         "Latency percentiles and histograms by group, and how each agent ranks among peers."),
    View("/bottlenecks", "Bottlenecks", True,
         "What holds the critical paths up: span names, tools, models, agents."),
    View("/reliability", "Reliability", True,
         "Success, failures by category, retries, fallbacks, loops and agent cycles."),
    View("/graph", "Graph", True, "Agents and tools and the calls between them: graph, Sankey."),
    View("/product", "Product", True, "Adoption by workflow, cost per successful outcome, "
         "version comparison and regressions."),
    View("/savings", "Savings", True, "Where money can be saved, with the evidence."),
    View("/alerts", "Alerts", True, "Alert rules and budgets, their state and history."),
    View("/governance", "Governance", True, "Policy decisions, PII findings, security "
         "signals, retention, erasures and the audit timeline."),
    View("/models", "Models", True, "Models seen, their price sources and unpriced ones."),
    View("/settings", "Settings", True, "API keys, members, roles, quotas and the audit log."),
)
"""The navigation, in order (the matrix in access/routes.py names each path)."""

RANGES: Final = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1),
                 "24h": timedelta(hours=24), "7d": timedelta(days=7),
                 "30d": timedelta(days=30)}
"""Time-range picker choices (``?range=``) → the window ending now (its start rounded down:
:func:`preset_start`)."""
CUSTOM_RANGE: Final = "custom"
"""``?range=custom&from=...&to=...``: local times (``datetime-local``) in the display zone."""
DEFAULT_RANGE: Final = "24h"
"""The range of a URL without (or with an unknown) ``range``."""
_BUCKETS: Final = {"15m": "minute", "1h": "minute", "24h": "hour", "7d": "day", "30d": "day"}
"""Trend bucket per range: about 15 to 60 bars whatever the range."""
_CUSTOM_BUCKETS: Final = ((timedelta(hours=2), "minute"), (timedelta(days=4), "hour"))
"""Bucket of a custom range by its length: up to 2 h by minute, up to 4 days by hour, else
by day (at most 120 minute or 96 hour bars)."""

FILTERS: Final = {"org": "org_id", "project": "project_id", "agent": "agent_id",
                  "workflow": "workflow_id", "model": "model", "provider": "provider",
                  "status": "status"}
"""Filter-bar fields: URL parameter → canonical field of the API's ``filter``."""
MORE_FILTERS: Final = (*(c for c in GROUP_BY_COLUMNS if c not in FILTERS.values()), "name")
"""Dimensions the bar has no field for (``customer_id``, ``tool_name`` …): read from the URL
under their canonical name (a cost cell's link to its traces carries them) and shown as
removable chips; ``name`` (span name) comes from the bottlenecks view's links."""
STATUSES: Final = ("ok", "error", "timeout")
"""The choices of the status filter."""
_VALUE = re.compile(r"^[A-Za-z0-9._:/@ +-]{1,128}$")
"""A filter value the API's ``key=value,...`` expression can carry unchanged."""
DEFAULT_TZ: Final = UTC_NAME
"""The display time zone of a URL without (or with an unknown) ``tz``."""
_LOCAL_FORMAT: Final = "%Y-%m-%dT%H:%M"
"""``from``/``to`` as a ``datetime-local`` input gives them (seconds accepted too)."""


@dataclass(frozen=True, slots=True)
class ViewState:
    """What the URL says about the view: range, filters and display time zone.

    Unknown values are dropped (a shared link with a stale parameter still opens).
    """

    range: str
    """Key of :data:`RANGES`, or :data:`CUSTOM_RANGE`."""
    filters: dict[str, str]
    """URL parameter (a key of :data:`FILTERS` or a :data:`MORE_FILTERS` name) → value."""
    start: datetime
    """Window start, UTC."""
    end: datetime
    """Window end (exclusive), UTC: the time the page was rendered, or a custom ``to``."""
    tz: str = DEFAULT_TZ
    """Display time zone (IANA name): buckets, tables and chart axes, and the API's ``tz``."""

    @property
    def zone(self) -> ZoneInfo:
        """:attr:`tz` as a ZoneInfo."""
        return ZoneInfo(self.tz)

    @property
    def custom(self) -> bool:
        """Whether the window is a custom ``from``/``to`` one."""
        return self.range == CUSTOM_RANGE

    @property
    def local_start(self) -> str:
        """:attr:`start` on the display zone's wall clock, ``YYYY-MM-DDTHH:MM``."""
        return self.start.astimezone(self.zone).strftime(_LOCAL_FORMAT)

    @property
    def local_end(self) -> str:
        """:attr:`end` on the display zone's wall clock, ``YYYY-MM-DDTHH:MM``."""
        return self.end.astimezone(self.zone).strftime(_LOCAL_FORMAT)

    @property
    def label(self) -> str:
        """The window in words: ``last 24h`` or ``2026-12-01 00:00 – 2026-12-02 00:00``."""
        if not self.custom:
            return f"last {self.range}"
        return f"{self.local_start.replace('T', ' ')} – {self.local_end.replace('T', ' ')}"

    @property
    def api_filter(self) -> str:
        """The API's ``filter`` expression: ``project_id=acme,status=error``."""
        return ",".join(f"{FILTERS.get(k, k)}={v}" for k, v in self.filters.items())

    @property
    def bucket(self) -> str:
        """The trend's bucket for this range: ``minute``, ``hour`` or ``day``."""
        if not self.custom:
            return _BUCKETS[self.range]
        length = self.end - self.start
        return next((b for most, b in _CUSTOM_BUCKETS if length <= most), "day")

    def query(self, **changes: str | None) -> str:
        """This state as a query string (``?range=1h&model=x``), with ``changes`` applied.

        A change to None removes the parameter; ``tz`` is left out when UTC, and ``from``
        and ``to`` are kept only while the range is custom.
        """
        kept = self.params(**changes)
        return "?" + str(QueryParams(kept)) if kept else ""

    def params(self, **changes: str | None) -> dict[str, str]:
        """This state as URL parameters (name → value), as :meth:`query` writes them.

        Forms of the shell carry these as hidden inputs, so submitting one part keeps the
        rest of the view state.
        """
        values: dict[str, str | None] = {"range": self.range, **self.filters}
        if self.custom:
            values.update({"from": self.local_start, "to": self.local_end})
        values["tz"] = self.tz if self.tz != DEFAULT_TZ else None
        values.update(changes)
        if values.get("range") != CUSTOM_RANGE:
            values.pop("from", None)
            values.pop("to", None)
        return {k: v for k, v in values.items() if v}


def _local_time(text: str, zone: ZoneInfo) -> datetime | None:
    """A ``datetime-local`` value read on ``zone``'s wall clock, as UTC; None if unreadable."""
    try:
        local = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if local.tzinfo is not None or not 1900 < local.year < 2262:
        return None
    return local.replace(tzinfo=zone).astimezone(UTC)


TZ_COOKIE: Final = "mentat_tz"
"""Cookie holding the display zone chosen in the bar (shell.js sets it): a URL without
``tz`` opens in it, so the choice is remembered without a reload."""


def view_state(params: QueryParams, now: datetime | None = None,
               remembered_tz: str | None = None) -> ViewState:
    """Read the range, filters and display time zone from a page's query parameters.

    A value the picker or filter bar cannot have produced (an unknown range, status or
    time zone, a filter value with characters outside ``[A-Za-z0-9._:/@ +-]``, a custom
    range whose ``from`` is not before its ``to``) is dropped rather than refused: a
    shared link with a stale parameter still opens. A custom range's ``from`` and ``to``
    are local times in the display zone (``to`` defaults to now).

    Args:
        params: the request's query parameters.
        now: the window's end (default: now, UTC).
        remembered_tz: the zone to use when ``params`` has no ``tz`` (the
            :data:`TZ_COOKIE`); an unknown one is ignored.
    """
    end = now or datetime.now(UTC)
    tz_name = params.get("tz", "").strip() or (remembered_tz or "").strip()
    zone = zone_of(tz_name) if tz_name else None
    tz = tz_name if zone is not None else DEFAULT_TZ
    filters: dict[str, str] = {}
    for name in (*FILTERS, *MORE_FILTERS):
        value = params.get(name, "").strip()
        if _VALUE.match(value) and (name != "status" or value in STATUSES):
            filters[name] = value
    chosen = params.get("range", DEFAULT_RANGE)
    if chosen == CUSTOM_RANGE:
        local = zone or ZoneInfo(DEFAULT_TZ)
        start = _local_time(params.get("from", ""), local)
        stop = _local_time(params["to"], local) if params.get("to") else end
        if start is not None and stop is not None and start < stop:
            return ViewState(CUSTOM_RANGE, filters, start, stop, tz)
    range_key = chosen if chosen in RANGES else DEFAULT_RANGE
    return ViewState(range_key, filters, preset_start(end, range_key), end, tz)


def preset_start(end: datetime, range_key: str) -> datetime:
    """Start of a picker window ending at ``end``, rounded down.

    ``end - RANGES[range_key]`` goes down to the whole hour for windows of a day or more,
    to the whole minute for shorter ones. The aggregates answer whole hours and minutes; a
    start older than the minute tier that falls inside an hour is read from raw spans.
    Rounding it down made the 30-day overview and cost reads 3× faster at 10M spans
    (bench/RESULTS.md, "Dashboard load").
    """
    start = end - RANGES[range_key]
    if RANGES[range_key] >= timedelta(days=1):
        return start.replace(minute=0, second=0, microsecond=0)
    return start.replace(second=0, microsecond=0)


_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("mentatlab.ui", "templates"),
    autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)

router = APIRouter(include_in_schema=False)


def page_state(request: Request) -> ViewState:
    """The view state of a page request: its URL, with the remembered zone (cookie)."""
    return view_state(request.query_params, remembered_tz=request.cookies.get(TZ_COOKIE))


def _render(request: Request, template: str, status_code: int = 200,
            **context: Any) -> HTMLResponse:
    """A page from ``template`` with the shell's context and the strict page headers."""
    root = request.scope.get("root_path", "")
    state = page_state(request)
    page = _templates.get_template(template).render(
        root=root, static=root + STATIC_PATH, views=VIEWS, ranges=list(RANGES),
        filters=FILTERS, statuses=STATUSES, state=state, path=request.url.path,
        **context)
    return HTMLResponse(page, status_code=status_code, headers=page_headers())


def _oidc_name(request: Request) -> str:
    """The OIDC provider's name for the sign-in button; empty when OIDC is off."""
    settings = server_state(request).settings
    if not settings.oidc_issuer:
        return ""
    return settings.oidc_provider_name or urlsplit(settings.oidc_issuer).netloc


async def _checked(request: Request) -> HTMLResponse | Principal:
    """Authorize like an API route: the caller, or the sign-in (401) or not-allowed (403) page.

    Raises:
        RateLimited: (429, the JSON error) the caller is over its query rate.
    """
    try:
        return await authorize(request)
    except Unauthenticated:
        return _render(request, "signin.html", 401, title="Sign in",
                       oidc_name=_oidc_name(request))
    except Forbidden as exc:
        return _render(request, "forbidden.html", 403, title="Not allowed",
                       reason="; ".join(e.reason for e in exc.errors))


@router.get("/", response_class=HTMLResponse)
async def overview_page(request: Request) -> HTMLResponse:
    """The overview: headline numbers, spend today and this month, budgets and alerts.

    Also the spend trend and the top agents, workflows and traces of the range; "today"
    and "this month" are in the display zone. The top traces need ``read_spans`` (span
    payloads), budgets and alerts ``read_alerts``; without them the page says so rather
    than asking the API for what it would refuse.
    """
    caller = await _checked(request)
    if isinstance(caller, HTMLResponse):
        return caller
    base_url = str(request.base_url).rstrip("/")
    state = page_state(request)
    today = datetime.now(UTC).astimezone(state.zone).replace(hour=0, minute=0, second=0,
                                                             microsecond=0)
    return _render(request, "overview.html", title="Overview", base_url=base_url,
                   can_read_spans=caller.can(Permission.READ_SPANS),
                   can_read_alerts=caller.can(Permission.READ_ALERTS),
                   today_from=today.strftime(_LOCAL_FORMAT),
                   month_from=today.replace(day=1).strftime(_LOCAL_FORMAT))


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
                   can_read_usage=caller.can(Permission.READ_USAGE),
                   can_manage_alerts=caller.can(Permission.MANAGE_ALERTS),
                   metrics=METRICS, ops=list(OPS), periods=PERIODS)


_ORG = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
"""An org id as the admin API takes it (``?org=`` of the settings page)."""
_AUDIT_FAMILIES: Final = ("key.*", "member.*", "quota.*", "budget.*", "alert_rule.*", "org.*",
                          "login", "logout", "reprice", "export", "migration")
"""Actions and action families the settings page's audit timeline filters on (the
``action`` of ``GET /api/v1/audit``; docs/security.md lists them)."""


@router.get("/settings", response_class=HTMLResponse)
async def settings_page(request: Request) -> HTMLResponse:
    """Settings: who the caller is, API keys, members, quotas and the audit log.

    Each part shows only when the caller's role holds its permission (``manage_keys``,
    ``manage_members``, ``manage_settings``, ``read_audit``): a viewer or a read key sees
    who it is and no control it cannot use. An installation-wide caller picks the org
    the members and quotas parts act on with ``?org=``.
    """
    caller = await _checked(request)
    if isinstance(caller, HTMLResponse):
        return caller
    asked = request.query_params.get("org", "").strip()
    org = caller.org_id or (asked if _ORG.match(asked) else "")
    return _render(request, "settings.html", title="Settings", org=org,
                   installation=caller.org_id is None, families=_AUDIT_FAMILIES,
                   can_keys=caller.can(Permission.MANAGE_KEYS),
                   can_members=caller.can(Permission.MANAGE_MEMBERS),
                   can_quotas=caller.can(Permission.MANAGE_SETTINGS),
                   can_audit=caller.can(Permission.READ_AUDIT),
                   can_orgs=caller.can(Permission.MANAGE_ORGS))


OPS_INTERVALS: Final = (1, 5, 15, 60)
"""Choices of the ops view's live interval in seconds (``?every=``); the default is 5."""
OPS_FEED_ROWS: Final = 200
"""Spans the ops view's live feed keeps on screen (newest first)."""
OPS_INGEST_REFRESH_S: Final = 5
"""Seconds between two refreshes of the ops view's ingest health panel
(``/api/v1/system/ingest``, rates over twice this)."""


@router.get("/ops", response_class=HTMLResponse)
async def ops_page(request: Request) -> HTMLResponse:
    """Ops: live rates and latency, errors by type, firing alerts and the live span feed.

    The charts come from ``WS /api/v1/live/stats``, errors by type from
    ``/api/v1/cost?group_by=error_type``, the feed from ``WS /api/v1/live``, the ingest
    health panel from ``/api/v1/system/ingest`` (every :data:`OPS_INGEST_REFRESH_S`);
    ``?every=`` (a value of :data:`OPS_INTERVALS`) sets the live interval.
    """
    caller = await _checked(request)
    if isinstance(caller, HTMLResponse):
        return caller
    every = request.query_params.get("every", "")
    interval_s = int(every) if every in {str(s) for s in OPS_INTERVALS} else 5
    return _render(request, "ops.html", title="Ops", interval_s=interval_s,
                   intervals=OPS_INTERVALS, feed_rows=OPS_FEED_ROWS,
                   ingest_refresh_s=OPS_INGEST_REFRESH_S,
                   base_url=str(request.base_url).rstrip("/"),
                   can_read_usage=caller.can(Permission.READ_USAGE),
                   can_read_alerts=caller.can(Permission.READ_ALERTS))


_COST_TOPS: Final = (3, 5, 8, 10, 15, 20)
"""Choices of the cost explorer's "top N" (``?top=``); the default is 8."""


def _cost_view(params: QueryParams) -> tuple[str, str, int]:
    """The cost explorer's ``?by=``, ``?cross=`` and ``?top=`` (unknown values → defaults).

    ``by`` and ``cross`` are names of the cost API's ``group_by`` (default ``agent_id`` ×
    ``model``); a ``cross`` equal to ``by`` falls back to another default.
    """
    def name(key: str, default: str) -> str:
        value = NAME_ALIASES.get(params.get(key, ""), params.get(key, ""))
        return value if value in GROUP_BY_COLUMNS else default

    by = name("by", "agent_id")
    cross = name("cross", "model")
    if cross == by:
        cross = "agent_id" if by == "model" else "model"
    top = params.get("top", "")
    return by, cross, int(top) if top.isdigit() and int(top) in _COST_TOPS else 8


_DEFAULT_LEVELS: Final = ("org_id", "project_id", "agent_id", "model")


def _cost_levels(params: QueryParams) -> tuple[str, ...]:
    """The attribution tree's levels: ``?level=`` repeated (the picker) or ``?levels=``.

    Blank picks are skipped; absent or invalid levels give org → project → agent → model.
    """
    picked = [v for v in params.getlist("level") if v] or [params.get("levels", "")]
    try:
        return parse_levels(",".join(picked))
    except ValidationError:
        return _DEFAULT_LEVELS


@router.get("/cost", response_class=HTMLResponse)
async def cost_page(request: Request) -> HTMLResponse:
    """The cost explorer: spend by a dimension, two crossed, trend, sunburst, tokens, infra.

    ``?by=``, ``?cross=`` and ``?top=`` (see :func:`_cost_view`) choose the breakdown; the
    numbers come from ``/api/v1/cost`` (``top=N`` lumps the rest into "other").
    """
    caller = await _checked(request)
    if isinstance(caller, HTMLResponse):
        return caller
    by, cross, top = _cost_view(request.query_params)
    levels = _cost_levels(request.query_params)
    # a matrix cell links to /traces with the shell's filter parameter of each key, or
    # the canonical name where the filter bar has none (customer_id=..., user_id=...)
    params = {field: name for name, field in FILTERS.items()}
    return _render(request, "cost.html", title="Cost", by=by, cross=cross, top=top,
                   levels=levels, level_slots=range(MAX_LEVELS), tops=_COST_TOPS,
                   dimensions=list(GROUP_BY_COLUMNS),
                   trace_params={d: params.get(d, d) for d in GROUP_BY_COLUMNS},
                   base_url=str(request.base_url).rstrip("/"),
                   can_read_spans=caller.can(Permission.READ_SPANS))


_TRACE_SORTS: Final = {"start_time": "Newest", "cost": "Costliest", "duration": "Longest"}
"""Orders of the trace list (``?sort=``, the API's ``sort``): the first is the default."""
_TRACE_PAGE_SIZE: Final = 50
"""Traces per page of the trace list (``?offset=`` pages by it)."""
_TRACE_PARAMS: Final = ("q", "sort", "min_cost", "min_duration_ms", "offset", "limit")
_NAME_SEARCH = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")
_AMOUNT = re.compile(r"^\d{1,12}(\.\d{1,12})?$")


def _trace_list_params(params: QueryParams) -> dict[str, str]:
    """The trace list's own URL parameters, checked; a bad value is dropped.

    ``q``, ``sort``, ``min_cost``, ``min_duration_ms``, ``offset``, ``limit`` (up to 500).
    """
    out: dict[str, str] = {}
    search = params.get("q", "").strip()
    if _NAME_SEARCH.match(search):
        out["q"] = search
    if params.get("sort") in _TRACE_SORTS and params.get("sort") != "start_time":
        out["sort"] = params["sort"]
    for name in ("min_cost", "min_duration_ms"):
        if _AMOUNT.match(params.get(name, "").strip()):
            out[name] = params[name].strip()
    for name, most in (("offset", 1_000_000), ("limit", 500)):
        value = params.get(name, "")
        if value.isdigit() and 0 < int(value) <= most:
            out[name] = str(int(value))
    return out


@router.get("/traces", response_class=HTMLResponse)
async def traces_page(request: Request) -> HTMLResponse:
    """The trace list: ``/api/v1/traces`` with the shell's range and filters.

    Searched by root span name (``?q=``), ``min_cost`` (USD), ``min_duration_ms``, ordered
    by ``?sort=`` (:data:`_TRACE_SORTS`) and paged by ``?offset=`` (``?limit=``, default
    :data:`_TRACE_PAGE_SIZE`, traces a page).
    """
    caller = await _checked(request)
    if isinstance(caller, HTMLResponse):
        return caller
    own = _trace_list_params(request.query_params)
    # the shell's parameters (range, filters, zone...) as they came, to keep them
    shell = [(k, v) for k, v in request.query_params.multi_items() if k not in _TRACE_PARAMS]

    def here(**changes: str | None) -> str:
        kept = {k: v for k, v in {**own, **changes}.items() if v}
        query = str(QueryParams(shell + list(kept.items())))
        return f"{request.scope.get('root_path', '')}/traces" + (f"?{query}" if query else "")

    offset = int(own.get("offset", "0"))
    page_size = int(own.get("limit", _TRACE_PAGE_SIZE))
    status = request.query_params.get("status", "")
    return _render(request, "traces.html", title="Traces", own=own, shell=shell, here=here,
                   sorts=_TRACE_SORTS, sort=own.get("sort", "start_time"), offset=offset,
                   page_size=page_size, status=status if status in STATUSES else "",
                   base_url=str(request.base_url).rstrip("/"),
                   link_query=str(QueryParams(shell + list(own.items()))),
                   span_filter=",".join(f"{FILTERS.get(k, k)}={v}" for k, v in
                                        view_state(request.query_params).filters.items()
                                        if k != "status"))


@router.get("/traces/{trace_id}", response_class=HTMLResponse)
async def trace_page(request: Request, trace_id: str) -> HTMLResponse:
    """One trace's waterfall (``/api/v1/traces/{trace_id}?view=timeline``) and span detail.

    The id is not checked here: the API's answer (400 malformed, 404 unknown) is the
    page's error state. The query string is the trace list's, kept for the way back.
    """
    caller = await _checked(request)
    if isinstance(caller, HTMLResponse):
        return caller
    query = str(request.query_params)
    return _render(request, "trace.html", title=f"Trace {trace_id[:32]}", trace_id=trace_id,
                   back=f"{request.scope.get('root_path', '')}/traces"
                        + (f"?{query}" if query else ""))


@router.get("/reliability", response_class=HTMLResponse)
async def reliability_page(request: Request) -> HTMLResponse:
    """Reliability: rates, the failure heatmap, the taxonomy and the loops and cycles.

    All from ``/api/v1/analytics/reliability``; the taxonomy links to the trace list
    filtered to a class or category, loops and cycles to their traces.
    """
    caller = await _checked(request)
    if isinstance(caller, HTMLResponse):
        return caller
    return _render(request, "reliability.html", title="Reliability")


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


@router.get("/savings", response_class=HTMLResponse)
async def savings_page(request: Request) -> HTMLResponse:
    """Savings: the recommendations of the range (``GET /api/v1/recommendations``) as cards.

    The estimated monthly total on top, then each recommendation with its saving, scope,
    evidence and sample traces (linked to their waterfall for roles with ``read_spans``).
    """
    caller = await _checked(request)
    if isinstance(caller, HTMLResponse):
        return caller
    return _render(request, "savings.html", title="Savings",
                   can_read_spans=caller.can(Permission.READ_SPANS))


PERFORMANCE_GROUPS: Final = ("operation", "agent", "tool", "provider", "model")
"""Groupings of the performance view (``?by=``, the latency API's ``group_by``); the first
is the default."""


@router.get("/performance", response_class=HTMLResponse)
async def performance_page(request: Request) -> HTMLResponse:
    """Performance: latency percentiles and a histogram per group, and agent peer ranks.

    ``?by=`` (a value of :data:`PERFORMANCE_GROUPS`) picks the latency grouping; the numbers
    come from ``/api/v1/analytics/latency`` and ``/api/v1/analytics/peers``.
    """
    caller = await _checked(request)
    if isinstance(caller, HTMLResponse):
        return caller
    by = request.query_params.get("by", "")
    return _render(request, "performance.html", title="Performance",
                   by=by if by in PERFORMANCE_GROUPS else PERFORMANCE_GROUPS[0],
                   groups=PERFORMANCE_GROUPS)


@router.get("/graph", response_class=HTMLResponse)
async def graph_page(request: Request) -> HTMLResponse:
    """Agent graph: agents and tools, and the calls between them (``/api/v1/analytics/graph``).

    A dependency graph, a Sankey of calls (without the links closing a cycle) and the
    tables of links and nodes; each opens the trace list filtered to its calls.
    """
    caller = await _checked(request)
    if isinstance(caller, HTMLResponse):
        return caller
    return _render(request, "graph.html", title="Graph")


_VERSION_VALUE = re.compile(r"^[^\x00-\x1f]{1,200}$")
"""A version (or model) the product view's comparison form hands to its script."""


@router.get("/product", response_class=HTMLResponse)
async def product_page(request: Request) -> HTMLResponse:
    """Product: adoption by workflow, cost per successful outcome, comparison, regressions.

    Numbers from ``/api/v1/analytics/adoption``, ``/analytics/compare`` and
    ``/analytics/regressions``; ``?field=&a=&b=`` (a field of ``COMPARE_FIELDS`` and two
    values) pick the comparison, which the script asks for only when both are given.
    """
    caller = await _checked(request)
    if isinstance(caller, HTMLResponse):
        return caller
    query = request.query_params
    field = query.get("field", "prompt_version")
    a, b = (query.get(k, "").strip() for k in ("a", "b"))
    return _render(request, "product.html", title="Product",
                   compare_fields=list(COMPARE_FIELDS),
                   field=field if field in COMPARE_FIELDS else "prompt_version",
                   a=a if _VERSION_VALUE.match(a) else "", b=b if _VERSION_VALUE.match(b) else "")


BOTTLENECK_GROUPS: Final = {"name": "Span name", "tool": "Tool", "model": "Model",
                            "agent": "Agent", "operation": "Operation"}
"""The bottlenecks view's ``?group_by=`` choices (the API's) and their labels."""
BOTTLENECK_TRACE_FILTERS: Final = {"name": "name", "tool": "tool_name", "model": "model",
                                   "agent": "agent", "operation": "operation"}
"""URL parameter of the traces view that filters on each group (a row's link)."""


@router.get("/bottlenecks", response_class=HTMLResponse)
async def bottlenecks_page(request: Request) -> HTMLResponse:
    """Bottlenecks: groups ranked by critical-path time of the settled traces of the range.

    Numbers from ``GET /api/v1/analytics/bottlenecks``; ``?group_by=`` (a key of
    :data:`BOTTLENECK_GROUPS`) picks the rows; each row links to the traces view filtered
    on its key, longest first.
    """
    caller = await _checked(request)
    if isinstance(caller, HTMLResponse):
        return caller
    group_by = request.query_params.get("group_by", "name")
    if group_by not in BOTTLENECK_GROUPS:
        group_by = "name"
    return _render(request, "bottlenecks.html", title="Bottlenecks", group_by=group_by,
                   groups=BOTTLENECK_GROUPS, trace_param=BOTTLENECK_TRACE_FILTERS[group_by],
                   quiet_s=server_state(request).settings.trace_quiet_s)


def chart_bucket(state: ViewState) -> str:
    """The bucket of a count chart over the view's window.

    Minutes up to 2 h, hours up to 2 days, days beyond: at most ~60 bars on a preset range.
    """
    span = state.end - state.start
    if span <= timedelta(hours=2):
        return "minute"
    return "hour" if span <= timedelta(days=2) else "day"


@router.get("/governance", response_class=HTMLResponse)
async def governance_page(request: Request) -> HTMLResponse:
    """Governance: policy decisions over time, PII findings, security signals, retention.

    Numbers from ``/api/v1/governance/decisions``, ``/governance/pii``,
    ``/governance/signals``, ``/governance/retention`` and ``/audit`` (the timeline, filtered
    by actor and action, and the erasure receipts); roles that read spans also get the form
    simulating a draft policy (``POST /api/v1/policies/simulate``).
    """
    caller = await _checked(request)
    if isinstance(caller, HTMLResponse):
        return caller
    state = page_state(request)
    return _render(request, "governance.html", title="Governance",
                   bucket=chart_bucket(state),
                   can_simulate=caller.can(Permission.READ_SPANS))
