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
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
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
from mentatlab.cli.main import app

runner = CliRunner()
MINUTE_NS = 60 * 10**9


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fixed width, so the layout does not depend on the terminal running the tests."""
    monkeypatch.setattr(console, "width", 200)


def _kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _send(url: str, name: str, ago_min: float, ms: int, attrs: dict[str, Any],
          error: bool = False) -> None:
    start = time.time_ns() - int(ago_min * MINUTE_NS)
    span = Span(trace_id=os.urandom(16), span_id=os.urandom(8), name=name,
                kind=Span.SPAN_KIND_CLIENT, start_time_unix_nano=start,
                end_time_unix_nano=start + ms * 1_000_000,
                attributes=[_kv(k, v) for k, v in attrs.items()])
    if error:
        span.status.code = 2
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource={"attributes": [_kv("service.name", "svc"), _kv("mentat.project_id", "web")]},
        scope_spans=[ScopeSpans(spans=[span])])])
    response = httpx.post(f"{url}/v1/traces", content=request.SerializeToString(),
                          headers={"content-type": "application/x-protobuf"}, timeout=60)
    assert response.status_code == 200, response.text


def _chat(model: str, input_tokens: int, output_tokens: int, **mentat: str) -> dict[str, Any]:
    return {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": model, "gen_ai.usage.input_tokens": input_tokens,
            "gen_ai.usage.output_tokens": output_tokens,
            **{f"mentat.{k}": v for k, v in mentat.items()}}


@pytest.fixture
def seeded(_isolated_data_dir: Path) -> Iterator[str]:
    for url in _serve(_isolated_data_dir):
        for i in range(6):
            for version, ago, ms in (("v1", 60 - i, 100 + 10 * i), ("v2", 30 - i, 400 + 10 * i)):
                _send(url, f"answer {version}", ago, ms, _chat(
                    "gpt-4o", 100, 50, agent_id="triage", workflow_id="support",
                    prompt_version=version))
        _send(url, "broken run", 20, 2000, _chat("house-model-9", 10, 0, agent_id="clerk",
                                                  workflow_id="billing"), error=True)
        yield url


def _invoke(*args: str) -> Any:
    return runner.invoke(app, ["analyze", *args])


def _panel(output: str, title: str) -> str:
    """The text of the panel titled ``title`` (up to the next panel's top border)."""
    start = output.index(f"╭─ {title} ")
    end = output.find("╭─", start + 1)
    return output[start:end if end != -1 else len(output)]


def test_performance_report(seeded: str) -> None:
    result = _invoke("--url", seeded, "--report", "performance", "--range", "24h")
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith("Performance report: ")
    overview = _panel(out, "Overview")
    assert "Traces" in overview and " 13 " in overview  # 12 chats + the failing call
    slowest = _panel(out, "Slowest traces")
    assert slowest.index("broken run") < slowest.index("answer v2")  # 2 s first
    latency = _panel(out, "Latency regressions")
    assert "1 regression(s):" in latency
    row = next(line for line in latency.splitlines() if "triage / chat" in line)
    for cell in ("prompt_version v2 (v1)", "latency p95", "148 ms → 448 ms", "0.0065",
                 "rank-biserial -1.00", "6 / 6"):
        assert cell in row, (cell, row)
    assert "3 test(s)" in latency
    for later in ("Bottlenecks", "Latency by operation", "Peers"):
        assert "Not available on this server." in _panel(out, later)


def test_reliability_report(seeded: str) -> None:
    result = _invoke("--url", seeded, "--report", "reliability")
    assert result.exit_code == 0, result.output
    failed = _panel(result.output, "Traces with errors")
    assert "broken run" in failed and "answer" not in failed
    assert "No timed-out trace." in _panel(result.output, "Traces that timed out")
    # the only regression is on latency: none on the success rate
    assert "No significant regression." in _panel(result.output, "Success-rate regressions")
    assert "Not available on this server." in _panel(result.output, "Reliability")


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
    assert "Not available on this server." in _panel(result.output, "Recommendations")


def test_bad_filter_prints_each_section_error_and_exits_1(seeded: str) -> None:
    result = _invoke("--url", seeded, "--report", "cost", "--filter", "nope=1")
    assert result.exit_code == 1
    assert "HTTP 400" in _panel(result.output, "Overview")
    assert "filter.nope" in _panel(result.output, "Unpriced models")
    bad_range = _invoke("--url", seeded, "--report", "cost", "--range", "yesterday")
    assert bad_range.exit_code == 2 and "Expected a range" in bad_range.output
