"""``mentatctl cost report|watch`` and ``prices show`` against a real server (uvicorn thread).

Expected money is computed by hand from the shipped default rates
(``pricing/data/infrastructure.toml``) and genai-prices' gpt-4o price ($2.50 / $10 per Mtok).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from typer.testing import CliRunner

from mentatlab.cli._client import console
from mentatlab.cli._format import format_money, format_rate
from mentatlab.cli.main import app
from mentatlab.server.app import create_app
from mentatlab.settings import load_settings

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fixed width, so the layout does not depend on the terminal running the tests."""
    monkeypatch.setattr(console, "width", 160)


def _serve(data_dir: Path) -> Iterator[str]:
    application = create_app(load_settings(data_dir=data_dir, grpc_port=0))
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=0,
                                           log_level="warning", ws="websockets-sansio"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture
def server_url(_isolated_data_dir: Path) -> Iterator[str]:
    yield from _serve(_isolated_data_dir)


@pytest.fixture
def unpriced_infra_url(_isolated_data_dir: Path) -> Iterator[str]:
    _isolated_data_dir.mkdir(parents=True, exist_ok=True)
    (_isolated_data_dir / "pricing.toml").write_text("[infrastructure]\ndefaults = false\n")
    yield from _serve(_isolated_data_dir)


def _kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def send(url: str, project: str, *, model: str | None = None, input_tokens: int = 0,
         output_tokens: int = 0, **resources: float) -> None:
    now = time.time_ns()
    attributes = [_kv(f"mentat.resource.{k}", v) for k, v in resources.items()]
    if model is not None:
        attributes += [_kv("gen_ai.provider.name", "openai"),
                       _kv("gen_ai.request.model", model),
                       _kv("gen_ai.usage.input_tokens", input_tokens),
                       _kv("gen_ai.usage.output_tokens", output_tokens)]
    span = Span(trace_id=os.urandom(16), span_id=os.urandom(8), name=f"work {project}",
                start_time_unix_nano=now - 10**9, end_time_unix_nano=now,
                attributes=attributes)
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource={"attributes": [_kv("mentat.project_id", project)]},
        scope_spans=[ScopeSpans(spans=[span])])])
    response = httpx.post(f"{url}/v1/traces", content=request.SerializeToString(),
                          headers={"content-type": "application/x-protobuf"}, timeout=60)
    assert response.status_code == 200, response.text


def seed(url: str) -> None:
    # acme: 1M in + 100k out of gpt-4o = $2.50 + $1.00; 2 core-hours = 2 * $0.04048
    send(url, "acme", model="gpt-4o", input_tokens=1_000_000, output_tokens=100_000,
         cpu_core_seconds=7200.0)
    # tiny: 10 in + 2 out of gpt-4o = $0.000045, below a cent
    send(url, "tiny", model="gpt-4o", input_tokens=10, output_tokens=2)
    send(url, "idle")                                            # no cost, no requests
    send(url, "house", model="house-model-9", input_tokens=50)   # unpriced model


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


