"""``mentatctl policies ...`` against a real server (uvicorn thread): create, list, show,
update (a new version), a CEL error naming the place, simulate a draft and a stored policy,
a break-glass override, delete."""

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


def test_policies_commands(server_url: str, tmp_path: Path) -> None:
    url = ["--url", server_url]
    trace = new_trace_id()
    spans = [llm_span(trace, name="big", input_tokens=9000),
             llm_span(trace, name="small", input_tokens=10)]
    body, headers = encode(export_request(spans))
    assert httpx.post(f"{server_url}/v1/traces", content=body, headers=headers,
                      timeout=60).status_code == 200

    bad = invoke("policies", "create", "broken", "--condition", "span.input_tokens >", *url)
    assert bad.exit_code == 1
    condition = tmp_path / "rule.cel"
    condition.write_text("span.input_tokens > params.limit")
    made = invoke("policies", "create", "big prompts", "--condition", f"@{condition}",
                  "--params", '{"limit": 1000}', "--action", "log", "--scope", "project=acme",
                  "--tag", "soc2", "--id", "big-prompts", *url)
    assert made.exit_code == 0, made.output
    assert "big-prompts v1 'big prompts': log (medium), scope project=acme, enforced" in \
        made.output
    listed = invoke("policies", "list", "--json", *url)
    assert listed.exit_code == 0
    ids = {p["id"] for p in json.loads(listed.output)}
    assert "big-prompts" in ids and "builtin.prompt_injection" in ids

    simulated = invoke("policies", "simulate", "big-prompts", "--since", "1h", "--json", *url)
    assert simulated.exit_code == 0, simulated.output
    report = json.loads(simulated.output)
    assert report["num_matched"] == 1
    assert report["sample_span_ids"] == [[trace.hex(), spans[0].span_id.hex()]]
    draft = invoke("policies", "simulate", "--condition", "span.input_tokens > 5",
                   "--since", "1h", *url)
    assert draft.exit_code == 0 and "2 would match" in draft.output, draft.output

    changed = invoke("policies", "update", "big-prompts", "--action", "alert", "--disabled",
                     *url)
    assert changed.exit_code == 0 and "v2" in changed.output and "disabled" in changed.output
    granted = invoke("policies", "override", "big-prompts", "--scope", "agent=planner",
                     "--duration", "30m", "--reason", "INC-1: load test in progress", *url)
    assert granted.exit_code == 0, granted.output
    shown = invoke("policies", "show", "big-prompts", *url)
    assert shown.exit_code == 0
    assert "v1" in shown.output and "v2" in shown.output and "INC-1" in shown.output
    gone = invoke("policies", "delete", "big-prompts", *url)
    assert gone.exit_code == 0 and "last version 3" in gone.output
