from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from mentatlab.cli.demo import run_demo

pytestmark = pytest.mark.e2e


def test_run_demo_completes_with_a_cost_report(tmp_path: Path) -> None:
    out = io.StringIO()
    result = run_demo(data_dir=tmp_path / "demo", http_port=0, grpc_port=0, runs=1,
                      console=Console(file=out, width=160))
    text = out.getvalue()
    assert result.cost_rows, text
    assert Decimal(result.total_cost) > 0
    assert {r.get("org_id") for r in result.cost_rows} >= {"acme", "globex", "initech"}
    assert result.traffic["openai-v2"]["llm_calls"] > 0
    assert result.traffic["openinference"]["llm_calls"] > 0
    assert "Cost by org, project and model" in text
    # the question with an email (run 0 of every agent): found and replaced before storage
    assert result.pii_findings.get("EMAIL_ADDRESS", 0) > 0, text
    assert "PII found in prompts and replaced before storage (pii_mode=redact)" in text
    assert f"{result.url}/docs" not in text  # no link to a server it stopped
    assert "Server stopped" in text
    with pytest.raises(httpx.HTTPError):  # the server it started is gone
        httpx.get(f"{result.url}/readyz", timeout=2)


def _demo_cmd(data_dir: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "mentatlab.cli.main", "demo", "--data-dir", str(data_dir),
            "--port", "0", "--grpc-port", "0", "--runs", "1", *options]


def _env(ci: str | None) -> dict[str, str]:
    """This environment with ``CI`` unset (None) or set to ``ci``."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return env


def _read_until(proc: subprocess.Popen[str], marker: str, timeout_s: float) -> str:
    """Lines of ``proc``'s stdout up to the one containing ``marker``."""
    assert proc.stdout is not None
    lines: list[str] = []
    done = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if marker in line:
                done.set()
                return

    threading.Thread(target=read, daemon=True).start()
    if not done.wait(timeout_s):
        pytest.fail(f"no {marker!r} within {timeout_s} s:\n{''.join(lines)}")
    return "".join(lines)


@pytest.mark.slow
def test_demo_keeps_serving_until_ctrl_c_then_stops_its_server(tmp_path: Path) -> None:
    proc = subprocess.Popen(_demo_cmd(tmp_path / "demo"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(None))
    try:
        text = _read_until(proc, "Ctrl-C", timeout_s=180)
        pages = dict(re.findall(
            r"^\s+(Dashboard|API docs|Most expensive trace|Governance):\s+(http://\S+)$", text,
            re.MULTILINE))
        assert set(pages) == {"Dashboard", "API docs", "Most expensive trace", "Governance"}, text
        for page in pages.values():
            assert httpx.get(page, timeout=10).status_code == 200, page
        base = pages["Dashboard"].removesuffix("/")
        assert pages["API docs"] == f"{base}/docs"
        assert pages["Governance"] == f"{base}/governance"
        dashboard = httpx.get(pages["Dashboard"], timeout=10)
        assert dashboard.headers["content-type"].startswith("text/html")
        # the trace view of the costliest trace, as the API ranks them
        costliest = httpx.get(f"{base}/api/v1/traces", params={"sort": "cost", "limit": 1},
                              timeout=30).json()["traces"][0]
        assert Decimal(costliest["total_cost"]) > 0
        trace_id = costliest["trace_id"]
        assert pages["Most expensive trace"] == f"{base}/traces/{trace_id}", text
        trace_page = httpx.get(pages["Most expensive trace"], timeout=10)
        assert trace_page.headers["content-type"].startswith("text/html")
        assert f"mentatctl trace show {trace_id} --url " in text
        assert re.search(r"Ctrl-C.*\(or `kill \d+`", text), text  # how to stop it
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # SIGTERM first: the demo stops the server it started
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in out + err
    assert "Server stopped" in out
    with pytest.raises(httpx.HTTPError):  # the port is closed
        httpx.get(f"{base}/readyz", timeout=2)


@pytest.mark.slow
def test_demo_exits_by_itself_when_ci_is_set_even_with_keep_running(tmp_path: Path) -> None:
    done = subprocess.run(_demo_cmd(tmp_path / "demo", "--keep-running"), capture_output=True,
                          text=True, env=_env("1"), timeout=180)
    assert done.returncode == 0, done.stderr
    assert "Ctrl-C" not in done.stdout and "Server stopped" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
