"""Helpers of the multi-node tests: start `mentatctl serve` nodes on one span store and one
control store, send OTLP/JSON, read metrics."""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from serve_process import free_port, start_serve, stop, wait_ready


@dataclass
class Node:
    """One running `mentatctl serve` process."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample of ``/metrics`` (0 when absent)."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        want = ",".join(f'{k}="{v}"' for k, v in labels.items())
        pattern = rf"^{re.escape(name)}(?:\{{{re.escape(want)}\}})? (\S+)$" if want else (
            rf"^{re.escape(name)} (\S+)$")
        match = re.search(pattern, text, re.M)
        return float(match.group(1)) if match else 0.0


def wait_for(predicate: Any, timeout_s: float, what: str) -> None:
    """Poll ``predicate`` every 0.2 s until true; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def node_env(span_store: str, control_store: str, **extra: str) -> dict[str, str]:
    """Environment of a stateless node: shared stores, quick background jobs."""
    return {"MENTATLAB_SPAN_STORE": span_store, "MENTATLAB_CONTROL_STORE": control_store,
            "MENTATLAB_INGEST_WORKERS": "0", "MENTATLAB_RESOLVE_INTERVAL_S": "0.2",
            "MENTATLAB_LIVE_POLL_INTERVAL_S": "0.2", "MENTATLAB_EVENT_PAIR_TIMEOUT_S": "3",
            **extra}


def _spawn(data_dir: Path, env: dict[str, str], grpc_port: int,
           args: list[str] | None) -> Node:
    port = free_port()
    log = data_dir / "server.log"
    proc = start_serve(data_dir, port, grpc_port=grpc_port, log=log,
                       env={**env, "MENTATLAB_DATA_DIR": str(data_dir)}, args=args)
    return Node(proc, f"http://127.0.0.1:{port}", log)


def start_nodes(data_dirs: list[Path], env: dict[str, str]) -> list[Node]:
    """Start one node per folder at the same moment (their schema migrations race), then
    wait until every one is ready."""
    nodes = [_spawn(d, env, 0, None) for d in data_dirs]
    try:
        for node in nodes:
            wait_ready(node.proc, node.url, node.log)
    except BaseException:
        for node in nodes:
            stop(node.proc)
        raise
    return nodes


def start_node(data_dir: Path, env: dict[str, str], *, grpc_port: int = 0,
               args: list[str] | None = None) -> Node:
    """Start a node on a free port and wait until it is ready."""
    node = _spawn(data_dir, env, grpc_port, args)
    try:
        wait_ready(node.proc, node.url, node.log)
    except BaseException:
        stop(node.proc)
        raise
    return node


def _attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def otlp_json(trace_id: str, spans: int, project: str = "scale-out") -> dict[str, Any]:
    """An OTLP/JSON request of ``spans`` GenAI chat spans of one trace, ending now."""
    now_ns = time.time_ns()
    return {"resourceSpans": [{
        "resource": {"attributes": [_attr("service.name", "scale-out-test")]},
        "scopeSpans": [{"scope": {"name": "test"}, "spans": [{
            "traceId": trace_id, "spanId": f"{i + 1:016x}", "name": "chat gpt-4o", "kind": 3,
            "startTimeUnixNano": str(now_ns - 2_000_000_000 + i),
            "endTimeUnixNano": str(now_ns - 1_000_000_000 + i),
            "attributes": [_attr("mentat.project_id", project),
                           _attr("gen_ai.system", "openai"),
                           _attr("gen_ai.operation.name", "chat"),
                           _attr("gen_ai.request.model", "gpt-4o"),
                           _attr("gen_ai.usage.input_tokens", 1000),
                           _attr("gen_ai.usage.output_tokens", 100)],
        } for i in range(spans)]}]}]}


def stored_traces(url: str, project: str) -> set[str]:
    """Trace ids of ``project`` the node reads from the shared store (last 7 days).

    A node's answers include at once what it acknowledged itself; spans acknowledged by
    other nodes (or held up by an outage) appear once the elected node's resolver has
    passed them: compare with :func:`wait_for`.
    """
    seen: set[str] = set()
    offset = 0
    while True:
        page = httpx.get(f"{url}/api/v1/traces", params={
            "filter": f"project_id={project}", "limit": 1000, "offset": offset}, timeout=60)
        assert page.status_code == 200, page.text
        traces = page.json()["traces"]
        seen.update(t["trace_id"] for t in traces)
        if len(traces) < 1000:
            return seen
        offset += 1000
