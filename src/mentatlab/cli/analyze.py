"""``mentatctl analyze --range 24h --report performance|reliability|cost``: a findings report.

A report is a list of sections, kept as data in :data:`REPORTS`: each section names one
API route, the query parameters it adds to the window and filter, and a *renderer*, a
small function from that route's JSON answer to Rich renderables. Adding a finding is one
entry (the route and a renderer); a route the server does not have (404, an older
server or an analysis not built yet) prints "not available on this server" in place of
its section, and any other error answer prints the server's error there and makes the
command exit with code 1 after the whole report.

Renderers reuse the tables of the commands that print one answer in full (``mentatctl
analytics latency|peers|reliability``, ``cost tree|tokens``, ``recommendations``), keeping
only what a report needs: the worst rows first, at most :data:`MAX_ROWS`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from mentatlab.cli._client import ApiClient, console, parse_range, parse_time
from mentatlab.cli._format import format_count, format_money
from mentatlab.cli.analytics import latency_table, peers_table
from mentatlab.cli.bottlenecks import bottlenecks_table
from mentatlab.cli.cost_views import attribution_tree, tokens_renderable
from mentatlab.cli.recommendations import render_recommendations
from mentatlab.cli.reliability import reliability_renderable

__all__ = ["REPORTS", "Report", "Section", "analyze", "render_bottlenecks"]

Renderer = Callable[[Mapping[str, Any]], RenderableType]
"""One API answer (decoded JSON) to what the report prints for it."""
MAX_ROWS = 10
"""Rows a list section prints at most."""


class Report(enum.StrEnum):
    """The reports ``mentatctl analyze`` prints."""

    performance = "performance"
    reliability = "reliability"
    cost = "cost"


@dataclass(frozen=True, slots=True)
class Section:
    """One section of a report: a route, its extra query parameters and a renderer."""

    title: str
    path: str
    """API route, e.g. ``/api/v1/overview`` (``start``, ``end`` and ``filter`` are added)."""
    render: Renderer
    params: Mapping[str, Any] = field(default_factory=dict)


def _kv_table(pairs: Sequence[tuple[str, str]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(justify="right")
    for name, value in pairs:
        table.add_row(name, value)
    return table


def _pct(value: Any) -> str:
    return f"{float(value) * 100:.1f}%" if value is not None else "—"


def _ms(value: Any) -> str:
    return f"{float(value):,.0f} ms" if value is not None else "—"


def _short_time(value: Any) -> str:
    return str(value or "")[:19].replace("T", " ")


def render_overview(body: Mapping[str, Any]) -> RenderableType:
    """``/overview``: spend, traces, spans, success rate, latency percentiles, tokens."""
    return _kv_table([
        ("Spend", format_money(body.get("spend"), body.get("currency", "USD"))),
        ("Traces", format_count(body.get("num_traces"))),
        ("Spans", format_count(body.get("num_spans"))),
        ("LLM requests", format_count(body.get("requests"))),
        ("Spans ok", _pct(body.get("success_rate"))),
        ("Error spans", format_count(body.get("error_spans"))),
        ("Span latency p50 / p95 / p99", " / ".join(
            _ms(body.get(f"latency_p{q}_ms")) for q in (50, 95, 99))),
        ("Tokens in / out", f"{format_count(body.get('input_tokens'))} / "
                            f"{format_count(body.get('output_tokens'))}"),
    ])


def _traces_table(rows: Sequence[Mapping[str, Any]], empty: str) -> RenderableType:
    if not rows:
        return Text(empty, style="dim")
    table = Table()
    for name, justify in (("trace", "left"), ("root", "left"), ("started (UTC)", "left"),
                          ("status", "left"), ("errors", "right"), ("duration", "right"),
                          ("cost", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in rows[:MAX_ROWS]:
        table.add_row(str(row.get("trace_id", "")), escape(str(row.get("root_name") or "")),
                      _short_time(row.get("start_time")), str(row.get("status", "")),
                      format_count(row.get("num_errors")), _ms(row.get("duration_ms")),
                      format_money(row.get("total_cost")))
    return table


def _traces(empty: str) -> Renderer:
    def render(body: Mapping[str, Any]) -> RenderableType:
        return _traces_table(body.get("traces") or [], empty)
    return render


def render_cost_top(body: Mapping[str, Any]) -> RenderableType:
    """``/cost?group_by=workflow_id&top=N``: the costliest workflows, the rest lumped."""
    rows = sorted(body.get("rows") or [], key=lambda r: -float(r.get("total_cost") or 0))
    if not rows:
        return Text("No spend in the range.", style="dim")
    currency = body.get("currency", "USD")
    table = Table()
    table.add_column("workflow")
    for name in ("requests", "spans", "error spans", "total cost"):
        table.add_column(name, justify="right")
    for row in rows:
        lumped = row.get("lumped")
        name = "(other)" if lumped else (row.get("workflow_id") or "(none)")
        table.add_row(escape(str(name)), format_count(row.get("requests")),
                      format_count(row.get("num_spans")), format_count(row.get("error_spans")),
                      format_money(row.get("total_cost"), currency))
    total = format_money(body.get("total_cost"), currency)
    return Group(table, Text(f"Total {total}"))


def render_outcomes(body: Mapping[str, Any]) -> RenderableType:
    """``/analytics/adoption``: runs, users, success rate and cost per success per workflow."""
    rows = body.get("workflows") or []
    if not rows:
        return Text("No workflow runs in the range.", style="dim")
    currency = body.get("currency", "USD")
    table = Table()
    table.add_column("workflow")
    for name in ("runs", "users", "success rate", "spend", "cost / success"):
        table.add_column(name, justify="right")
    for row in rows[:MAX_ROWS]:
        per = row.get("cost_per_success")
        table.add_row(escape(str(row.get("workflow_id") or "(none)")),
                      format_count(row.get("num_traces")), format_count(row.get("num_users")),
                      _pct(row.get("success_rate")), format_money(row.get("total_cost"), currency),
                      format_money(per, currency) if per is not None else "no success")
    return table


def render_unpriced(body: Mapping[str, Any]) -> RenderableType:
    """``/unpriced``: models seen without a price (their spend reads as zero)."""
    rows = body.get("rows") or []
    if not rows:
        return Text("Every model in the range was priced.", style="green")
    table = Table()
    for name in ("provider", "model", "spans", "first seen", "last seen"):
        table.add_column(name, justify="right" if name == "spans" else "left")
    for row in rows[:MAX_ROWS]:
        table.add_row(escape(str(row.get("provider", ""))), escape(str(row.get("model", ""))),
                      format_count(row.get("num_spans")), _short_time(row.get("first_seen")),
                      _short_time(row.get("last_seen")))
    return Group(Text("Their spans count as $0 until priced (mentatctl cost unpriced).",
                      style="yellow"), table)


def _metric_value(metric: str, value: Any) -> str:
    if value is None:
        return "—"
    if metric == "success_rate":
        return _pct(value)
    if metric == "latency_ms":
        return _ms(value)
    if metric == "cost_per_success":
        return format_money(value)
    return f"{float(value):,.1f}"


_METRIC_LABEL = {"success_rate": "success rate", "latency_ms": "latency p95",
                 "cost_per_success": "cost / success", "tokens_per_success": "tokens / success"}


def regressions_renderer(metrics: Sequence[str]) -> Renderer:
    """``/analytics/regressions``: the regressions on ``metrics``, and what was not tested."""
    def render(body: Mapping[str, Any]) -> RenderableType:
        versions = body.get("versions") or []
        found = [r for r in body.get("regressions") or [] if r.get("metric") in metrics]
        skipped = sum(1 for v in versions if v.get("skipped_reason"))
        untested = sum(1 for v in versions for c in v.get("checks") or []
                       if c.get("metric") in metrics and not c.get("computed"))
        summary = (f"{len(versions)} new version(s) in the range, {body.get('num_tests', 0)} "
                   f"test(s), Benjamini–Hochberg at α = {body.get('alpha')}; "
                   f"{skipped} version(s) without a baseline or not compared, "
                   f"{untested} check(s) not computed (too few traces or no variance).")
        if not found:
            return Group(Text("No significant regression.", style="green"),
                         Text(summary, style="dim"))
        table = Table()
        for name in ("agent / operation", "version (baseline)", "first seen", "metric",
                     "baseline → new", "p adj.", "effect", "n"):
            table.add_column(name)
        for r in found[:MAX_ROWS]:
            metric = str(r.get("metric"))
            table.add_row(
                escape(f"{r.get('agent_id') or '(none)'} / {r.get('operation')}"),
                escape(f"{r.get('field')} {r.get('version')} ({r.get('baseline')})"),
                _short_time(r.get("first_seen")), _METRIC_LABEL.get(metric, metric),
                f"{_metric_value(metric, r.get('baseline_value'))} → "
                f"{_metric_value(metric, r.get('version_value'))}",
                f"{float(r.get('p_adjusted') or 0):.2g}",
                f"{r.get('effect_size_name')} {float(r.get('effect_size') or 0):+.2f}",
                f"{r.get('n_baseline')} / {r.get('n_version')}")
        return Group(Text(f"{len(found)} regression(s):", style="bold red"), table,
                     Text(summary, style="dim"))
    return render


def render_latency(body: Mapping[str, Any]) -> RenderableType:
    """``/analytics/latency``: exact span-latency percentiles per group, slowest p95 first."""
    groups = sorted(body.get("groups") or [], key=lambda g: (-float(g.get("p95_ms") or 0),
                                                              str(g.get("key"))))
    if not groups:
        return Text("No span in the range.", style="dim")
    return latency_table({**body, "groups": groups[:MAX_ROWS]}, "")


def _worst_rank(agent: Mapping[str, Any]) -> float:
    ranks = [m.get("percentile_rank") for m in (agent.get(k) or {} for k in
                                                ("cost_per_success", "latency_p50_ms",
                                                 "tokens_per_success"))]
    return max((float(r) for r in ranks if r is not None), default=0.0)


def render_peers(body: Mapping[str, Any]) -> RenderableType:
    """``/analytics/peers``: agents whose worst percentile rank is highest first (worst)."""
    agents = sorted(body.get("agents") or [], key=lambda a: (-_worst_rank(a),
                                                              str(a.get("agent_id"))))
    if not agents:
        return Text("No agent run in the range.", style="dim")
    return peers_table({**body, "agents": agents[:MAX_ROWS]}, "")


def render_reliability(body: Mapping[str, Any]) -> RenderableType:
    """``/analytics/reliability``: success, errors, retries, fallbacks, loops, cycles.

    The tables of ``mentatctl analytics reliability``: end-to-end and span success, errors
    by class and category, the steps failing most, loops, cycles and deadlock suspects.
    """
    return reliability_renderable(dict(body), "")


def render_graph(body: Mapping[str, Any]) -> RenderableType:
    """``/analytics/graph``: the busiest caller → called links, then the failing ones.

    Busiest in the server's order (most calls first); failing ones by error rate, highest
    first, leaving out links without an error. ``(cycle)`` marks a back edge.
    """
    links = body.get("links") or []
    if not links:
        return Text("No call between agents and tools in the range.", style="dim")
    failing = sorted((x for x in links if x.get("errors")),
                     key=lambda x: (-float(x.get("error_rate") or 0), -int(x.get("count") or 0)))
    parts: list[RenderableType] = []
    for title, rows in (("Busiest calls", links), ("Failing calls", failing)):
        if not rows:
            parts.append(Text(f"{title}: none.", style="green"))
            continue
        table = Table(title=title, title_justify="left")
        table.add_column("caller → called")
        for name in ("calls", "errors", "error rate", "p50", "p95"):
            table.add_column(name, justify="right", no_wrap=True)
        for x in rows[:MAX_ROWS]:
            table.add_row(escape(f"{x.get('source')} → {x.get('target')}")
                          + (" (cycle)" if x.get("back_edge") else ""),
                          format_count(x.get("count")), format_count(x.get("errors")),
                          _pct(x.get("error_rate")), _ms(x.get("p50_ms")), _ms(x.get("p95_ms")))
        parts.append(table)
    return Group(Text(f"{format_count(body.get('num_nodes'))} agents and tools, "
                      f"{format_count(body.get('num_links'))} caller → called links.",
                      style="dim"), *parts)


def render_bottlenecks(body: Mapping[str, Any]) -> RenderableType:
    """``/analytics/bottlenecks``: what holds most of the settled traces' critical path.

    The ``mentatctl analytics bottlenecks`` table (largest first: critical-path time, share
    of all of it, per hour, on path, trend against the previous period of equal length,
    severity; docs/api.md, "Bottlenecks"), its first rows.
    """
    rows = body.get("rows") or []
    if not rows:
        return Text("No settled trace in the range.", style="dim")
    return Group(bottlenecks_table({**body, "rows": rows[:MAX_ROWS]}, title=""), Text(
        f"{format_count(body.get('num_traces'))} settled trace(s), "
        f"{format_count(round(float(body.get('total_critical_path_ms') or 0)))} ms of critical"
        " path in all.", style="dim"))


def render_attribution(body: Mapping[str, Any]) -> RenderableType:
    """``/analytics/attribution``: the spend tree, the 3 costliest branches of each node."""
    return attribution_tree(body, "All spend: ", width=3)


def render_unit_economics(body: Mapping[str, Any]) -> RenderableType:
    """``/analytics/unit-economics``: what one trace, success, user and session cost."""
    currency = body.get("currency", "USD")

    def money(name: str) -> str:
        value = body.get(name)
        return format_money(value, currency) if value is not None else "—"
    return _kv_table([
        ("Spend", money("total_cost")),
        ("Traces (successful)", f"{format_count(body.get('num_traces'))} "
                                f"({format_count(body.get('num_successful_traces'))})"),
        ("Cost per trace", money("cost_per_trace")),
        ("Cost per successful trace", money("cost_per_successful_trace")),
        ("Users / cost per user", f"{format_count(body.get('num_users'))} / "
                                  f"{money('cost_per_user')}"),
        ("Sessions / cost per session", f"{format_count(body.get('num_sessions'))} / "
                                        f"{money('cost_per_session')}"),
    ])


def render_tokens(body: Mapping[str, Any]) -> RenderableType:
    """``/analytics/tokens``: the token waterfall (tokens and cost per kind), cache savings."""
    return tokens_renderable(body, "")


def render_provider_models(body: Mapping[str, Any]) -> RenderableType:
    """``/analytics/provider-models``: LLM calls per provider and model, costliest first."""
    rows = body.get("rows") or []
    if not rows:
        return Text("No LLM call in the range.", style="dim")
    currency = body.get("currency", "USD")
    table = Table()
    table.add_column("provider / model")
    for name in ("calls", "errors", "error rate", "p50", "p95", "cost"):
        table.add_column(name, justify="right", no_wrap=True)
    for row in rows[:MAX_ROWS]:
        table.add_row(escape(f"{row.get('provider')} / {row.get('model')}"),
                      format_count(row.get("requests")), format_count(row.get("error_requests")),
                      _pct(row.get("error_rate")), _ms(row.get("latency_p50_ms")),
                      _ms(row.get("latency_p95_ms")), format_money(row.get("total_cost"), currency))
    return table


def render_recs(body: Mapping[str, Any]) -> RenderableType:
    """``/recommendations``: the total monthly saving, then each one with its evidence."""
    return render_recommendations({**body, "recommendations":
                                   list(body.get("recommendations") or [])[:MAX_ROWS]})


_OVERVIEW = Section("Overview", "/api/v1/overview", render_overview)


REPORTS: Mapping[Report, Sequence[Section]] = {
    Report.performance: (
        _OVERVIEW,
        Section("Slowest traces", "/api/v1/traces", _traces("No trace in the range."),
                {"sort": "duration", "limit": MAX_ROWS}),
        Section("Latency regressions", "/api/v1/analytics/regressions",
                regressions_renderer(["latency_ms"])),
        Section("Bottlenecks", "/api/v1/analytics/bottlenecks", render_bottlenecks,
                {"limit": MAX_ROWS}),
        Section("Latency by operation", "/api/v1/analytics/latency", render_latency,
                {"group_by": "operation"}),
        Section("Peers", "/api/v1/analytics/peers", render_peers),
    ),
    Report.reliability: (
        _OVERVIEW,
        Section("Traces with errors", "/api/v1/traces", _traces("No failed trace."),
                {"status": "error", "limit": MAX_ROWS}),
        Section("Traces that timed out", "/api/v1/traces", _traces("No timed-out trace."),
                {"status": "timeout", "limit": MAX_ROWS}),
        Section("Success-rate regressions", "/api/v1/analytics/regressions",
                regressions_renderer(["success_rate"])),
        Section("Reliability", "/api/v1/analytics/reliability", render_reliability),
        Section("Calls between agents and tools", "/api/v1/analytics/graph", render_graph),
    ),
    Report.cost: (
        _OVERVIEW,
        Section("Costliest workflows", "/api/v1/cost", render_cost_top,
                {"group_by": "workflow_id", "top": MAX_ROWS}),
        Section("Costliest traces", "/api/v1/traces", _traces("No trace in the range."),
                {"sort": "cost", "limit": MAX_ROWS}),
        Section("Cost per successful outcome", "/api/v1/analytics/adoption", render_outcomes,
                {"limit": MAX_ROWS}),
        Section("Unpriced models", "/api/v1/unpriced", render_unpriced),
        Section("Cost and token regressions", "/api/v1/analytics/regressions",
                regressions_renderer(["cost_per_success", "tokens_per_success"])),
        Section("Attribution", "/api/v1/analytics/attribution", render_attribution,
                {"levels": "project_id,agent_id,model"}),
        Section("Unit economics", "/api/v1/analytics/unit-economics", render_unit_economics),
        Section("Token waterfall", "/api/v1/analytics/tokens", render_tokens),
        Section("Provider × model", "/api/v1/analytics/provider-models",
                render_provider_models, {"limit": MAX_ROWS}),
        Section("Recommendations", "/api/v1/recommendations", render_recs),
    ),
}
"""Each report's sections, in print order."""


