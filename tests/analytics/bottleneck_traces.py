"""Constructed traces for the bottleneck and settle tests, critical paths worked by hand.

Range ``[10:00, 12:00)`` (2 h); previous period ``[08:00, 10:00)``. Times in ms from
each trace's start.

Trace 1 (acme, 10:05): ``run`` (agent planner) [0, 1000] with children ``search`` (tool
web_search) [100, 400], ``fetch`` (tool http_get) [100, 300] and ``llm`` (chat, gpt-4o)
[400, 900]. Walking back from 1000: ``llm`` ends last (900): run owns [900, 1000] = 100,
llm owns 500; then ``search`` ends at 400 = llm's start: search owns 300; ``fetch`` ends
at 300 > 100 (search's start): it ran beside search and is off the path; run owns
[0, 100] = 100. So run 200, llm 500, search 300, fetch 0 (sum 1000 = duration).

Trace 2 (acme, 11:00): ``run`` [0, 2000], ``llm`` [0, 1500], ``search`` [1500, 2000]:
search 500, llm 1500, run 0.

Trace 3 (acme, 09:00, previous period): ``run`` [0, 600], ``llm`` [0, 400], ``search``
[400, 600]: llm 400, search 200, run 0.

Trace 4 (globex, 10:30): ``run`` [0, 5000] with ``llm`` [0, 5000]: llm 5000, run 0.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from mentatlab.model.span import CanonicalSpan, Operation, SpanStatus

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
START, END = T0, T0 + timedelta(hours=2)


def span(trace: int, n: int, parent: int | None, name: str, start: datetime, lo_ms: int,
         hi_ms: int, *, org: str = "acme", stamp: int = 1, **extra: object) -> CanonicalSpan:
    """Span ``n`` of trace ``trace`` over ``[lo_ms, hi_ms]`` after ``start``."""
    fields: dict[str, object] = dict(
        trace_id=f"{trace:032x}", span_id=f"{trace:08x}{n:08x}",
        parent_span_id="" if parent is None else f"{trace:08x}{parent:08x}", name=name,
        kind="internal", start_time=start + timedelta(milliseconds=lo_ms),
        end_time=start + timedelta(milliseconds=hi_ms), duration_ms=float(hi_ms - lo_ms),
        status=SpanStatus.OK, org_id=org, project_id="p", service_name="svc",
        ingested_at_ns=stamp)
    fields.update(extra)
    return CanonicalSpan(**fields)  # type: ignore[arg-type]


def _llm(trace: int, n: int, start: datetime, lo: int, hi: int, **kw: object) -> CanonicalSpan:
    return span(trace, n, 0, "llm", start, lo, hi, operation=Operation.CHAT,
                provider="openai", request_model="gpt-4o", input_tokens=100,
                output_tokens=10, total_cost=Decimal("0.01"), **kw)


def _search(trace: int, n: int, start: datetime, lo: int, hi: int,
            **kw: object) -> CanonicalSpan:
    return span(trace, n, 0, "search", start, lo, hi, operation=Operation.TOOL,
                tool_name="web_search", **kw)


def _root(trace: int, start: datetime, hi: int, **kw: object) -> CanonicalSpan:
    return span(trace, 0, None, "run", start, 0, hi, operation=Operation.AGENT,
                agent_id="planner", **kw)


def build(stamp: int = 1) -> list[CanonicalSpan]:
    """The four traces above, every span committed at ``stamp``."""
    t1 = T0 + timedelta(minutes=5)
    t2 = T0 + timedelta(hours=1)
    t3 = T0 - timedelta(hours=1)
    t4 = T0 + timedelta(minutes=30)
    return [
        _root(1, t1, 1000, stamp=stamp), _search(1, 1, t1, 100, 400, stamp=stamp),
        span(1, 2, 0, "fetch", t1, 100, 300, operation=Operation.TOOL, tool_name="http_get",
             stamp=stamp),
        _llm(1, 3, t1, 400, 900, stamp=stamp),
        _root(2, t2, 2000, stamp=stamp), _llm(2, 1, t2, 0, 1500, stamp=stamp),
        _search(2, 2, t2, 1500, 2000, stamp=stamp),
        _root(3, t3, 600, stamp=stamp), _llm(3, 1, t3, 0, 400, stamp=stamp),
        _search(3, 2, t3, 400, 600, stamp=stamp),
        _root(4, t4, 5000, org="globex", stamp=stamp),
        _llm(4, 1, t4, 0, 5000, org="globex", stamp=stamp),
    ]
