"""``mentatctl analyze`` against a real server (uvicorn thread), answers worked out by hand.

Seeded over OTLP/HTTP: agent ``triage`` of workflow ``support`` answers 6 chats with
prompt v1 an hour ago (100, 110, ..., 150 ms) and 6 with prompt v2 half an hour ago (400,
..., 450 ms), each gpt-4o with 100 input and 50 output tokens ($0.00025 + $0.0005 =
$0.00075 a chat, $0.009 in all, printed at cents: $0.01). Workflow ``billing`` runs one
failing 2 s call of the unpriced ``house-model-9``.

Regressions over the last 24 h: v2 (baseline v1) is slower on every trace: Mann-Whitney
U_a = 0, exact p = 2 / C(12, 6) = 2/924; cost and tokens are all equal (p = 1); every
triage trace succeeds (no success-rate test). Three tests, Benjamini–Hochberg: the latency
p-value times 3/1 = 6/924 ≈ 0.0065. Latency p95 (linear): 140 + 0.75·10 = 147.5 → "148 ms",
and 447.5 → "448 ms" (half to even).

Agent ``planner`` (workflow none) runs once, 25 min ago: its 600 ms span calls tool
``search`` 3 times with the same arguments (50, 60, 70 ms), the last call failing: a loop,
and the only caller → called link. 14 traces, 17 spans, 2 failed.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from test_cost_report import _serve
from typer.testing import CliRunner

from mentatlab.cli._client import console
from mentatlab.cli.analyze import REPORTS, Report, Section, render_bottlenecks
from mentatlab.cli.main import app

runner = CliRunner()
MINUTE_NS = 60 * 10**9


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fixed width, so the layout does not depend on the terminal running the tests."""
    monkeypatch.setattr(console, "width", 200)


def _kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _span(trace_id: bytes, name: str, start: int, ms: int, attrs: dict[str, Any],
          error: bool = False, parent: bytes = b"") -> Span:
    span = Span(trace_id=trace_id, span_id=os.urandom(8), parent_span_id=parent, name=name,
                kind=Span.SPAN_KIND_CLIENT, start_time_unix_nano=start,
                end_time_unix_nano=start + ms * 1_000_000,
                attributes=[_kv(k, v) for k, v in attrs.items()])
    if error:
        span.status.code = 2
    return span


def _export(url: str, spans: list[Span]) -> None:
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource={"attributes": [_kv("service.name", "svc"), _kv("mentat.project_id", "web")]},
        scope_spans=[ScopeSpans(spans=spans)])])
    response = httpx.post(f"{url}/v1/traces", content=request.SerializeToString(),
                          headers={"content-type": "application/x-protobuf"}, timeout=60)
    assert response.status_code == 200, response.text


def _send(url: str, name: str, ago_min: float, ms: int, attrs: dict[str, Any],
          error: bool = False) -> None:
    start = time.time_ns() - int(ago_min * MINUTE_NS)
    _export(url, [_span(os.urandom(16), name, start, ms, attrs, error)])


def _send_planner(url: str) -> None:
    """Agent ``planner`` (600 ms) calls tool ``search`` 3 times with the same arguments
    (50, 60, 70 ms), the last call failing."""
    trace_id, start = os.urandom(16), time.time_ns() - 25 * MINUTE_NS
    agent = _span(trace_id, "plan refund", start, 600, {
        "gen_ai.operation.name": "invoke_agent", "mentat.agent_id": "planner"})
    tools = [_span(trace_id, "search", start + (i + 1) * 100_000_000, ms, {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search",
        "gen_ai.tool.call.arguments": '{"q": "refund"}'}, error=i == 2, parent=agent.span_id)
        for i, ms in enumerate((50, 60, 70))]
    _export(url, [agent, *tools])


def _chat(model: str, input_tokens: int, output_tokens: int, **mentat: str) -> dict[str, Any]:
    return {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": model, "gen_ai.usage.input_tokens": input_tokens,
            "gen_ai.usage.output_tokens": output_tokens,
            **{f"mentat.{k}": v for k, v in mentat.items()}}


