"""The forwarder alone against real OTLP targets on 127.0.0.1: batching, retries, bounds."""

from __future__ import annotations

import gzip
import time
from typing import Any

from forward_target import OtlpHttpTarget, wait_until
from server_payloads import export_request, llm_span

from mentatlab.exporters import ForwardConfig, OtlpForwarder, parse_forward_endpoint
from serve_process import free_port


def _submit(forwarder: OtlpForwarder, request: Any, num_spans: int) -> bool:
    """Queue a request as the server does (its protobuf bytes, nothing refused)."""
    return forwarder.submit_http(request.SerializeToString(), "application/x-protobuf",
                                 None, [], num_spans)


def _forwarder(url: str, **kw: object) -> OtlpForwarder:
    config = ForwardConfig(parse_forward_endpoint(url), **kw)  # type: ignore[arg-type]
    forwarder = OtlpForwarder(config)
    forwarder.start()
    return forwarder


def test_requests_are_merged_into_one_batch(http_target: OtlpHttpTarget) -> None:
    forwarder = _forwarder(http_target.url, linger_s=0.5, compression="gzip",
                           headers={"authorization": "Bearer abc"})
    requests = [export_request([llm_span(), llm_span()], service=f"svc{i}") for i in range(5)]
    for request in requests:
        body = gzip.compress(request.SerializeToString())
        assert forwarder.submit_http(body, "application/x-protobuf", "gzip", [], 2)
    assert len(http_target.received.wait_spans(10)) == 10
    forwarder.close()
    assert len(http_target.received.requests) == 1  # one batch within the linger time
    merged = http_target.received.requests[0]
    assert list(merged.resource_spans) == [r.resource_spans[0] for r in requests]
    headers = http_target.received.headers[0]
    assert headers["authorization"] == "Bearer abc" and headers["content-encoding"] == "gzip"
    stats = forwarder.stats
    assert (stats.spans_sent, stats.requests_sent, stats.batches_sent) == (10, 5, 1)


def test_batch_bytes_splits_batches(http_target: OtlpHttpTarget) -> None:
    request = export_request([llm_span()])
    size = len(request.SerializeToString())
    forwarder = _forwarder(http_target.url, linger_s=5.0, batch_bytes=size * 2)
    for _ in range(6):
        _submit(forwarder, request, 1)
    assert wait_until(lambda: len(http_target.received.requests) == 3, 10)
    forwarder.close()
    assert [len(r.resource_spans) for r in http_target.received.requests] == [2, 2, 2]


def test_retry_after_is_honoured_then_delivered(http_target: OtlpHttpTarget) -> None:
    http_target.fail_next = [(503, "1"), (429, "1"), (502, None)]
    forwarder = _forwarder(http_target.url, linger_s=0.0)
    _submit(forwarder, export_request([llm_span()]), 1)
    assert len(http_target.received.wait_spans(1, 15)) == 1
    forwarder.close()
    times_s = http_target.received.times_s
    assert len(times_s) == 4
    assert times_s[1] - times_s[0] >= 0.95 and times_s[2] - times_s[1] >= 0.95
    assert forwarder.stats.send_errors == 3 and forwarder.stats.spans_sent == 1


def test_non_retryable_answer_fails_the_batch(http_target: OtlpHttpTarget) -> None:
    http_target.fail_next = [(400, None)]
    forwarder = _forwarder(http_target.url, linger_s=0.0)
    _submit(forwarder, export_request([llm_span(), llm_span()]), 2)
    assert wait_until(lambda: forwarder.stats.spans_failed == 2, 10)
    _submit(forwarder, export_request([llm_span()]), 1)
    assert len(http_target.received.wait_spans(1)) == 1
    forwarder.close()
    assert len(http_target.received.times_s) == 2  # the 400 was not retried


def test_queue_full_drops_newest_and_stays_bounded() -> None:
    port = free_port()  # nothing listens: connection refused, retried
    request = export_request([llm_span()])
    size = len(request.SerializeToString())
    forwarder = _forwarder(f"http://127.0.0.1:{port}", linger_s=0.0, queue_bytes=size * 3,
                           retry_max_s=60.0, timeout_s=1.0)
    accepted = [_submit(forwarder, request, 1) for _ in range(20)]
    time.sleep(0.3)
    stats = forwarder.stats
    assert stats.queue_bytes <= size * 3
    # the batch in flight (retrying) holds one or a few, three wait, the rest were dropped
    assert accepted.count(True) >= 3 and accepted[-1] is False
    assert stats.spans_dropped == accepted.count(False) and stats.requests_dropped > 0
    target = OtlpHttpTarget(port).start()
    try:
        assert len(target.received.wait_spans(accepted.count(True), 30)) == accepted.count(True)
        forwarder.close()
        assert stats.spans_sent + stats.spans_dropped == 20 and stats.spans_failed == 0
        assert stats.queue_bytes == 0
    finally:
        target.stop()


def test_close_flushes_within_its_budget(http_target: OtlpHttpTarget) -> None:
    forwarder = _forwarder(http_target.url, linger_s=60.0)
    _submit(forwarder, export_request([llm_span()]), 1)
    time.sleep(0.2)
    assert http_target.received.spans() == []
    forwarder.close(5.0)
    assert len(http_target.received.spans()) == 1


def test_close_gives_up_on_a_dead_target_in_time() -> None:
    forwarder = _forwarder(f"http://127.0.0.1:{free_port()}", linger_s=0.0, timeout_s=0.5)
    for _ in range(3):
        _submit(forwarder, export_request([llm_span()]), 1)
    started_s = time.monotonic()
    forwarder.close(1.0)
    assert time.monotonic() - started_s < 3.0
    assert forwarder.stats.spans_failed == 3 and forwarder.stats.spans_sent == 0
