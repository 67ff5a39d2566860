"""The SDK's ``mentatlab.guard`` against a live server: a block policy raises
``PolicyBlocked``, answers are cached for ``cache_s``, and a stopped server fails open or
closed as configured."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from serverkit import make_settings, run_live_server  # noqa: E402

import mentatlab  # noqa: E402
from mentatlab.errors import PolicyBlocked  # noqa: E402


def test_guard_cache_and_fail_modes(_isolated_data_dir: Path) -> None:
    servers = run_live_server(make_settings(_isolated_data_dir))
    server = next(servers)
    try:
        made = httpx.post(f"{server.url}/api/v1/policies", timeout=30, json={
            "name": "no shell", "action": "block", "scope": "tool", "scope_value": "shell",
            "condition": 'span.operation == "tool"'})
        assert made.status_code == 201, made.text
        policy_id = made.json()["policy"]["id"]

        mentatlab.configure_guard(endpoint=server.url, cache_s=60)
        with pytest.raises(PolicyBlocked) as blocked:
            mentatlab.guard("execute_tool shell", tool_name="shell")
        assert [d["policy_id"] for d in blocked.value.decisions] == [policy_id]
        assert not blocked.value.unavailable
        allowed = mentatlab.guard("execute_tool search", tool_name="search")
        assert allowed.allow and allowed.source == "server"
        assert mentatlab.guard("execute_tool search", tool_name="search").source == "cache"

        deleted = httpx.delete(f"{server.url}/api/v1/policies/{policy_id}", timeout=30)
        assert deleted.status_code == 200
        with pytest.raises(PolicyBlocked):  # the cached denial, within cache_s
            mentatlab.guard("execute_tool shell", tool_name="shell")
        mentatlab.configure_guard(endpoint=server.url, cache_s=0)
        fresh = mentatlab.guard("execute_tool shell", tool_name="shell")
        assert fresh.allow and fresh.source == "server", "no cache: the deletion is seen"
        with pytest.raises(ValueError, match="operation"):
            mentatlab.guard("x", operation="teleport")
    finally:
        for _ in servers:  # stop the server
            pass
    # the server is gone: its port refuses connections
    mentatlab.configure_guard(endpoint=server.url, cache_s=60, fail_mode="open",
                              timeout_s=1)
    opened = mentatlab.guard("execute_tool shell", tool_name="shell")
    assert opened.allow and opened.source == "unavailable"
    with pytest.raises(PolicyBlocked) as closed:
        mentatlab.guard("execute_tool shell", tool_name="shell", fail_mode="closed")
    assert closed.value.unavailable and closed.value.decisions == ()
    mentatlab.configure_guard(endpoint=server.url, fail_mode="closed", timeout_s=1)
    with pytest.raises(PolicyBlocked):
        mentatlab.guard("execute_tool search", tool_name="search")