def table_rows(output: str) -> dict[str, list[str]]:
    """Data rows of a printed cost table by their first cell (cells split on spaces)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if set(line.strip()) == {"─"}) + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("Total "))
    return {line.split()[0]: line.split() for line in lines[start:end] if line.strip()}


def test_money_rule() -> None:
    assert format_money("1234.567") == "$1,234.57"
    assert format_money("0.000123456") == "$0.000123"
    assert format_money("0.009996") == "$0.01"
    assert format_money("0") == "$0.00"
    assert format_money("-1.5", "EUR") == "-€1.50"
    assert format_money("12", "CHF") == "CHF 12.00"
    assert format_rate("9.796550569") == "$9.796550569"
    assert format_rate("1234.5") == "$1,234.5"


def test_report_table_shows_token_and_infra_side_by_side(server_url: str) -> None:
    seed(server_url)
    result = invoke("cost", "report", "--url", server_url, "--by", "project_id")
    assert result.exit_code == 0, result.output
    out = result.output
    rows = table_rows(out)
    assert set(rows) == {"acme", "tiny", "house"}   # idle: no cost, no requests
    # project, requests, input tokens, output tokens, token cost, infra cost, total
    assert rows["acme"] == ["acme", "1", "1,000,000", "100,000", "$3.50", "$0.08", "$3.58"]
    assert rows["tiny"] == ["tiny", "1", "10", "2", "$0.0000450", "$0.00", "$0.0000450"]
    # numbers are right-aligned: every row ends in the same column
    data = [line for line in out.splitlines() if line.split()[:1] in (["acme"], ["tiny"],
                                                                      ["house"])]
    assert len({len(line.rstrip()) for line in data}) == 1
    assert "Total $3.58 = token $3.50 + infrastructure $0.08" in out
    assert "1 row with no cost and no requests not shown (--all shows them)" in out
    assert "default list prices of 2026-12-06" in out
    assert "openai/house-model-9 (1 span)" in out and "mentatctl cost unpriced" in out

    shown = invoke("cost", "report", "--url", server_url, "--by", "project_id", "--all")
    assert shown.exit_code == 0, shown.output
    assert "idle" in shown.output and "not shown" not in shown.output


def test_a_narrow_terminal_keeps_names_and_totals(server_url: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    seed(server_url)
    monkeypatch.setattr(console, "width", 80)
    result = invoke("cost", "report", "--url", server_url, "--by", "project_id,model",
                    "--bucket", "hour")
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines() if "│" not in line
               and not line.startswith("*")) <= 80
    for name in ("acme", "tiny", "house", "gpt-4o", "$3.58", "$0.0000450"):
        assert name in result.output, name


def test_json_and_csv_carry_exact_values(server_url: str) -> None:
    seed(server_url)
    result = invoke("cost", "report", "--url", server_url, "--by", "project_id",
                    "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {r["project_id"]: r for r in json.loads(result.output)["rows"]}
    assert set(rows) == {"acme", "tiny", "house"}
    assert Decimal(rows["acme"]["cpu_cost"]) == Decimal("0.08096")
    assert Decimal(rows["acme"]["total_cost"]) == Decimal("3.58096")
    assert Decimal(rows["tiny"]["token_cost"]) == Decimal("0.000045")
    every = json.loads(invoke("cost", "report", "--url", server_url, "--by", "project_id",
                              "--format", "json", "--all").output)["rows"]
    assert "idle" in {r["project_id"] for r in every}

    result = invoke("cost", "report", "--url", server_url, "--by", "project_id",
                    "--format", "csv")
    assert result.exit_code == 0, result.output
    table = {r["project_id"]: r for r in csv.DictReader(io.StringIO(result.output))}
    assert set(table) == {"acme", "tiny", "house"}
    assert Decimal(table["acme"]["total_cost"]) == Decimal("3.58096")
    every_csv = invoke("cost", "report", "--url", server_url, "--by", "project_id",
                       "--format", "csv", "--all").output
    assert "idle" in every_csv


def test_footnote_when_infrastructure_is_unpriced(unpriced_infra_url: str) -> None:
    send(unpriced_infra_url, "acme", model="gpt-4o", input_tokens=1000, output_tokens=100,
         cpu_core_seconds=7200.0)
    result = invoke("cost", "report", "--url", unpriced_infra_url, "--by", "project_id")
    assert result.exit_code == 0, result.output
    assert "Infrastructure is not priced" in result.output
    assert "$0.00350" in result.output  # token cost only: 1000 * 2.5e-6 + 100 * 1e-5


def test_watch_once_uses_the_same_table(server_url: str) -> None:
    seed(server_url)
    result = invoke("cost", "watch", "--once", "--url", server_url, "--by", "project_id")
    assert result.exit_code == 0, result.output
    assert "$3.58" in result.output and "idle" not in result.output


def test_prices_show_lists_rates_and_sources(server_url: str) -> None:
    result = invoke("prices", "show", "--url", server_url)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Infrastructure rates in force" in out
    assert "$0.04048 / vCPU-hour" in out and "AWS Fargate" in out and "2026-12-06" in out
    assert "$9.796550569 / GPU-hour" in out and "*h100*" in out
    assert "genai-prices" in out
    as_json = invoke("prices", "show", "--url", server_url, "--format", "json")
    assert as_json.exit_code == 0, as_json.output
    body = json.loads(as_json.output)
    assert body == httpx.get(f"{server_url}/api/v1/prices").json()


def test_columns_the_server_adds_are_shown_when_non_zero() -> None:
    from rich.console import Console

    from mentatlab.cli._cost_table import report_renderable

    body = {"group_by": ["agent_id"], "bucket": "day", "currency": "USD", "total_cost": "1.2",
            "rows": [
                {"agent_id": "planner", "bucket": "2026-12-06T00:00:00Z", "requests": 3,
                 "input_tokens": 1200, "output_tokens": 40, "cache_write_tokens": 0,
                 "reasoning_tokens": 7, "unattributed_input_tokens": 500,
                 "unattributed_output_tokens": 0, "token_cost": "1", "cpu_cost": "0.1",
                 "unattributed_cost": "0.15", "discount": "0.05", "total_cost": "1.2"},
                {"agent_id": "", "bucket": "2026-12-06T00:00:00Z", "requests": 0,
                 "token_cost": "0", "unattributed_cost": "0", "total_cost": "0"}]}
    out = Console(width=200, record=True)
    out.print(report_renderable(body, "t", show_all=True, prices=None, unpriced=None,
                                width=200))
    text = out.export_text()
    assert "reasoning" in text and "unattrib." in text and "discount" in text
    assert "cache write" not in text                     # zero in every row: left out
    row = next(line for line in text.splitlines() if "planner" in line).split()
    # bucket (day), agent, requests, in, out, reasoning, unattributed in, token, infra,
    # unattributed cost, discount (negative), total
    assert row == ["2026-12-06", "planner", "3", "1,200", "40", "7", "500", "$1.00", "$0.10",
                   "$0.15", "-$0.05", "$1.20"]
    assert "(none)" in text
    assert ("Total $1.20 = token $1.00 + infrastructure $0.10 + unattributed $0.15 - discount "
            "$0.05") in text
