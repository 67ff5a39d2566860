"""``GET /api/v1/system/ingest`` on a real server: the ingest counters move with OTLP
ingest and agree with ``/metrics``; the write-ahead log's fields with ``wal`` on; the
ingest workers start on the first body and stop when idle; the permission is enforced and
a bad ``window_s`` is a 422 naming it."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from server_payloads import encode, export_request, llm_span, new_trace_id
from serverkit import InProcess, make_settings, open_in_process
from test_api import assert_error_shape

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "storage"))

from spanfactory import GatedStore  # noqa: E402

URL = "/api/v1/system/ingest"


async def _send(env: InProcess, spans: list[Any], key: str | None = None) -> None:
    body, headers = encode(export_request(spans))
    if key:
        headers["x-api-key"] = key
    answer = await env.client.post("/v1/traces", content=body, headers=headers)
    assert answer.status_code == 200, answer.text


async def _health(env: InProcess, **params: Any) -> dict[str, Any]:
    answer = await env.client.get(URL, params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["ok"] is True
    return body


def _metric(text: str, name: str) -> float:
    return sum(s.value for family in text_string_to_metric_families(text)
               for s in family.samples if s.name == name)


async def test_counters_move_with_ingest_and_agree_with_metrics(
        _isolated_data_dir: Path) -> None:
    settings = make_settings(_isolated_data_dir, wal=False, ingest_workers=0,
                             write_buffer_spans=1234, write_buffer_bytes=5 * 2**20)
    async with open_in_process(settings) as env:
        before = await _health(env)
        assert before["spans"]["accepted_total"] == 0
        assert before["spans"]["rejected_total"] == {"backpressure": 0, "invalid": 0}
        assert before["commit"] == {"num_commits": 0, "wait_mean_ms": None,
                                    "last_insert_ms": 0.0}
        assert before["buffer"] == {"spans": 0, "max_spans": 1234, "bytes": 0,
                                    "max_bytes": 5 * 2**20}
        assert before["wal"]["enabled"] is False
        assert before["wal"]["memory_bytes"] is None and before["wal"]["disk_bytes"] is None
        assert before["workers"] == {"configured": 0, "running": 0,
                                     "idle_stop_s": settings.ingest_workers_idle_s}
        assert before["memory"]["rss_bytes"] >= before["memory"]["server_rss_bytes"] > 2**20
        assert before["memory"]["num_processes"] >= 1

        trace = new_trace_id()
        bad = llm_span(trace)
        bad.span_id = b"\x00" * 8  # refused by the decoder: reason "invalid"
        await _send(env, [llm_span(trace) for _ in range(20)] + [bad])
        await _send(env, [llm_span() for _ in range(5)])
        after = await _health(env, window_s=5)
        spans = after["spans"]
        assert spans["accepted_total"] == 25
        assert spans["rejected_total"] == {"backpressure": 0, "invalid": 1}
        assert spans["accepted_per_s"] > 0 and spans["rejected_per_s"]["invalid"] > 0
        assert spans["rejected_per_s"]["backpressure"] == 0
        # the rates are the counters' differences over the window the answer names
        assert 0 < after["window_s"] <= after["uptime_s"]
        assert abs(spans["accepted_per_s"] * after["window_s"] - 25) < 0.5
        assert after["commit"]["num_commits"] == 2
        assert after["commit"]["wait_mean_ms"] > 0 and after["commit"]["last_insert_ms"] > 0
        assert after["buffer"]["spans"] == 0 and after["buffer"]["bytes"] == 0

        scrape = (await env.client.get("/metrics")).text
        assert _metric(scrape, "mentatlab_spans_accepted_total") == 25
        assert _metric(scrape, "mentatlab_write_latency_seconds_count") == 2
        assert _metric(scrape, "mentatlab_store_insert_last_seconds") * 1000 == \
            after["commit"]["last_insert_ms"]
        assert _metric(scrape, "mentatlab_ingest_workers") == 0

        # a second reading within the window: the rate is over the earlier reading, not 0
        again = await _health(env, window_s=60)
        assert again["spans"]["accepted_total"] == 25
        assert again["window_s"] >= after["window_s"]
        assert again["spans"]["accepted_per_s"] > 0


async def test_bad_window_is_a_422_naming_it(_isolated_data_dir: Path) -> None:
    settings = make_settings(_isolated_data_dir, ingest_workers=0)
    async with open_in_process(settings) as env:
        for bad in ("0", "61", "abc", "nan", "inf", "-5"):
            body = assert_error_shape(await env.client.get(URL, params={"window_s": bad}), 422)
            assert [e["field"] for e in body["errors"]] == ["window_s"], (bad, body)


async def test_wal_fields_with_the_log_on(_isolated_data_dir: Path) -> None:
    settings = make_settings(_isolated_data_dir, wal=True, ingest_workers=0,
                             wal_max_memory_bytes=8 * 2**20, wal_max_disk_bytes=64 * 2**20)
    async with open_in_process(settings) as env:
        writer = env.state.writer
        gated = GatedStore(writer.store)  # the inserter is held: the batch stays pending
        writer.store = gated
        await _send(env, [llm_span() for _ in range(30)])
        health = await _health(env)
        wal = health["wal"]
        assert wal["enabled"] is True and wal["fsync"] is False
        assert wal["max_memory_bytes"] == 8 * 2**20 and wal["max_disk_bytes"] == 64 * 2**20
        assert wal["disk_bytes"] > 0, "the acknowledged batch is in a log file"
        assert 0 < wal["memory_bytes"] <= wal["max_memory_bytes"], "logged, not inserted"
        assert wal["insert_failures_total"] == 0
        assert health["spans"]["accepted_total"] == 30
        scrape = (await env.client.get("/metrics")).text
        assert _metric(scrape, "mentatlab_wal_insert_failures_total") == 0
        # once inserted, nothing is pending in memory
        gated.gate.set()
        assert await asyncio.to_thread(writer.flush, 30)
        assert (await _health(env))["wal"]["memory_bytes"] == 0


async def test_workers_start_on_the_first_body_and_stop_when_idle(
        _isolated_data_dir: Path) -> None:
    settings = make_settings(_isolated_data_dir, wal=False, ingest_workers=1,
                             ingest_workers_idle_s=3.0)
    async with open_in_process(settings) as env:
        assert (await _health(env))["workers"]["running"] == 0, "idle at start"
        await _send(env, [llm_span() for _ in range(3)])  # waits for the starting worker
        # a second body (the worker is up now) restarts the 3 s idle clock
        await _send(env, [llm_span() for _ in range(3)])
        workers = (await _health(env))["workers"]
        assert workers == {"configured": 1, "running": 1, "idle_stop_s": 3.0}
        deadline = time.monotonic() + 30
        while (await _health(env))["workers"]["running"] != 0:
            assert time.monotonic() < deadline, "the idle workers never stopped"
            await asyncio.sleep(0.2)


async def test_the_permission_is_read_spans(_isolated_data_dir: Path) -> None:
    settings = make_settings(_isolated_data_dir, auth_required=True, ingest_workers=0)
    async with open_in_process(settings) as env:
        control = env.state.control
        control.create_org("Acme", "acme")
        keys = {role: control.create_api_key("acme", None, f"acme-{role}", role=role).key
                for role in ("ingest", "read")}
        await _send(env, [llm_span() for _ in range(4)], keys["ingest"])
        assert_error_shape(await env.client.get(URL), 401)
        assert_error_shape(await env.client.get(URL, headers={"x-api-key": keys["ingest"]}),
                           403)
        answer = await env.client.get(URL, headers={"x-api-key": keys["read"]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["spans"]["accepted_total"] == 4
