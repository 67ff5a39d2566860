"""OTLP/HTTP protobuf load from client processes, shared by bench/ingest.py and scale_out.py.

``grpc://host:port`` URLs send the same bodies as OTLP/gRPC ``Export`` calls instead.

Each client process posts bodies of ``batch`` spans to one or more nodes in turn
(round-robin, client ``k`` starting at node ``k``), bounded by time and by request count,
and reports spans acknowledged (2xx), status counts, request latencies and its own CPU
time. With ``unique=True`` every request carries fresh span and trace ids
(:class:`_otlp_payload.UniqueBodies`), so nothing is dropped by the server's dedup and the
stored count can be checked against the acknowledged count; with ``unique=False`` the 20
pre-built bodies are re-sent as they are (bench/ingest.py's original load: after the
first 20 requests per client every span is a duplicate the server drops before insert).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections import Counter
from typing import Any

import httpx
from _otlp_payload import UniqueBodies, make_request

HEADERS = {"Content-Type": "application/x-protobuf"}


def _client(index: int, urls: list[str], batch: int, seconds: float, rate_rps: float,
            max_requests: int, unique: bool, out: mp.Queue,  # type: ignore[type-arg]
            agent_traces: bool = False, headers: dict[str, str] | None = None,
            content: bool = False) -> None:
    if unique:
        bodies = UniqueBodies(batch, client=index, agent_traces=agent_traces, content=content)
        next_body = bodies.next
    else:
        fixed = [make_request(batch, seed=i, content=content) for i in range(20)]
        counter = iter(range(10**12))

        def next_body() -> bytes:
            return fixed[next(counter) % len(fixed)]
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    acked = 0
    interval = 1.0 / rate_rps if rate_rps else 0.0
    cpu0 = os.times()
    sent_headers = {**HEADERS, **(headers or {})}
    post = _grpc_poster(headers) if urls[0].startswith("grpc://") else None
    with httpx.Client(timeout=30) as client:
        end = time.monotonic() + seconds
        next_t = time.monotonic()
        i = 0
        while time.monotonic() < end and i < max_requests:
            if interval:
                sleep_s = next_t - time.monotonic()
                if sleep_s > 0:
                    time.sleep(sleep_s)
                next_t += interval
            body = next_body()
            url = urls[(index + i) % len(urls)]
            t0 = time.perf_counter()
            try:
                status = post(url, body) if post else client.post(
                    f"{url}/v1/traces", content=body, headers=sent_headers).status_code
            except httpx.HTTPError:
                status = 0  # no answer (timeout, reset): not acknowledged
            latencies.append(time.perf_counter() - t0)
            i += 1
            statuses[status] += 1
            if 200 <= status < 300:
                acked += batch
            elif status == 503:
                time.sleep(0.05)  # an exporter would honour Retry-After; keep the load going
    cpu1 = os.times()
    cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    out.put((acked, dict(statuses), latencies, cpu_s))


_GRPC_STATUS = {"OK": 200, "INVALID_ARGUMENT": 400, "UNAUTHENTICATED": 401,
                "RESOURCE_EXHAUSTED": 429, "UNAVAILABLE": 503}
"""gRPC codes as the HTTP statuses this module counts (anything else: 0, no answer)."""


def _grpc_poster(headers: dict[str, str] | None) -> Any:
    """A ``post(url, body) -> status`` for ``grpc://host:port`` URLs: the request's bytes
    as sent on the wire (no client-side serialization), API key as metadata."""
    import grpc

    from mentatlab.receivers.otlp_grpc import TRACE_SERVICE

    channels: dict[str, Any] = {}
    metadata = tuple((k.lower(), v) for k, v in (headers or {}).items())

    def post(url: str, body: bytes) -> int:
        export = channels.get(url)
        if export is None:
            channel = grpc.insecure_channel(url.removeprefix("grpc://"), options=[
                ("grpc.max_send_message_length", 64 * 1024 * 1024)])
            export = channels[url] = channel.unary_unary(f"/{TRACE_SERVICE}/Export")
        try:
            export(body, timeout=30, metadata=metadata)
        except grpc.RpcError as exc:
            return _GRPC_STATUS.get(exc.code().name, 0)
        return 200

    return post


def warm_up(url: str, *, content: bool = False, headers: dict[str, str] | None = None,
            timeout_s: float = 60.0) -> None:
    """Post one 10-span body and wait for its 2xx: the server's ingest workers start on the
    first OTLP/HTTP body (docs/decisions/0024), so a bench that times ingest sends it first.

    Raises:
        AssertionError: no 2xx within ``timeout_s``.
    """
    body = make_request(10, seed=2**31 - 1, content=content)
    answer = httpx.post(f"{url}/v1/traces", content=body, timeout=timeout_s,
                        headers={**HEADERS, **(headers or {})})
    assert answer.is_success, (answer.status_code, answer.text)


def run_load(urls: str | list[str], batch: int, clients: int, seconds: float,
             rate_rps_per_client: float = 0.0, *, max_requests: int = 10**9,
             unique: bool = False, agent_traces: bool = False,
             headers: dict[str, str] | None = None, content: bool = False) -> dict[str, Any]:
    """Drive ``clients`` processes against ``urls`` for ``seconds`` s; return the figures.

    ``headers`` are added to every request (an API key); ``content``: spans carry their
    chat messages (:func:`_otlp_payload.make_request`).

    Returns:
        dict with ``batch``, ``clients``, ``spans_per_s`` (acknowledged spans over the
        load window minus 0.5 s of process start), ``acked_spans``, ``requests``,
        ``errors`` (non-2xx), ``status`` (code → count; 0 = no answer), ``p50_ms``,
        ``p99_ms`` (all requests), ``elapsed_s`` and ``client_cpu_s`` (CPU of the clients).
    """
    url_list = [urls] if isinstance(urls, str) else list(urls)
    q: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    procs = [
        mp.Process(target=_client, args=(k, url_list, batch, seconds, rate_rps_per_client,
                                         max_requests, unique, q, agent_traces, headers,
                                         content))
        for k in range(clients)
    ]
    t0 = time.monotonic()
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.monotonic() - t0
    lat = sorted(x for r in results for x in r[2])
    spans = sum(r[0] for r in results)
    status: Counter[int] = Counter()
    for r in results:
        status.update(r[1])
    return {
        "batch": batch,
        "clients": clients,
        "spans_per_s": spans / max(elapsed - 0.5, 0.1),
        "acked_spans": spans,
        "requests": len(lat),
        "errors": sum(n for code, n in status.items() if not 200 <= code < 300),
        "status": dict(status),
        "p50_ms": 1000 * lat[len(lat) // 2] if lat else float("nan"),
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan"),
        "elapsed_s": elapsed,
        "client_cpu_s": sum(r[3] for r in results),
    }