@pytest.fixture
def seeded(_isolated_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("MENTATLAB_TRACE_QUIET_S", "0.1")  # traces settle (bottlenecks)
    for url in _serve(_isolated_data_dir):
        for i in range(6):
            for version, ago, ms in (("v1", 60 - i, 100 + 10 * i), ("v2", 30 - i, 400 + 10 * i)):
                _send(url, f"answer {version}", ago, ms, _chat(
                    "gpt-4o", 100, 50, agent_id="triage", workflow_id="support",
                    prompt_version=version))
        _send(url, "broken run", 20, 2000, _chat("house-model-9", 10, 0, agent_id="updater",
                                                  workflow_id="billing"), error=True)
        _send_planner(url)
        _wait_settled(url, 14)
        yield url


def _wait_settled(url: str, traces: int) -> None:
    """Until the settle job has stored all ``traces`` (the bottlenecks' data)."""
    deadline = time.monotonic() + 60
    while True:
        answer = httpx.get(f"{url}/api/v1/analytics/bottlenecks", timeout=30, params={
            "start": (datetime.now(UTC) - timedelta(days=1)).isoformat()})
        assert answer.status_code == 200, answer.text
        if answer.json()["num_traces"] == traces:
            return
        assert time.monotonic() < deadline, answer.json()
        time.sleep(0.2)


def _invoke(*args: str) -> Any:
    return runner.invoke(app, ["analyze", *args])


def _cells(panel: str, first: str) -> list[str]:
    """The cells of the first row of ``panel`` whose first cell is ``first``.

    Table rows split at ``│``; rows of a name/value grid at runs of 2+ spaces.
    """
    for line in panel.splitlines():
        inner = line.strip("│┃ ")
        cells = ([c.strip() for c in inner.split("│")] if "│" in inner
                 else re.split(r"\s{2,}", inner))
        if cells and cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r} in\n{panel}")


def _panel(output: str, title: str) -> str:
    """The text of the panel titled ``title`` (up to the next panel's top border)."""
    start = output.index(f"╭─ {title} ")
    end = output.find("\n╭─", start + 1)  # a report panel starts a line; a nested one not
    return output[start:end if end != -1 else len(output)]


def test_performance_report(seeded: str) -> None:
    result = _invoke("--url", seeded, "--report", "performance", "--range", "24h")
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith("Performance report: ")
    overview = _panel(out, "Overview")
    assert _cells(overview, "Traces") == ["Traces", "14"]  # 12 chats, billing, planner
    slowest = _panel(out, "Slowest traces")
    assert slowest.index("broken run") < slowest.index("answer v2")  # 2 s first
    latency = _panel(out, "Latency regressions")
    assert "1 regression(s):" in latency
    row = next(line for line in latency.splitlines() if "triage / chat" in line)
    for cell in ("prompt_version v2 (v1)", "latency p95", "148 ms → 448 ms", "0.0065",
                 "rank-biserial -1.00", "6 / 6"):
        assert cell in row, (cell, row)
    assert "3 test(s)" in latency
    bottlenecks = _panel(out, "Bottlenecks")
    # by span name; one-span traces are their own critical path: answer v2 400..450 ms
    # (2,550), broken run 2,000; all 14 traces: 2,550 + 750 (v1) + 2,000 + 600 (planner)
    # = 5,900 ms → 43.2% and 33.9%, high (≥ 25%), nothing before the range: "new"
    assert _cells(bottlenecks, "answer v2")[:3] == ["answer v2", "2,550", "43.2%"]
    assert _cells(bottlenecks, "broken run")[:3] == ["broken run", "2,000", "33.9%"]
    assert "14 settled trace(s), 5,900 ms of critical path in all." in bottlenecks
    by_operation = _panel(out, "Latency by operation")
    # chat: 100..150, 400..450, 2000 (13); p95 h = 12 × 0.95 = 11.4 → 450 + 0.4 × 1550
    # = 1070, p99 450 + 0.88 × 1550 = 1814, p90 440 + 0.8 × 10 = 448, mean 5300 / 13
    assert _cells(by_operation, "chat") == ["chat", "13", "400", "448", "1,070", "1,814",
                                            "408", "2,000"]
    # tool: 50, 60, 70: p90 h = 1.8 → 68, p95 69, p99 69.8 → 70
    assert _cells(by_operation, "tool") == ["tool", "3", "60", "68", "69", "70", "60", "70"]
    # slowest p95 first (the server answers busiest first: chat, tool, agent)
    assert (by_operation.index("│ chat") < by_operation.index("│ agent")
            < by_operation.index("│ tool"))
    peers = _panel(out, "Peers")
    # chat agents' run medians: triage 275 (150 + 0.5 × 250), updater 2000; percentileofscore
    # kind=mean of 2: (0 + 1) / 4 = 25, (1 + 2) / 4 = 75. triage alone with a cost and a
    # token value: 50; planner alone of its type: 50
    assert _cells(peers, "triage") == ["triage", "chat", "12", "12", "$0.000750", "50.0",
                                       "275", "25.0", "150.0", "50.0"]
    assert _cells(peers, "updater")[:8] == ["updater", "chat", "1", "0", "", "", "2,000", "75.0"]
    # worst rank first: updater 75, then planner and triage at 50 (by name); the server
    # answers by type, then name: triage, updater, planner
    assert peers.index("│ updater") < peers.index("│ planner") < peers.index("│ triage")


