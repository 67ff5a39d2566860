"""`mentatctl serve` (a real process, ingest worker processes on) flushes forwarding on SIGTERM."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from forward_target import OtlpHttpTarget
from server_payloads import encode, export_request, llm_span

from serve_process import free_port, start_serve, stop, wait_ready


def test_queue_is_flushed_on_graceful_shutdown(tmp_path: Path,
                                               http_target: OtlpHttpTarget) -> None:
    port, log = free_port(), tmp_path / "serve.log"
    proc = start_serve(tmp_path / "data", port, log=log, env={
        "MENTATLAB_FORWARD_OTLP_ENDPOINT": http_target.url,
        "MENTATLAB_FORWARD_LINGER_S": "120",  # nothing leaves before shutdown
        "MENTATLAB_INGEST_WORKERS": "1"})
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(proc, url, log)
        sent = []
        for i in range(4):
            request = export_request([llm_span(), llm_span()], service=f"svc{i}")
            body, headers = encode(request, gzipped=i % 2 == 1)
            assert httpx.post(f"{url}/v1/traces", content=body, headers=headers,
                              timeout=30).status_code == 200
            sent.extend(request.resource_spans[0].scope_spans[0].spans)
        # the first body started the worker and every body went to it (the path where only
        # the worker decodes)
        assert "Started 1 ingest worker" in log.read_text(), log.read_text()[-2000:]
        time.sleep(0.5)
        assert http_target.received.spans() == []
    finally:
        stop(proc)  # SIGTERM: graceful
    assert "Application shutdown complete" in log.read_text(), log.read_text()[-2000:]
    got = http_target.received.spans()
    assert sorted(s.SerializeToString() for s in got) == sorted(
        s.SerializeToString() for s in sent)
    assert len(http_target.received.requests) == 1  # one batch: the flush
