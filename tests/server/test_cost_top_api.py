"""``GET /api/v1/cost?top=N``: the N costliest keys of each group-by field kept, the rest
lumped into "other" rows whose sums are exact (the answer's total unchanged)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from server_payloads import JSON, encode, export_request, llm_span
from serverkit import InProcess
from test_api import assert_error_shape

from mentatlab.analytics.cost import CostRow
from mentatlab.analytics.cost_top import lump_top
from mentatlab.errors import ValidationError

AGENTS = ("planner", "coder", "critic", "router", "summarizer")
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet-20241022")


def _row(agent: str, model: str, cost: str, spans: int = 1,
         bucket: datetime | None = None) -> CostRow:
    money: dict[str, Any] = {name: Decimal(0) for name in ("token_cost", "cpu_cost", "memory_cost",
                                           "gpu_cost", "network_cost", "storage_cost",
                                           "unattributed_cost", "discount")}
    counts: dict[str, Any] = {name: 0 for name in ("requests", "error_spans", "timeout_spans",
                                   "input_tokens", "output_tokens", "cached_tokens",
                                   "cache_write_tokens", "reasoning_tokens",
                                   "unattributed_input_tokens", "unattributed_output_tokens")}
    money["token_cost"] = Decimal(cost)
    counts["input_tokens"] = spans * 10
    return CostRow(keys={"agent_id": agent, "model": model}, bucket_start=bucket,
                   total_cost=Decimal(cost), num_spans=spans, **money, **counts)


def test_lump_top_keeps_the_costliest_keys_of_each_field_and_sums_the_rest_exactly() -> None:
    rows = [_row("a", "m1", "0.000000001"), _row("a", "m2", "5"), _row("b", "m1", "3.3"),
            _row("c", "m3", "0.1"), _row("d", "m1", "0.2"), _row("d", "m3", "0.0000003")]
    out = lump_top(rows, ("agent_id", "model"), 2)
    # agents by total: a 5.000000001, b 3.3, d 0.2000003, c 0.1; models: m2 5, m1 3.5...
    assert out.num_other == {"agent_id": 2, "model": 1}
    cells = {(r.keys["agent_id"], r.keys["model"], lumped): r.total_cost
             for r, lumped in zip(out.rows, out.lumped, strict=True)}
    assert cells == {("a", "m2", ()): Decimal("5"), ("b", "m1", ()): Decimal("3.3"),
                     ("a", "m1", ()): Decimal("0.000000001"),
                     ("", "m1", ("agent_id",)): Decimal("0.2"),
                     ("", "", ("agent_id", "model")): Decimal("0.1000003")}
    assert sum(r.total_cost for r in out.rows) == sum(r.total_cost for r in rows)
    assert sum(r.input_tokens for r in out.rows) == sum(r.input_tokens for r in rows)
    assert out.rows[0].keys == {"agent_id": "a", "model": "m2"}, "costliest first"


def test_lump_top_keeps_buckets_apart_and_ties_by_spans_then_key() -> None:
    day1, day2 = datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC)
    rows = [_row("x", "m", "1", 1, day1), _row("y", "m", "1", 2, day1),
            _row("z", "m", "1", 2, day2), _row("x", "m", "2", 1, day2)]
    out = lump_top(rows, ("agent_id",), 1)
    # x has 3 (kept); y and z lumped per bucket
    assert [(r.bucket_start, r.keys["agent_id"], lumped, r.total_cost)
            for r, lumped in zip(out.rows, out.lumped, strict=True)] == [
        (day1, "x", (), Decimal("1")), (day1, "", ("agent_id",), Decimal("1")),
        (day2, "x", (), Decimal("2")), (day2, "", ("agent_id",), Decimal("1"))]
    tied = lump_top([_row("b", "m", "1", 1), _row("a", "m", "1", 1), _row("c", "m", "1", 5)],
                    ("agent_id",), 2)
    assert {r.keys["agent_id"] for r in tied.rows} == {"c", "a", ""}, "more spans, then by name"
    with pytest.raises(ValidationError):
        lump_top(rows, ("agent_id",), 0)


async def _seed(env: InProcess) -> None:
    spans = []
    for i, agent in enumerate(AGENTS):
        for j, model in enumerate(MODELS):
            spans.append(llm_span(model=model, input_tokens=1_000 * (i + 1) + 7 * j,
                                  output_tokens=300 + 11 * i,
                                  attrs={"mentat.agent_id": agent}))
    for project in ("acme", "globex"):
        body, headers = encode(export_request(spans[: 9 if project == "acme" else 15],
                                              project_id=project), JSON)
        answer = await env.client.post("/v1/traces", content=body, headers=headers)
        assert answer.status_code == 200, answer.text


async def test_top_lumps_the_rest_and_keeps_the_total(app_client: InProcess) -> None:
    await _seed(app_client)
    c = app_client.client
    full = (await c.get("/api/v1/cost", params={"group_by": "agent_id,model"})).json()
    top = (await c.get("/api/v1/cost", params={"group_by": "agent_id,model", "top": 2})).json()
    assert top["total_cost"] == full["total_cost"] and Decimal(full["total_cost"]) > 0
    assert top["top"] == 2 and top["num_other"] == {"agent_id": 3, "model": 1}
    by_agent: dict[Any, Decimal] = defaultdict(Decimal)
    for row in full["rows"]:
        by_agent[row["agent_id"]] += Decimal(row["total_cost"])
    kept = sorted(by_agent, key=lambda a: -by_agent[a])[:2]
    assert {r["agent_id"] for r in top["rows"]} == {*kept, None}
    other = [r for r in top["rows"] if r["agent_id"] is None]
    assert all("agent_id" in r["lumped"] for r in other)
    assert sum(Decimal(r["total_cost"]) for r in other) == sum(
        (v for k, v in by_agent.items() if k not in kept), Decimal(0))
    assert sum(r["num_spans"] for r in top["rows"]) == sum(r["num_spans"] for r in full["rows"])
    assert all(r["lumped"] == [] for r in top["rows"] if r["agent_id"] and r["model"])

    trend = (await c.get("/api/v1/cost", params={
        "group_by": "agent", "bucket": "hour", "top": 1})).json()
    assert trend["group_by"] == ["agent_id"] and all("bucket" in r for r in trend["rows"])
    assert Decimal(trend["total_cost"]) == Decimal(full["total_cost"])
    assert len({r["agent_id"] for r in trend["rows"]}) == 2

    text = (await c.get("/api/v1/cost", params={
        "group_by": "agent_id,model", "top": 2, "format": "csv"})).text
    table = list(csv.DictReader(io.StringIO(text)))
    assert len(table) == len(top["rows"]) and list(table[0])[:2] == ["agent_id", "model"]
    assert {r["lumped"] for r in table} >= {"", "agent_id", "agent_id;model"}
    assert sum(Decimal(r["total_cost"]) for r in table) == Decimal(full["total_cost"])

    plain = (await c.get("/api/v1/cost", params={"group_by": "", "top": 3})).json()
    assert "top" not in plain and len(plain["rows"]) == 1, "nothing to lump without group-by"


async def test_a_bad_top_is_refused_with_its_field(app_client: InProcess) -> None:
    for bad in ("0", "101", "many"):
        body = assert_error_shape(await app_client.client.get(
            "/api/v1/cost", params={"group_by": "model", "top": bad}), 422)
        assert any("top" in e["field"] for e in body["errors"]), body
