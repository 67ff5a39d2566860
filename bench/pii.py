"""PII redaction cost: ingest with ``pii_mode=redact`` vs ``off`` on the same build.

Two measurements (issue 17; bench/RESULTS.md "PII redaction"):

* ``--stages``: CPU time (``thread_time``, min of 6 runs, one core, in-process) per stage
  of the whole pipeline (and the Arrow IPC answer) over 2,000 chat spans that carry their messages
  (``_otlp_payload.make_request(content=True)``: a fixed system prompt, a varied user turn,
  an assistant reply; ~1 span in 10 holds an email, phone or card number, most hold
  look-alikes), with ``pii_mode`` off and redact (with ``--policies N``: plus N enforced
  policies, as served).
* default: a real ``mentatctl serve`` on loopback, OTLP/HTTP protobuf, batch 500, fresh ids
  per request (every span is stored), ``--clients`` client processes for ``--seconds`` s,
  the two modes alternated ``--rounds`` times back to back (the machine is shared: compare
  neighbours); plus the server's idle RSS (server + ingest workers) in each mode.

``--policies 10`` compares the issue's full governance load instead: ``pii_mode=redact``
with 10 enforced guardrail policies (the 4 built-ins enabled by default plus 6 custom ones
over tool, model, tokens and names, created through the API before the load) against
``pii_mode=off`` without any policy (``MENTATLAB_POLICY_BUILTINS=false``).

Usage: .venv/bin/python bench/pii.py [--stages] [--seconds 10] [--clients 4] [--workers 2]
[--policies 10] [--rate R]. Bounded in time; targets 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
from _load import run_load, warm_up
from _otlp_payload import make_request
from _server import Server


def stages(total_spans: int = 2000, policies: int = 0) -> None:
    """CPU per stage over content spans; ``policies``: the redact pipeline also evaluates
    that many enforced policies (the served ``--policies`` set, :func:`policy_snapshot`)."""
    from mentatlab.model.schema import spans_to_arrow
    from mentatlab.pipeline.workers import arrow_to_ipc, build_pipeline, use_policies
    from mentatlab.receivers.decode import decode_otlp_protobuf
    from mentatlab.settings import load_settings

    bodies = [make_request(500, seed=i, content=True) for i in range(total_spans // 500)]
    with tempfile.TemporaryDirectory() as tmp:
        pipelines = {mode: build_pipeline(load_settings(data_dir=Path(tmp), pii_mode=mode))
                     for mode in ("off", "redact")}
    if policies:
        use_policies(pipelines["redact"], policy_snapshot(policies))
    best: dict[tuple[str, str], float] = {}
    for _ in range(6):
        took: dict[tuple[str, str], float] = {}
        for body in bodies:
            for mode, pipeline in pipelines.items():
                raw = decode_otlp_protobuf(body).spans
                t0 = time.thread_time()
                spans = pipeline.normalizer(raw).spans
                marks = [("normalize", time.thread_time() - t0)]
                for processor in pipeline.processors:
                    t0 = time.thread_time()
                    spans = processor(spans)
                    marks.append((processor.name, time.thread_time() - t0))
                t0 = time.thread_time()
                table = spans_to_arrow(spans)
                marks.append(("arrow", time.thread_time() - t0))
                for table_processor in pipeline.table_processors:  # price, over columns
                    t0 = time.thread_time()
                    table = table_processor(table)
                    marks.append((table_processor.name, time.thread_time() - t0))
                t0 = time.thread_time()
                arrow_to_ipc(table)
                marks.append(("ipc", time.thread_time() - t0))
                for stage, seconds in marks:
                    took[(mode, stage)] = took.get((mode, stage), 0.0) + seconds
        best = {k: min(v, best.get(k, v)) for k, v in took.items()}
    for mode in pipelines:
        total = sum(v for (m, _), v in best.items() if m == mode)
        print(f"{mode}{f' + {policies} policies' if policies and mode == 'redact' else ''}: "
              f"{1e6 * total / total_spans:.1f} µs/span (CPU, one core; decode excluded): "
              + ", ".join(f"{stage} {1e6 * v / total_spans:.1f}"
                          for (m, stage), v in best.items() if m == mode and v > 0))
    print(f"load average {os.getloadavg()}")


def policy_snapshot(count: int) -> Any:
    """The enabled built-ins plus :data:`CUSTOM_POLICIES`, ``count`` rules in all."""
    import orjson

    from mentatlab.governance.policies import PolicyRule, PolicySnapshot
    from mentatlab.governance.policy_rules import BUILTIN_POLICIES

    rules = [PolicyRule(pid, 1, spec.name, spec.condition, spec.action, spec.scope,
                        spec.scope_value, "", spec.severity, orjson.dumps(spec.params).decode())
             for pid, spec in BUILTIN_POLICIES if spec.enabled]
    rules += [PolicyRule(f"bench.{n}", 1, name, condition, action)
              for n, (name, action, condition) in enumerate(CUSTOM_POLICIES)]
    assert len(rules) >= count, f"Expected at most {len(rules)} policies"
    return PolicySnapshot.of(rules[:count])


def _tree_rss(pid: int) -> int:
    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])


def _tree_cpu_s(pid: int) -> float:
    return sum(_split_cpu_s(pid))


def _split_cpu_s(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of the server process and of its children (workers)."""
    proc = psutil.Process(pid)
    return (sum(proc.cpu_times()[:2]),
            sum(sum(p.cpu_times()[:2]) for p in proc.children(recursive=True)))


