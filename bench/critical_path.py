"""Time the critical path of one large trace (issue 16: 5,000 spans in under 100 ms).

    .venv/bin/python bench/critical_path.py [--spans 5000] [--repeat 20]

The trace is an agent run shaped like real ones: a root, sequential steps, each with an
LLM call and a fan-out of parallel tool calls (some with their own LLM call), a few
children skewed outside their parent, a few orphans and a few open spans; seeded, so
every run times the same trace. Times :func:`resolve_parents` plus
:func:`compute_critical_path` (what ``GET /api/v1/traces/{trace_id}`` adds per request),
median and worst of ``--repeat`` runs after a warm-up.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from mentatlab.analytics.critical_path import compute_critical_path, resolve_parents

_MS = 1_000_000


def build_trace(num_spans: int, seed: int = 16) -> tuple[list[str], list[str], list[int],
                                                          list[int], list[bool]]:
    """Columns of one trace of ``num_spans`` spans: (span id, parent id, start, end, open)."""
    rng = random.Random(seed)
    ids: list[str] = []
    parents: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    opened: list[bool] = []

    def add(parent: str, start: int, end: int, is_open: bool = False) -> str:
        span_id = f"{len(ids):016x}"
        ids.append(span_id)
        parents.append(parent)
        starts.append(start)
        ends.append(start if is_open else end)
        opened.append(is_open)
        return span_id

    root = add("", 0, 0)
    t = 0
    while len(ids) <= num_spans - 2:
        step_start = t
        step = add(root, step_start, 0)
        step_row = len(ids) - 1
        llm_end = step_start + rng.randint(200, 2000) * _MS
        add(step, step_start + _MS, llm_end)
        fan_end = llm_end
        for _ in range(rng.randint(3, 12)):
            if len(ids) >= num_spans:
                break
            skew = rng.choice((0, 0, 0, -5 * _MS, 7 * _MS))  # clock skew between services
            tool_start = llm_end + rng.randint(0, 50) * _MS + skew
            tool_end = tool_start + rng.randint(10, 3000) * _MS
            tool = add(step if rng.random() > 0.01 else f"{rng.getrandbits(64):016x}",
                       tool_start, tool_end, is_open=rng.random() < 0.002)
            if rng.random() < 0.3 and len(ids) < num_spans:
                add(tool, tool_start + _MS, tool_end - _MS)
            fan_end = max(fan_end, tool_end)
        ends[step_row] = fan_end + 2 * _MS
        t = fan_end + 5 * _MS
    if len(ids) < num_spans:  # one short: an instantaneous event at the end
        add(root, t, t)
    ends[0] = t
    return ids, parents, starts, ends, opened


def main() -> None:
    """Print the timing of the critical path of one synthetic trace."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    ids, parents, starts, ends, opened = build_trace(args.spans)

    def run() -> int:
        parent = resolve_parents(ids, parents)
        return len(compute_critical_path(parent, starts, ends, opened).rows)

    path_len = run()  # warm-up
    times_ms = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        run()
        times_ms.append((time.perf_counter() - t0) * 1000)
    print(f"critical path of a {len(ids)}-span trace ({path_len} spans on the path): "
          f"median {statistics.median(times_ms):.1f} ms, worst {max(times_ms):.1f} ms "
          f"over {args.repeat} runs (target < 100 ms)")


if __name__ == "__main__":
    main()
