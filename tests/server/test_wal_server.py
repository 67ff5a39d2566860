"""The server with the write-ahead log on (decision 0022): ingest answered before the
insert, visible shortly after, 503 with ``Retry-After`` once the log's limit is hit, and
``/readyz`` 503 while inserts keep failing or hang."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from server_payloads import encode, export_request, llm_span, new_trace_id
from serverkit import make_settings, open_in_process

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "storage"))

from spanfactory import GatedStore, make_table  # noqa: E402

from mentatlab.errors import StoreUnavailable  # noqa: E402
from mentatlab.server.routes import health  # noqa: E402


class FailingStore(GatedStore):
    """A real store whose inserts fail until ``gate`` is set, then go through."""

    def append_batch(self, table: pa.Table) -> None:
        self.entered.set()
        if not self.gate.is_set():
            raise StoreUnavailable("insert refused on purpose")
        self.batch_rows.append(table.num_rows)
        self.inner.append_batch(table)


def trace_body(spans: int = 50) -> tuple[str, bytes, dict[str, str]]:
    trace = new_trace_id()
    body, headers = encode(export_request([llm_span(trace) for _ in range(spans)]))
    return trace.hex(), body, headers


async def test_acknowledged_before_the_insert_then_queryable(_isolated_data_dir: Path) -> None:
    settings = make_settings(_isolated_data_dir, wal=True, ingest_workers=0)
    async with open_in_process(settings) as app:
        writer = app.state.writer
        gated = GatedStore(writer.store)
        writer.store = gated
        trace, body, headers = trace_body()
        answer = await app.client.post("/v1/traces", content=body, headers=headers)
        assert answer.status_code == 200
        stored = gated.inner.query_arrow("SELECT count() AS n FROM spans")
        assert stored.column("n")[0].as_py() == 0  # answered before the insert
        assert await asyncio.to_thread(gated.entered.wait, 30)  # the inserter is held
        reading = asyncio.ensure_future(app.client.get(f"/api/v1/traces/{trace}"))
        await asyncio.sleep(0.2)
        assert not reading.done()  # the read barrier waits for the acknowledged spans
        gated.gate.set()
        answer = await reading
        assert answer.status_code == 200 and answer.json()["num_spans"] == 50


async def test_a_full_log_answers_503_with_retry_after(_isolated_data_dir: Path) -> None:
    settings = make_settings(_isolated_data_dir, wal=True, ingest_workers=0,
                             wal_max_memory_bytes=1024 * 1024, retry_after_s=3)
    async with open_in_process(settings) as app:
        writer = app.state.writer
        gated = GatedStore(writer.store)
        writer.store = gated
        statuses: list[int] = []
        refused = None
        for _ in range(300):  # 50 spans each: the 1 MiB limit comes within a few dozen
            _, body, headers = trace_body()
            answer = await app.client.post("/v1/traces", content=body, headers=headers)
            statuses.append(answer.status_code)
            if answer.status_code != 200:
                refused = answer
                break
        assert refused is not None, "the log never filled"
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "3"
        assert statuses[:-1] and set(statuses[:-1]) == {200}
        metrics = (await app.client.get("/metrics")).text
        assert 'mentatlab_spans_rejected_total{reason="backpressure",receiver="otlp_http"} 50.0' \
            in metrics
        pending = next(line for line in metrics.splitlines()
                       if line.startswith("mentatlab_wal_pending_bytes "))
        assert float(pending.split()[1]) > 0
        gated.gate.set()
        assert await asyncio.to_thread(writer.flush, 30)
        _, body, headers = trace_body()
        assert (await app.client.post("/v1/traces", content=body,
                                      headers=headers)).status_code == 200


async def test_an_erasure_reaches_spans_still_in_the_log(_isolated_data_dir: Path) -> None:
    settings = make_settings(_isolated_data_dir, wal=True, ingest_workers=0)
    async with open_in_process(settings) as app:
        writer = app.state.writer
        gated = GatedStore(writer.store)
        writer.store = gated
        assert await writer.submit(make_table(range(5), user_id="dana@example.com")) == 5
        erasing = asyncio.ensure_future(app.client.post(
            "/api/v1/governance/erasures", json={"user_id": "dana@example.com"}))
        assert await asyncio.to_thread(gated.entered.wait, 30)
        assert list(writer.wal.directory.glob("wal-*.log"))  # only the log holds them
        gated.gate.set()
        answer = await erasing
        assert answer.status_code == 200, answer.text
        assert answer.json()["receipt"]["counts"]["spans"] == 5
        left = gated.inner.query_arrow(
            "SELECT count() AS n FROM spans WHERE user_id = 'dana@example.com'")
        assert left.column("n")[0].as_py() == 0
        assert not list(writer.wal.directory.glob("wal-*.log"))  # nor does the log now


async def wait_for_failures(writer: Any, num_failures: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while writer.insert_failures < num_failures:
        assert time.monotonic() < deadline, f"fewer than {num_failures} failed inserts"
        await asyncio.sleep(0.05)


async def test_readyz_answers_503_while_inserts_keep_failing(_isolated_data_dir: Path) -> None:
    settings = make_settings(_isolated_data_dir, wal=True, ingest_workers=0)
    async with open_in_process(settings) as app:
        writer = app.state.writer
        failing = FailingStore(writer.store)
        writer.store = failing
        assert (await app.client.get("/readyz")).json()["checks"]["inserter"] == "ok"
        assert await writer.submit(make_table(range(5))) == 5  # logged: acknowledged
        await wait_for_failures(writer, health.INSERT_FAILURES_NOT_READY)
        ready = await app.client.get("/readyz")
        assert ready.status_code == 503, ready.text
        body = ready.json()
        assert body["ok"] is False and body["status"] == 503
        [error] = body["errors"]
        assert error["field"] == "inserter"
        assert "failed" in error["reason"] and "in a row" in error["reason"]
        assert "insert refused on purpose" in error["reason"]
        failing.gate.set()  # the store accepts inserts again
        assert await asyncio.to_thread(writer.flush, 30)
        ready = await app.client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["inserter"] == "ok"
        stored = failing.inner.query_arrow("SELECT count() AS n FROM spans")
        assert stored.column("n")[0].as_py() == 5  # retried, never dropped


async def test_readyz_answers_503_while_an_insert_hangs(_isolated_data_dir: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "INSERT_WAIT_NOT_READY_S", 0.5)
    settings = make_settings(_isolated_data_dir, wal=True, ingest_workers=0)
    async with open_in_process(settings) as app:
        writer = app.state.writer
        gated = GatedStore(writer.store)
        writer.store = gated
        assert await writer.submit(make_table(range(5))) == 5
        assert await asyncio.to_thread(gated.entered.wait, 30)  # the insert hangs
        await asyncio.sleep(0.6)
        ready = await app.client.get("/readyz")
        assert ready.status_code == 503, ready.text
        [error] = ready.json()["errors"]
        assert error["field"] == "inserter" and "has waited" in error["reason"]
        assert writer.insert_failures == 0  # stalled, not failing
        gated.gate.set()
        assert await asyncio.to_thread(writer.flush, 30)
        assert (await app.client.get("/readyz")).status_code == 200
