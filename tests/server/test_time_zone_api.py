"""``tz`` on the analytics routes (issue 15): day and hour buckets of ``/api/v1/cost`` and the
``today``/``month`` periods of ``/api/v1/overview`` follow an IANA zone; bucket keys are the
UTC instants of the local bucket starts; an unknown zone is a 400 naming ``tz``."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from server_payloads import JSON, encode, export_request, llm_span
from serverkit import InProcess
from test_api import assert_error_shape

NOW = datetime.now(UTC)
# 18:30 UTC is Kolkata's midnight, 03:30 St John's (winter) and 02:30 (summer)
BASE = (NOW - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
OFFSETS_MIN = (18 * 60 + 29, 18 * 60 + 30, 18 * 60 + 31, 3 * 60 + 29, 3 * 60 + 30,
               2 * 60 + 29, 2 * 60 + 30, 12 * 60, 23 * 60 + 59)


async def _seed(env: InProcess) -> None:
    spans = []
    for day in range(3):
        for i, minutes in enumerate(OFFSETS_MIN):
            span = llm_span(input_tokens=1_000 * (day + 1) + 37 * i, output_tokens=100 + i)
            start_ns = int((BASE + timedelta(days=day, minutes=minutes)).timestamp() * 1e9)
            span.start_time_unix_nano = start_ns
            span.end_time_unix_nano = start_ns + 120_000_000
            spans.append(span)
    body, headers = encode(export_request(spans), JSON)
    answer = await env.client.post("/v1/traces", content=body, headers=headers)
    assert answer.status_code == 200, answer.text


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_day_and_hour_buckets_follow_the_zone(app_client: InProcess) -> None:
    await _seed(app_client)
    c = app_client.client
    window = {"start": (BASE - timedelta(days=1)).isoformat(), "end": NOW.isoformat(),
              "group_by": ""}
    # minute buckets are the same instants in every zone used here: the reference
    minutes = (await c.get("/api/v1/cost", params={**window, "bucket": "minute"})).json()
    assert sum(r["num_spans"] for r in minutes["rows"]) == 3 * len(OFFSETS_MIN)
    for tz in ("Asia/Kolkata", "America/St_Johns", "Europe/Berlin", "UTC"):
        zone = ZoneInfo(tz)
        for bucket in ("day", "hour"):
            expected: dict[datetime, Decimal] = defaultdict(Decimal)
            for row in minutes["rows"]:
                local = _instant(row["bucket"]).astimezone(zone)
                start = local.replace(minute=0) if bucket == "hour" else local.replace(
                    hour=0, minute=0)
                expected[start.astimezone(UTC)] += Decimal(row["total_cost"])
            answer = (await c.get("/api/v1/cost", params={**window, "bucket": bucket,
                                                          "tz": tz})).json()
            assert answer["tz"] == tz and answer["bucket"] == bucket
            got = {_instant(r["bucket"]): Decimal(r["total_cost"]) for r in answer["rows"]}
            assert got == dict(expected), (tz, bucket)
            assert all(r["bucket"].endswith("Z") for r in answer["rows"]), "UTC instants"
    kolkata = (await c.get("/api/v1/cost", params={**window, "bucket": "day",
                                                   "tz": "Asia/Kolkata"})).json()
    assert all(r["bucket"].endswith("T18:30:00Z") for r in kolkata["rows"])
    utc = (await c.get("/api/v1/cost", params={**window, "bucket": "day"})).json()
    assert utc["tz"] == "UTC" and all(r["bucket"].endswith("T00:00:00Z") for r in utc["rows"])
    assert kolkata["total_cost"] == utc["total_cost"]


async def test_overview_today_and_month_to_date_in_the_zone(app_client: InProcess) -> None:
    await _seed(app_client)
    c = app_client.client
    for tz in ("Asia/Kolkata", "America/St_Johns", "UTC"):
        zone = ZoneInfo(tz)
        for period in ("today", "month"):
            before = datetime.now(UTC)
            answer = (await c.get("/api/v1/overview", params={"period": period,
                                                              "tz": tz})).json()
            local = before.astimezone(zone)
            midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
            if period == "month":
                midnight = midnight.replace(day=1)
            assert _instant(answer["start"]) == midnight.astimezone(UTC), (tz, period)
            assert answer["period"] == period and answer["tz"] == tz
            explicit = (await c.get("/api/v1/overview", params={
                "start": answer["start"], "end": answer["end"]})).json()
            assert explicit["spend"] == answer["spend"]
            assert explicit["num_spans"] == answer["num_spans"]
    month = (await c.get("/api/v1/overview", params={"period": "month"})).json()
    assert _instant(month["start"]).day == 1


async def test_a_bad_zone_or_a_period_with_a_range_is_refused(app_client: InProcess) -> None:
    c = app_client.client
    for route in ("/api/v1/overview", "/api/v1/cost"):
        for bad in ("Mars/Olympus", "Asia", "../etc/passwd", "x" * 65):
            body = assert_error_shape(await c.get(route, params={"tz": bad}), 400
                                      if len(bad) <= 64 else 422)
            assert [e["field"] for e in body["errors"]] == ["tz"] or any(
                "tz" in e["field"] for e in body["errors"]), body
    body = assert_error_shape(await c.get("/api/v1/overview", params={
        "period": "today", "start": "2026-01-01T00:00:00Z"}), 400)
    assert body["errors"][0]["field"] == "period"
    assert_error_shape(await c.get("/api/v1/overview", params={"period": "week"}), 422)
