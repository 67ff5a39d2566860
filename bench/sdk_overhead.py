"""SDK overhead: the same workload untraced, with plain OpenTelemetry, and with MentatLab.

Workload: spans of 1 ms and 10 ms of CPU work (a busy loop on the thread CPU clock, so the
work per span is fixed whatever the machine's load), plus empty spans to isolate the
per-span cost. ``mentatlab_attributed`` runs every span under one parent span that called
``set_agent``/``set_workflow``/``set_attributes`` (seven attribution fields), so each span
inherits them: the cost of attribution propagation (docs/decisions/0005). Each mode runs in a fresh interpreter; spans go through a
BatchSpanProcessor to an exporter that discards them, so export cost is the same for
every traced mode and the network is not measured. CPU is the whole process's CPU time
(``time.process_time``: the program's thread plus the export and sampler threads).

    .venv/bin/python bench/sdk_overhead.py            # all modes, median of 3 runs
    .venv/bin/python bench/sdk_overhead.py --repeat 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

MODES = ("untraced", "otel", "mentatlab_metering_off", "mentatlab_metering_on",
         "mentatlab_attributed")
WORKLOADS_MS = (0.0, 1.0, 10.0)
NUM_SPANS = {0.0: 20_000, 1.0: 1_000, 10.0: 200}


def burn_cpu(duration_ms: float) -> None:
    if duration_ms <= 0:
        return
    end = time.thread_time() + duration_ms / 1000
    while time.thread_time() < end:
        pass


def make_span_factory(mode: str) -> Callable[[str], AbstractContextManager[Any]]:
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    if mode == "untraced":
        return lambda name: nullcontext()
    if mode == "otel":
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(Discard()))
        tracer = provider.get_tracer("bench")
        return lambda name: tracer.start_as_current_span(name)
    import mentatlab

    mentatlab.init(
        exporter=Discard(), resource_metering=mode == "mentatlab_metering_on", service_name="bench"
    )
    if mode == "mentatlab_attributed":
        parent = mentatlab.span("agent")
        parent.__enter__()  # left open: every measured span is its child
        mentatlab.set_agent("triage-agent", version="1.4.0")
        mentatlab.set_workflow("support-flow", version="7")
        mentatlab.set_attributes(run_id="run-1", session_id="session-1", user_id="user-1")
    return lambda name: mentatlab.span(name)


def run_mode(mode: str) -> dict[str, float]:
    span_factory = make_span_factory(mode)
    results: dict[str, float] = {}
    for work_ms in WORKLOADS_MS:
        num_spans = NUM_SPANS[work_ms]
        for _ in range(num_spans // 10):  # warm up
            with span_factory("warm"):
                burn_cpu(work_ms)
        cpu_start_s, wall_start_s = time.process_time(), time.perf_counter()
        for _ in range(num_spans):
            with span_factory("work"):
                burn_cpu(work_ms)
        results[f"cpu_us_per_span_{work_ms:g}ms"] = (
            (time.process_time() - cpu_start_s) / num_spans * 1e6
        )
        results[f"wall_us_per_span_{work_ms:g}ms"] = (
            (time.perf_counter() - wall_start_s) / num_spans * 1e6
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=MODES)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(run_mode(args.mode)))
        return
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for _ in range(args.repeat):
        for mode in MODES:
            out = subprocess.run(
                [sys.executable, __file__, "--mode", mode],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            runs[mode].append(json.loads(out))
    median = {
        mode: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
        for mode, rs in runs.items()
    }
    base = median["untraced"]
    print(
        "| mode | work/span | CPU µs/span | overhead µs/span | overhead % of work |"
        " over plain OTel µs/span |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for work_ms in WORKLOADS_MS:
        key = f"cpu_us_per_span_{work_ms:g}ms"
        for mode in MODES:
            value = median[mode][key]
            overhead_us = value - base[key]
            percent = f"{100 * overhead_us / (work_ms * 1000):.2f}" if work_ms else "—"
            over_otel = (
                "—" if mode in ("untraced", "otel") else (f"{value - median['otel'][key]:.1f}")
            )
            print(
                f"| {mode} | {work_ms:g} ms | {value:.1f} | {overhead_us:.1f} | {percent} |"
                f" {over_otel} |"
            )


if __name__ == "__main__":
    main()
