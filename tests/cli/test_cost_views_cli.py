"""``mentatctl cost tree`` and ``cost tokens`` against a real server (uvicorn thread).

Seeded with gpt-4o calls (genai-prices: $2.50 input, $10 output per million tokens):
acme 1,000,000 in + 100,000 out = $2.50 + $1.00; tiny 10 in + 2 out = $0.000045.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cost_report import _serve, invoke, send

from mentatlab.cli._client import console


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "width", 160)


@pytest.fixture
def seeded_url(_isolated_data_dir: Path) -> Iterator[str]:
    for url in _serve(_isolated_data_dir):
        send(url, "acme", model="gpt-4o", input_tokens=1_000_000, output_tokens=100_000)
        send(url, "tiny", model="gpt-4o", input_tokens=10, output_tokens=2)
        yield url


def test_cost_tree_prints_each_level_and_json_is_exact(seeded_url: str) -> None:
    result = invoke("cost", "tree", "--url", seeded_url, "--levels", "project,model")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "project_id → model" in lines[0] and "$3.50" in lines[0]
    acme = next(i for i, line in enumerate(lines) if "acme $3.50 (100.0%)" in line)
    assert "gpt-4o $3.50" in lines[acme + 1] and "requests 1" in lines[acme + 1]
    assert any("tiny $0.0000450 (0.0%)" in line for line in lines), result.output
    body = json.loads(invoke("cost", "tree", "--url", seeded_url, "--levels", "model",
                             "--format", "json").output)
    assert body["tree"]["total_cost"] == "3.500045"
    assert [(c["key"], c["total_cost"]) for c in body["tree"]["children"]] == [
        ("gpt-4o", "3.500045")]


def test_cost_tree_bad_levels_exit_with_the_servers_reason(seeded_url: str) -> None:
    result = invoke("cost", "tree", "--url", seeded_url, "--levels", "model,model")
    assert result.exit_code != 0 and "levels" in result.output + str(result.stderr_bytes)


def test_cost_tokens_table(seeded_url: str) -> None:
    result = invoke("cost", "tokens", "--url", seeded_url)
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in result.output.splitlines() if line.count("│") == 5}
    assert rows["input (uncached)"] == ["1,000,010", "$2.50", "71.4%"]
    assert rows["output"] == ["100,002", "$1.00", "28.6%"]
    assert rows["cache read"][:2] == ["0", "$0.00"]
    assert "Cache savings: $0.00" in result.output