CUSTOM_POLICIES = (
    ("no shell", "block", 'span.tool_name == "shell"'),
    ("huge prompt", "alert", "span.input_tokens > 200000"),
    ("retired model", "log", 'span.request_model == "gpt-3.5-turbo-0301"'),
    ("payments tool", "log", 'span.tool_name in ["refund", "charge", "payout"]'),
    ("debug spans", "log", 'span.name.startsWith("debug ")'),
    ("long output", "log", "span.output_tokens > 8000"),
)
"""The 6 custom policies of ``--policies`` (name, action, CEL condition)."""


def _create_policies(url: str, count: int) -> None:
    enforced = [p for p in httpx.get(f"{url}/api/v1/policies", timeout=30).json()["policies"]
                if p["enforced"]]
    for name, action, condition in CUSTOM_POLICIES[:max(0, count - len(enforced))]:
        made = httpx.post(f"{url}/api/v1/policies", timeout=30,
                          json={"name": name, "action": action, "condition": condition})
        assert made.status_code == 201, made.text
    now = [p for p in httpx.get(f"{url}/api/v1/policies", timeout=30).json()["policies"]
           if p["enforced"]]
    assert len(now) == count, f"Expected {count} enforced policies, got {len(now)}"


def serve_run(mode: str, args: argparse.Namespace) -> dict[str, float]:
    env = {"MENTATLAB_INGEST_WORKERS": str(args.workers), "MENTATLAB_PII_MODE": mode,
           "MENTATLAB_LOG_LEVEL": "INFO"}
    if args.policies:
        env["MENTATLAB_POLICY_BUILTINS"] = "false" if mode == "off" else "true"
    with tempfile.TemporaryDirectory() as tmp, Server(Path(tmp) / "data", env) as srv:
        log = Path(tmp) / "server.log"
        warm_up(srv.url, content=True)  # the workers start on the first body
        deadline = time.monotonic() + 60
        while args.workers and f"Started {args.workers} ingest worker" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
        if args.policies and mode != "off":
            _create_policies(srv.url, args.policies)
        time.sleep(3)
        rss_idle = _tree_rss(srv.pid)
        cpu0 = _split_cpu_s(srv.pid)
        row = run_load(srv.url, 500, args.clients, args.seconds, args.rate, unique=True,
                       content=True)
        cpu1 = _split_cpu_s(srv.pid)
        row["server_cpu_cores"] = (sum(cpu1) - sum(cpu0)) / args.seconds
        acked = max(row["acked_spans"], 1)
        row["main_us"] = 1e6 * (cpu1[0] - cpu0[0]) / acked
        row["workers_us"] = 1e6 * (cpu1[1] - cpu0[1]) / acked
        row["rss_idle_mib"] = rss_idle / 2**20
        row["load_average"] = os.getloadavg()[0]
        return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stages", action="store_true")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--policies", type=int, default=0)
    ap.add_argument("--rate", type=float, default=0.0,
                    help="requests/s per client (0: as fast as answered); equal rates "
                         "compare the modes' CPU per span at the same throughput")
    args = ap.parse_args()
    if args.stages:
        stages(policies=args.policies)
        return
    print(f"load average before: {os.getloadavg()}, workers={args.workers}, "
          f"policies={args.policies}", flush=True)
    print("| round | pii_mode | spans/s | p50 ms | p99 ms | errors | server CPU (cores) "
          "| spans per server CPU-s | server process µs/span | workers µs/span "
          "| idle RSS (MiB, server + workers) | load avg (1 min) |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows: dict[str, list[dict[str, float]]] = {"off": [], "redact": []}
    for n in range(args.rounds):
        for mode in ("off", "redact"):
            r = serve_run(mode, args)
            r["per_cpu_s"] = r["spans_per_s"] / max(r["server_cpu_cores"], 1e-9)
            rows[mode].append(r)
            print(f"| {n + 1} | {mode} | {r['spans_per_s']:,.0f} | {r['p50_ms']:.0f} | "
                  f"{r['p99_ms']:.0f} | {r['errors']} | {r['server_cpu_cores']:.2f} | "
                  f"{r['per_cpu_s']:,.0f} | {r['main_us']:.0f} | {r['workers_us']:.0f} | "
                  f"{r['rss_idle_mib']:.0f} | {r['load_average']:.2f} |",
                  flush=True)
    for key, label in (("spans_per_s", "throughput"), ("per_cpu_s", "spans per CPU-s")):
        off = statistics.median(r[key] for r in rows["off"])
        on = statistics.median(r[key] for r in rows["redact"])
        print(f"median {label}: off {off:,.0f}, redact {on:,.0f} ({100 * (on / off - 1):+.0f}%)")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