def test_reliability_report(seeded: str) -> None:
    result = _invoke("--url", seeded, "--report", "reliability")
    assert result.exit_code == 0, result.output
    failed = _panel(result.output, "Traces with errors")
    assert "broken run" in failed and "answer" not in failed
    assert "No timed-out trace." in _panel(result.output, "Traces that timed out")
    # the only regression is on latency: none on the success rate
    assert "No significant regression." in _panel(result.output, "Success-rate regressions")
    reliability = _panel(result.output, "Reliability")
    # a trace's outcome is its root's: planner's root is ok, billing's failed → 13 of 14
    assert _cells(reliability, "Traces succeeded (end to end)")[1:] == ["92.9%", "13 of 14"]
    assert _cells(reliability, "Spans succeeded")[1:] == ["88.2%", "15 of 17"]
    assert _cells(reliability, "Loops (same tool and arguments ≥ 3x)")[1:] == [
        "7.1%", "1 traces"]  # 1 / 14
    # the failing tool call: 1 of 17 spans, half of the 2 failed
    assert _cells(reliability, "tooling")[1:] == ["tool_error", "1", "5.9%", "50.0%"]
    assert _cells(reliability, "tool")[1:] == ["search", "3", "1", "66.7%"]
    assert "Agent cycles: none" in reliability
    graph = _panel(result.output, "Calls between agents and tools")
    assert "2 agents and tools, 1 caller → called links." in graph
    link = ["agent:planner → tool:search", "3", "1", "33.3%", "60 ms", "69 ms"]
    busiest, failing = graph.split("Failing calls")
    assert _cells(busiest, link[0]) == link and _cells(failing, link[0]) == link


def test_cost_report(seeded: str) -> None:
    result = _invoke("--url", seeded, "--report", "cost")
    assert result.exit_code == 0, result.output
    workflows = _panel(result.output, "Costliest workflows")
    support = next(line for line in workflows.splitlines() if "support" in line)
    cells = [c for c in support.split() if c != "│"]
    assert cells == ["support", "12", "12", "0", "$0.01"]  # 12 × $0.00075 = $0.009
    billing = [c for c in next(line for line in workflows.splitlines() if "billing" in line
                               ).split() if c != "│"]
    assert billing == ["billing", "1", "1", "1", "$0.00"]  # unpriced: counts as $0
    assert "Total $0.01" in workflows
    assert workflows.index("support") < workflows.index("billing")
    outcomes = _panel(result.output, "Cost per successful outcome")
    cells = [c for c in next(line for line in outcomes.splitlines() if "support" in line
                             ).split() if c != "│"]
    assert cells == ["support", "12", "0", "100.0%", "$0.01", "$0.000750"]  # 0.009 / 12
    assert "no success" in outcomes  # billing: its one run failed
    assert "house-model-9" in _panel(result.output, "Unpriced models")
    assert "No significant regression." in _panel(result.output, "Cost and token regressions")
    tree = _panel(result.output, "Attribution")  # project → agent → model
    assert "All spend: $0.01" in tree
    assert "triage $0.01 (100.0%) · requests 12" in tree
    assert "gpt-4o $0.01 (100.0%) · requests 12" in tree
    assert tree.index("triage") < tree.index("updater $0.00 (0.0%) · requests 1")
    unit = _panel(result.output, "Unit economics")
    # billing and planner each have a failed span: 12 successful traces
    assert _cells(unit, "Traces (successful)") == ["Traces (successful)", "14 (12)"]
    assert _cells(unit, "Cost per trace")[1] == "$0.000643"  # 0.009 / 14
    assert _cells(unit, "Cost per successful trace")[1] == "$0.000750"  # 0.009 / 12
    tokens = _panel(result.output, "Token waterfall")
    # 12 × 100 + 10 input tokens at $2.50/M (house-model-9 unpriced) = $0.003 of $0.009
    assert _cells(tokens, "input (uncached)") == ["input (uncached)", "1,210", "$0.00300",
                                                  "33.3%"]
    assert _cells(tokens, "output") == ["output", "600", "$0.01", "66.7%"]  # 12 × 50 at $10/M
    assert _cells(tokens, "request fees")[1] == "13"
    assert "Cache savings: $0.00 (0 cache-read tokens" in tokens
    models = _panel(result.output, "Provider × model")
    assert _cells(models, "openai / gpt-4o")[:5] == ["openai / gpt-4o", "12", "0", "0.0%",
                                                     "275 ms"]
    assert _cells(models, "openai / house-model-9") == [
        "openai / house-model-9", "1", "1", "100.0%", "2,000 ms", "2,000 ms", "$0.00"]
    assert models.index("gpt-4o") < models.index("house-model-9")  # costliest first
    recommendations = _panel(result.output, "Recommendations")
    assert "$0.00 / month from 0 recommendations" in recommendations
    assert "Nothing to recommend in this range." in recommendations


