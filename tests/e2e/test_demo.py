from __future__ import annotations

import io
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
    assert "Cost by org, project and model" in text and f"{result.url}/docs" in text
    assert result.server_pid is None
    with pytest.raises(httpx.HTTPError):  # the server it started is gone
        httpx.get(f"{result.url}/readyz", timeout=2)
