"""``mentatctl analytics latency|peers`` against a real server (uvicorn thread).

Seeded: agent ``triage`` runs of 300, 500 and 700 ms, each with one gpt-4o call of 100,
200 and 400 ms; agent ``writer`` runs of 1000 and 1200 ms with claude-sonnet-4 calls of
600 and 900 ms (more tokens, so dearer).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_cost_report import _serve, invoke

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from server_payloads import encode, export_request, llm_span, new_trace_id  # noqa: E402

from mentatlab.cli._client import console  # noqa: E402


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "width", 200)


@pytest.fixture
def server_url(_isolated_data_dir: Path) -> Iterator[str]:
    yield from _serve(_isolated_data_dir)


def _run(url: str, agent: str, root_ms: int, model: str, call_ms: int, tokens: int) -> None:
    trace = new_trace_id()
    root = llm_span(trace, name=f"invoke_agent {agent}", input_tokens=None,
                    output_tokens=None, duration_ms=root_ms, model="",
                    attrs={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent})
    call = llm_span(trace, parent=root.span_id, model=model, duration_ms=call_ms,
                    provider="anthropic" if model.startswith("claude") else "openai",
                    input_tokens=tokens, output_tokens=50)
    call.start_time_unix_nano = root.start_time_unix_nano + 1_000_000
    call.end_time_unix_nano = call.start_time_unix_nano + call_ms * 1_000_000
    body, headers = encode(export_request([root, call], project_id="acme"))
    assert httpx.post(f"{url}/v1/traces", content=body, headers=headers,
                      timeout=60).status_code == 200


def _seed(url: str) -> None:
    for root_ms, call_ms in ((300, 100), (500, 200), (700, 400)):
        _run(url, "triage", root_ms, "gpt-4o", call_ms, 100)
    for root_ms, call_ms in ((1000, 600), (1200, 900)):
        _run(url, "writer", root_ms, "claude-sonnet-4", call_ms, 5000)


def _row(output: str, first: str) -> list[str]:
    line = next(line for line in output.splitlines() if line.split("│")[0].strip() == first
                or (line.startswith(("│", "┃")) and line.strip("│┃ ").startswith(first + " ")))
    return [c.strip() for c in line.strip("│┃").split("│")]


def test_latency_by_model_table_and_json(server_url: str) -> None:
    _seed(server_url)
    result = invoke("analytics", "latency", "--group-by", "model", "--range", "24h",
                    "--url", server_url)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Latency by model" in out and "quantilesExactInclusive" in out
    # gpt-4o: 100, 200, 400 → p50 200, p90 360, p95 380, p99 396 (linear), mean 233
    assert _row(out, "gpt-4o") == ["gpt-4o", "3", "200", "360", "380", "396", "233", "400"]
    assert _row(out, "claude-sonnet-4")[:3] == ["claude-sonnet-4", "2", "750"]
    as_json = invoke("analytics", "latency", "--group-by", "model", "--format", "json",
                     "--url", server_url)
    body = json.loads(as_json.output)
    assert {g["key"]: g["p90_ms"] for g in body["groups"]} == {"gpt-4o": 360,
                                                                "claude-sonnet-4": 870}


def test_peers_table(server_url: str) -> None:
    _seed(server_url)
    result = invoke("analytics", "peers", "--url", server_url)
    assert result.exit_code == 0, result.output
    triage, writer = _row(result.output, "triage"), _row(result.output, "writer")
    # two agents of one type: the lower value ranks (0 + 1)/4 = 25, the higher 75
    assert triage[:4] == ["triage", "invoke_agent", "3", "3"]
    assert [triage[5], triage[7], triage[9]] == ["25.0", "25.0", "25.0"]
    assert [writer[5], writer[7], writer[9]] == ["75.0", "75.0", "75.0"]
    assert triage[6] == "500" and writer[6] == "1,100"  # median run latency, ms
    assert triage[8] == "150.0" and writer[8] == "5,050.0"  # tokens per success


def test_bad_group_by_is_refused_before_any_request() -> None:
    result = invoke("analytics", "latency", "--group-by", "span", "--url",
                    "http://127.0.0.1:9")
    assert result.exit_code == 2 and "span" in result.output
