"""OTLP/HTTP ingest through real worker processes into a real chDB store."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from mentatlab.errors import DecodeError
from mentatlab.pipeline.workers import build_pipeline
from mentatlab.receivers.otlp_http import HttpLimits
from mentatlab.server.components import open_store, open_writer
from mentatlab.server.ingest import Ingestor
from mentatlab.server.metrics import ServerMetrics
from mentatlab.settings import load_settings

LIMITS = HttpLimits(1 << 24, 1 << 26)
PROTOBUF = "application/x-protobuf"


@pytest.mark.parametrize("workers", [0, 1])
async def test_body_is_committed_with_and_without_workers(otlp_body: bytes, tmp_path: Path,
                                                          workers: int) -> None:
    settings = dataclasses.replace(load_settings(data_dir=tmp_path / "data"),
                                   ingest_workers=workers)
    store = open_store(settings)
    writer = open_writer(settings, store)
    ingestor = Ingestor(build_pipeline(settings), writer, ServerMetrics(), settings)
    try:
        await ingestor.start()
        if workers:
            assert ingestor._warmup is not None  # noqa: SLF001
            await ingestor._warmup  # noqa: SLF001
        assert ingestor._ready == bool(workers)  # noqa: SLF001
        rejected, outcome = await ingestor.ingest_otlp_body(
            otlp_body, PROTOBUF, None, LIMITS, {"project_id": "from-key"})
        assert (rejected, outcome.accepted, outcome.rejected) == ([], 200, [])
        with pytest.raises(DecodeError):
            await ingestor.ingest_otlp_body(b"\xff\xff", PROTOBUF, None, LIMITS)
        # acknowledged = logged (the write-ahead log is on by default): insert it now
        assert await asyncio.to_thread(writer.flush, 60)
        rows = store.query_arrow(
            "SELECT count() AS n, uniqExact(project_id) AS p, sum(token_cost) > 0 AS priced "
            "FROM spans", {}).to_pylist()
        assert rows == [{"n": 200, "p": 1, "priced": True}]
    finally:
        await ingestor.close()
        writer.close()
        store.close()

