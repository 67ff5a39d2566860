"""A generated span dataset with totals computed independently in Python."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from mentatlab.model.span import CanonicalSpan, Operation, SpanStatus

T0 = datetime(2026, 10, 5, 0, 0, tzinfo=UTC)
MODELS = ("gpt-4o", "claude-sonnet-4", "llama-self-hosted")
ORGS = ("acme", "globex")
NUM_TRACES = 120


def _span(trace: int, n: int, parent: str, start: datetime, ms: int, **kw: object) -> CanonicalSpan:
    fields: dict[str, object] = dict(
        trace_id=f"{trace + 1:032x}", span_id=f"{trace + 1:08x}{n:08x}", parent_span_id=parent,
        name=f"s{n}", kind="internal", start_time=start,
        end_time=start + timedelta(milliseconds=ms),
        duration_ms=float(ms), status=SpanStatus.OK, org_id=ORGS[trace % 2],
        project_id=f"p{trace % 3}", service_name="svc", ingested_at_ns=1)
    fields.update(kw)
    return CanonicalSpan(**fields)  # type: ignore[arg-type]


def build_spans(t0: datetime = T0) -> list[CanonicalSpan]:
    """Traces of: agent root (usage rollup) -> 2 LLM calls + 1 tool call (with infra cost).

    Only the root names its agent; its children inherit it once resolved. The root reports
    the sum of its children's usage, so it has no unattributed usage.
    """
    spans: list[CanonicalSpan] = []
    for t in range(NUM_TRACES):
        start = t0 + timedelta(days=t % 3, hours=t % 24, minutes=t, seconds=t % 50)
        model = MODELS[t % 3]
        unpriced = model == "llama-self-hosted"
        root_id = f"{t + 1:08x}{0:08x}"
        children: list[CanonicalSpan] = []
        for c in (1, 2):
            cost = Decimal(0) if unpriced else Decimal("0.000123456789") * (t + c)
            children.append(_span(
                t, c, root_id, start + timedelta(milliseconds=10 * c), 100 * c + t,
                operation=Operation.CHAT, provider="openai" if t % 3 == 0 else "anthropic",
                request_model=model, response_model=(f"{model}-2024" if c == 2 and t % 3 == 0
                                                     else ""),
                input_tokens=100 + t, output_tokens=10 * c, cache_read_tokens=c,
                token_cost=cost, total_cost=cost,
                price_source="unpriced" if unpriced else "genai-prices@x:p/m",
                status=SpanStatus.ERROR if (t % 7 == 0 and c == 2) else SpanStatus.OK))
        cpu = Decimal("0.000001") * (t + 1)
        children.append(_span(t, 3, root_id, start + timedelta(milliseconds=50), 40,
                              operation=Operation.TOOL, tool_name="search", cpu_cost=cpu,
                              network_cost=Decimal("0.0000005"), discount=Decimal("0.0000001"),
                              total_cost=cpu + Decimal("0.0000005") - Decimal("0.0000001")))
        llm = children[:2]
        root = _span(t, 0, "", start, 1000 + t, operation=Operation.AGENT, agent_id=f"agent{t % 4}",
                     usage_is_rollup=True,
                     input_tokens=sum(s.input_tokens or 0 for s in llm),
                     output_tokens=sum(s.output_tokens or 0 for s in llm),
                     status=SpanStatus.ERROR if t % 7 == 0 else SpanStatus.OK)
        spans.extend([root, *children])
    return spans


def resent(spans: list[CanonicalSpan]) -> list[CanonicalSpan]:
    """Every 5th span again, as a newer version (same ids, same start): must count once."""
    return [replace(s, ingested_at_ns=2) for s in spans[::5]]


def model_of(span: CanonicalSpan) -> str:
    return span.response_model or span.request_model