def _section_body(client: ApiClient, section: Section, window: Mapping[str, Any]
                  ) -> tuple[RenderableType, bool]:
    """The section's renderable and whether it failed (an error answer other than 404)."""
    status, body = client.get_answer(section.path, **window, **section.params)
    if status == 404:
        return Text("Not available on this server.", style="dim italic"), False
    if status >= 400 or not isinstance(body, dict):
        error = body.get("error") if isinstance(body, dict) else None
        reasons = "; ".join(f"{e.get('field')}: {e.get('reason')}" for e in (
            body.get("errors") or [] if isinstance(body, dict) else []))
        return Text(f"HTTP {status}: {error or 'unreadable answer'}"
                    + (f" ({reasons})" if reasons else ""), style="red"), True
    return section.render(body), False


def analyze(
    report: Annotated[Report, typer.Option(help="performance, reliability or cost.")],
    range_: Annotated[str, typer.Option("--range", help="How far back: 24h, 7d, 30m.")] =
        "24h",
    start: Annotated[str | None, typer.Option(help="Start (ISO-8601); overrides --range.")] =
        None,
    end: Annotated[str | None, typer.Option(help="End (ISO-8601); default now.")] = None,
    filter_: Annotated[str | None, typer.Option("--filter", help="e.g. project=acme")] = None,
    url: Annotated[str | None, typer.Option(help="Server URL (MENTATLAB_URL).")] = None,
    api_key: Annotated[str | None, typer.Option(help="API key (MENTATLAB_API_KEY).")] = None,
) -> None:
    """Print a report of findings over the range: performance, reliability or cost.

    Each section is one API answer; a section the server does not offer says so. Exits
    with code 1 when a section's request failed (after printing the whole report).
    """
    until = parse_time(end) if end else datetime.now(UTC)
    since = parse_time(start) if start else until - parse_range(range_)
    window = {"start": since.isoformat(), "end": until.isoformat(), "filter": filter_}
    failed = False
    console.print(Text(f"{report.value.title()} report: {since:%Y-%m-%d %H:%M} → "
                       f"{until:%Y-%m-%d %H:%M} UTC" + (f", {filter_}" if filter_ else ""),
                       style="bold"))
    with ApiClient(url, api_key) as client:
        for section in REPORTS[report]:
            body, bad = _section_body(client, section, window)
            failed = failed or bad
            console.print(Panel(body, title=section.title, title_align="left", expand=True))
    if failed:
        raise typer.Exit(1)