@pytest.fixture
def retrying(_isolated_data_dir: Path) -> Iterator[str]:
    """Agent ``fetcher`` retries 10 gpt-4o chats ($0.00075 each), 6 of them failing."""
    for url in _serve(_isolated_data_dir):
        for i in range(10):
            _send(url, "fetch", 10 + i, 100, {**_chat("gpt-4o", 100, 50, agent_id="fetcher"),
                                              "mentat.is_retry": True}, error=i < 6)
        yield url


def test_cost_report_recommendation(retrying: str) -> None:
    # whole minutes (the server widens a range to them), so the window is exactly 1 day
    end = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    result = _invoke("--url", retrying, "--report", "cost", "--start",
                     (end - timedelta(days=1)).isoformat(), "--end", end.isoformat())
    assert result.exit_code == 0, result.output
    recommendations = _panel(result.output, "Recommendations")
    # failing_retries: 6 of 10 failed (> half, ≥ 10 retries); saving = their cost
    # 6 × $0.00075 = $0.0045 in a 1-day window, × 30 = $0.135 a month → $0.14 (half even)
    assert "$0.14 / month from 1 recommendation " in recommendations
    assert "6 of 10 retries failed" in recommendations
    assert "($0.00450 in the range)" in recommendations
    assert "agent_id=fetcher" in recommendations


@pytest.mark.parametrize("report", [r.value for r in Report])
def test_bad_filter_prints_each_section_error_and_exits_1(seeded: str, report: str) -> None:
    result = _invoke("--url", seeded, "--report", report, "--filter", "nope=1")
    assert result.exit_code == 1
    for section in REPORTS[Report(report)]:
        panel = _panel(result.output, section.title)
        assert "HTTP 400" in panel and "filter.nope" in panel, (section.title, panel)


def test_a_route_the_server_lacks_is_said_and_the_report_goes_on(
        seeded: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A newer client against an older server: a 404 section, then the next sections."""
    sections = list(REPORTS[Report.performance])
    sections.insert(1, Section("Not yet here", "/api/v1/analytics/not-yet-here",
                               render_bottlenecks))
    monkeypatch.setitem(REPORTS, Report.performance, sections)  # type: ignore[index]
    result = _invoke("--url", seeded, "--report", "performance", "--range", "24h")
    assert result.exit_code == 0, result.output
    assert "Not available on this server." in _panel(result.output, "Not yet here")
    assert _cells(_panel(result.output, "Overview"), "Traces") == ["Traces", "14"]


def test_bad_range_is_a_usage_error(seeded: str) -> None:
    bad_range = _invoke("--url", seeded, "--report", "cost", "--range", "yesterday")
    assert bad_range.exit_code == 2 and "Expected a range" in bad_range.output


