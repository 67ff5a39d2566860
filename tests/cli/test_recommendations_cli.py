"""``mentatctl recommendations`` against a real server (uvicorn thread).

The server gets 12 gpt-4o retries of 1,000 + 100 tokens of which 10 fail: each costs
1000 × $2.50/M + 100 × $10/M = $0.0035, the failed ones $0.035 in the range. Asked for
the last 2 days (``--start``/``--end``: a 2-day range), a month is 15 ranges: $0.525.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from test_cost_report import _kv, _serve, invoke

from mentatlab.cli._client import console


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "width", 160)


@pytest.fixture
def server_url(_isolated_data_dir: Path) -> Iterator[str]:
    yield from _serve(_isolated_data_dir)


def _send_retries(url: str, n: int, n_failed: int) -> None:
    now = time.time_ns()
    spans = [Span(trace_id=os.urandom(16), span_id=os.urandom(8), name="chat gpt-4o",
                  start_time_unix_nano=now - 10**9, end_time_unix_nano=now,
                  status=Status(code=2 if i < n_failed else 0),
                  attributes=[_kv("gen_ai.provider.name", "openai"),
                              _kv("gen_ai.request.model", "gpt-4o"),
                              _kv("gen_ai.usage.input_tokens", 1000),
                              _kv("gen_ai.usage.output_tokens", 100),
                              _kv("mentat.attempt", 2), _kv("mentat.agent_id", "fetcher")])
             for i in range(n)]
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource={"attributes": [_kv("mentat.project_id", "web")]},
        scope_spans=[ScopeSpans(spans=spans)])])
    response = httpx.post(f"{url}/v1/traces", content=request.SerializeToString(),
                          headers={"content-type": "application/x-protobuf"}, timeout=60)
    assert response.status_code == 200, response.text


def _window() -> list[str]:
    start = (datetime.now(UTC) - timedelta(days=1)).replace(second=0, microsecond=0)
    return ["--start", start.isoformat(), "--end", (start + timedelta(days=2)).isoformat()]


def test_cards_show_the_total_the_saving_and_the_evidence(server_url: str) -> None:
    empty = invoke("recommendations", "--url", server_url, "--range", "30d")
    assert empty.exit_code == 0, empty.output
    assert "Nothing to recommend" in empty.output and "$0.00 / month" in empty.output

    _send_retries(server_url, 12, 10)  # attempt 2: is_retry
    result = invoke("recommendations", "--url", server_url, *_window())
    assert result.exit_code == 0, result.output
    out = result.output
    # $0.525 rounds half to even for reading: $0.52 (the JSON keeps 0.525)
    assert "Estimated saving: $0.52 / month from 1 recommendation" in out
    assert "Stop retrying gpt-4o: 10 of 12 retries failed" in out
    assert "$0.04 in the range" in out and "failing_retries" in out
    assert "83.3%" in out  # retry_failure_rate
    assert "agent_id=fetcher" in out

    raw = invoke("recommendations", "--url", server_url, "--json", *_window())
    body = json.loads(raw.output)
    (rec,) = body["recommendations"]
    assert Decimal(rec["saving_in_window"]) == Decimal("0.035")
    assert Decimal(rec["saving_per_month"]) == Decimal("0.525")
    assert rec["sample_trace_ids"] and "is_retry" not in rec["evidence"]


def test_bad_kind_exits_with_the_servers_reason(server_url: str) -> None:
    result = invoke("recommendations", "--url", server_url, "--kind", "cheaper")
    assert result.exit_code == 1
