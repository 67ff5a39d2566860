"""``mentatctl governance ...`` against a live server (auth off), through Typer's runner."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from serverkit import make_settings, run_live_server  # noqa: E402

from mentatlab.cli.main import app  # noqa: E402

runner = CliRunner(env={"COLUMNS": "200"})


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables as wide as the text: the CLI's console is made once per process, and an
    earlier test may have made it at 80 columns (COLUMNS is read when it is made)."""
    from mentatlab.cli import _client

    monkeypatch.setattr(_client.console, "width", 200)
NS = 1_000_000_000


@pytest.fixture
def server_url(_isolated_data_dir: Path) -> Iterator[str]:
    for server in run_live_server(make_settings(_isolated_data_dir)):
        server.state.control.create_org("Acme", "acme")
        yield server.url


def _send(url: str, attrs: dict[str, str], n: int) -> None:
    now = time.time_ns()
    span = {"traceId": f"{n:032x}", "spanId": f"{n:016x}", "name": "s", "kind": 1,
            "startTimeUnixNano": str(now - 60 * NS), "endTimeUnixNano": str(now - 59 * NS),
            "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attrs.items()]}
    body = {"resourceSpans": [{"resource": {"attributes": [
        {"key": "mentat.org_id", "value": {"stringValue": "acme"}}]},
        "scopeSpans": [{"spans": [span]}]}]}
    assert httpx.post(f"{url}/v1/traces", json=body, timeout=30).status_code == 200


def test_register_list_and_flag_versions(server_url: str, tmp_path: Path) -> None:
    prompt = tmp_path / "triage.txt"
    prompt.write_text("You triage tickets.", encoding="utf-8")
    digest = hashlib.sha256(b"You triage tickets.").hexdigest()
    args = ["governance", "versions", "register", "--kind", "prompt", "--name", "triage",
            "--version", "v1", "--content-file", str(prompt), "--org", "acme",
            "--url", server_url]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "Registered prompt 'triage' version 'v1'" in first.output and digest in first.output
    assert "Already registered" in runner.invoke(app, args).output
    prompt.write_text("You triage tickets!", encoding="utf-8")
    changed = runner.invoke(app, args)
    assert changed.exit_code == 1 and "409" in changed.output
    both = runner.invoke(app, [*args, "--content-hash", digest])
    assert both.exit_code == 2
    listed = runner.invoke(app, ["governance", "versions", "list", "--format", "json",
                                 "--url", server_url])
    assert [v["content_hash"] for v in json.loads(listed.output)["versions"]] == [digest]

    _send(server_url, {"mentat.prompt_version": "v2", "mentat.prompt_name": "triage"}, 1)
    flagged = runner.invoke(app, ["governance", "versions", "unregistered", "--url", server_url])
    assert flagged.exit_code == 0, flagged.output
    assert "unregistered" in flagged.output and "v2" in flagged.output


def test_approvals_and_signals(server_url: str) -> None:
    _send(server_url, {"mentat.approval.state": "requested", "mentat.agent_id": "ops"}, 2)
    _send(server_url, {"mentat.agent_id": "ops", "gen_ai.operation.name": "execute_tool",
                       "gen_ai.tool.name": "shell"}, 3)
    shown = runner.invoke(app, ["governance", "approvals", "--group-by", "agent",
                                "--url", server_url])
    assert shown.exit_code == 0, shown.output
    assert "ops" in shown.output and "Approvals" in shown.output
    body = json.loads(runner.invoke(app, ["governance", "approvals", "--format", "json",
                                          "--url", server_url]).output)
    assert body["total"]["queue_length"] == 1
    found = runner.invoke(app, ["governance", "signals", "--kind", "new_tool", "--url",
                                server_url])
    assert found.exit_code == 0, found.output
    assert "new_tool" in found.output and "shell" in found.output
    none = runner.invoke(app, ["governance", "signals", "--kind", "new_tool",
                               "--min-severity", "high", "--url", server_url])
    assert "No findings" in none.output
    bad = runner.invoke(app, ["governance", "signals", "--kind", "bogus", "--url", server_url])
    assert bad.exit_code == 1 and "kind" in bad.output


def test_a_signal_alert_rule_is_created(server_url: str) -> None:
    made = runner.invoke(app, ["governance", "alert", "sec", "--signal", "new_key",
                               "--min-severity", "high", "--notify",
                               "webhook:http://127.0.0.1:9/hook", "--org", "acme",
                               "--url", server_url])
    assert made.exit_code == 0, made.output
    rules = httpx.get(f"{server_url}/api/v1/alert-rules", timeout=30).json()["rules"]
    assert [(r["kind"], r["metric"], r["threshold"], r["window_s"]) for r in rules] == [
        ("security_signal", "new_key", "3", 900)]
    listed = runner.invoke(app, ["alerts", "rules", "--url", server_url])
    assert "new_key findings, severity ≥ high, over 900 s" in listed.output
    bad = runner.invoke(app, ["governance", "alert", "x", "--signal", "all", "--notify",
                              "webhook:http://127.0.0.1:9/hook", "--url", server_url])
    assert bad.exit_code == 1 and "metric" in bad.output
