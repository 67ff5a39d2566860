"""Compressed answers (server/compression.py) on a real server: static assets, pages and JSON
answer gzip when asked, are cached as documented, and the OTLP receiver (gzip request
bodies) and the WebSocket live tail still work beside the middleware."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import httpx
from server_payloads import encode, export_request, llm_span, new_trace_id
from serverkit import LiveServer
from websockets.sync.client import connect

from mentatlab.server.compression import (
    COMPRESS_MIN_BYTES,
    OWN_CACHE_CONTROL,
    VENDOR_CACHE_CONTROL,
)

STATIC = Path(__file__).resolve().parents[2] / "src" / "mentatlab" / "ui" / "static"
ECHARTS = "/static/vendor/echarts/echarts.min.js"


def _raw_get(url: str, **headers: str) -> tuple[httpx.Response, bytes]:
    """GET without httpx's own Accept-Encoding; the answer and its body as sent (undecoded)."""
    with httpx.Client(timeout=30) as client:
        request = client.build_request("GET", url, headers=headers)
        if "accept-encoding" not in {k.lower() for k in headers}:
            del request.headers["accept-encoding"]
        response = client.send(request, stream=True)
        try:
            return response, b"".join(response.iter_raw())
        finally:
            response.close()


def test_echarts_answers_gzip_when_asked_and_is_cached_a_day(live_server: LiveServer) -> None:
    original = (STATIC / "vendor" / "echarts" / "echarts.min.js").read_bytes()
    with httpx.Client(timeout=30) as client:  # decodes for us: the content is the file
        response = client.get(live_server.url + ECHARTS, headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert response.content == original
    wire = int(response.headers["content-length"])
    assert wire < len(original) / 2, f"gzip should at least halve ECharts, got {wire} bytes"
    assert response.headers["cache-control"] == VENDOR_CACHE_CONTROL
    assert "accept-encoding" in response.headers["vary"].lower()
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-type"].startswith(("text/javascript",
                                                        "application/javascript"))
    # the same ETag revalidates with a 304 and no body
    with httpx.Client(timeout=30) as client:
        again = client.get(live_server.url + ECHARTS, headers={
            "Accept-Encoding": "gzip", "If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_without_accept_encoding_the_file_is_sent_as_it_is(live_server: LiveServer) -> None:
    response, body = _raw_get(live_server.url + "/static/chart.js")
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert body.startswith(b"//") or b"function" in body  # the script itself
    assert response.headers["cache-control"] == OWN_CACHE_CONTROL
    gz, wire = _raw_get(live_server.url + "/static/chart.js", **{"Accept-Encoding": "gzip, br"})
    assert gz.headers["content-encoding"] == "gzip"
    # (compared with each other: other work may edit chart.js while this runs)
    assert len(wire) < len(body) and gzip.decompress(wire) == body


def test_pages_and_json_answer_gzip_small_answers_do_not(live_server: LiveServer) -> None:
    with httpx.Client(timeout=30) as client:
        page = client.get(live_server.url + "/", headers={"Accept-Encoding": "gzip"})
        assert page.status_code == 200 and "<html" in page.text
        assert page.headers["content-encoding"] == "gzip"
        assert "content-security-policy" in page.headers  # the page headers survive
        spec = client.get(live_server.url + "/openapi.json", headers={"Accept-Encoding": "gzip"})
        assert spec.headers["content-encoding"] == "gzip" and spec.json()["openapi"]
        ready = client.get(live_server.url + "/readyz", headers={"Accept-Encoding": "gzip"})
        assert ready.status_code == 200 and len(ready.content) < COMPRESS_MIN_BYTES
        assert "content-encoding" not in ready.headers


def test_otlp_gzip_bodies_and_the_live_socket_still_work(live_server: LiveServer) -> None:
    ws_url = live_server.url.replace("http://", "ws://") + "/api/v1/live"
    with connect(ws_url, open_timeout=10,
                 additional_headers={"Accept-Encoding": "gzip"}) as ws:
        assert json.loads(ws.recv(timeout=10))["ok"]
        trace = new_trace_id()
        body, headers = encode(export_request([llm_span(trace)]), gzipped=True)
        assert headers.get("content-encoding") == "gzip"
        answer = httpx.post(f"{live_server.url}/v1/traces", content=body,
                            headers={**headers, "Accept-Encoding": "gzip"}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/x-protobuf"
        assert "content-encoding" not in answer.headers  # an empty ExportTraceServiceResponse
        assert json.loads(ws.recv(timeout=10))["trace_id"] == trace.hex()
    # a refused OTLP body still answers its own error, readable through the middleware
    bad = httpx.post(f"{live_server.url}/v1/traces", content=b"not gzip",
                     headers={"content-type": "application/x-protobuf",
                              "content-encoding": "gzip", "Accept-Encoding": "gzip"}, timeout=30)
    assert 400 <= bad.status_code < 500
