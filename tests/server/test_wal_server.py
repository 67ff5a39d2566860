"""The server with the write-ahead log on (decision 0022): ingest answered before the
insert, visible shortly after, and 503 with ``Retry-After`` once the log's limit is hit."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from server_payloads import encode, export_request, llm_span, new_trace_id
from serverkit import make_settings, open_in_process

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "storage"))

from spanfactory import GatedStore, make_table  # noqa: E402


def trace_body(spans: int = 50) -> tuple[str, bytes, dict[str, str]]:
    trace = new_trace_id()
    body, headers = encode(export_request([llm_span(trace) for _ in range(spans)]))
    return trace.hex(), body, headers


async def test_acknowledged_before_the_insert_then_queryable(_isolated_data_dir: Path) -> None:
    settings = make_settings(_isolated_data_dir, wal=True, ingest_workers=0)
    async for app in open_in_process(settings):
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
    async for app in open_in_process(settings):
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
    async for app in open_in_process(settings):
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
