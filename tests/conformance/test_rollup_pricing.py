"""Conformance: usage carried only by an agent span is priced, exactly once.

Every corpus case goes through the real decoder, Normalize, Price and the resolver's
columnar core (as the server runs them). Wherever the corpus expects a genai-prices cost
for a span, that cost must appear once in the trace's total: as the span's ``token_cost``
for an LLM call, or as its ``unattributed_cost`` for a roll-up span (an ``invoke_agent``
whose usage no child carries: ``lf-pydantic-ai-agent-root-string-tokens``,
``otel-util-genai-invoke-agent``), never as both, never as 0.
"""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from typing import Any

import orjson
import pytest

from conformance_corpus import require
from mentatlab.model.schema import spans_to_arrow
from mentatlab.model.span import CanonicalSpan
from mentatlab.pipeline.attribution import INPUT_COLUMNS, resolve_traces
from mentatlab.pipeline.normalize import Normalize
from mentatlab.pipeline.price import Price
from mentatlab.pricing.money import quantize_money
from mentatlab.receivers.decode import decode_otlp_json

CASES_DIR = require("otel-genai")

ROLLUP_ONLY = ("lf-pydantic-ai-agent-root-string-tokens", "otel-util-genai-invoke-agent")


def _resolved(case: dict[str, Any]) -> dict[str, CanonicalSpan]:
    decoded = decode_otlp_json(orjson.dumps(case["otlp"]))
    spans = Price()(Normalize()(decoded.spans).spans)
    resolution = resolve_traces(spans_to_arrow(spans).select(list(INPUT_COLUMNS)))
    out = {}
    for i, span in enumerate(spans):
        changes = {name: values[i].as_py() for name, values in resolution.columns.items()}
        out[span.span_id] = Price().price_span(dataclasses.replace(span, **changes))
    return out


@pytest.mark.parametrize("case_id", ROLLUP_ONLY)
def test_an_agent_span_alone_is_priced_as_unattributed(case_id: str) -> None:
    case = json.loads((CASES_DIR / f"{case_id}.json").read_text())
    expected = case["expected"]
    span = _resolved(case)[case["spans"][expected["span_index"]]["span_id"].lower()]
    assert span.usage_is_rollup and span.token_cost == 0
    want = quantize_money(Decimal(expected["cost_detail"]["total_usd"]))
    assert span.unattributed_cost == want
    assert span.total_cost == want
    assert (span.unattributed_input_tokens, span.unattributed_output_tokens) == (
        expected["input_tokens"], expected["output_tokens"])


def test_no_corpus_span_is_priced_twice_or_lost() -> None:
    """Where the span names the provider the corpus priced with, the full flow gives the
    corpus's cost; where it does not (an OpenAI SDK pointed at OpenRouter says "openai"),
    the span is left ``unpriced`` rather than guessed."""
    checked = 0
    for path in sorted(CASES_DIR.glob("*.json")):
        case = json.loads(path.read_text())
        resolved = _resolved(case)
        for expected in case.get("expected_per_span") or [case["expected"]]:
            if expected.get("cost_usd_genai_prices") is None:
                continue
            span = resolved[case["spans"][expected["span_index"]]["span_id"].lower()]
            assert span.token_cost == 0 or span.unattributed_cost == 0, case["id"]
            priced = span.unattributed_cost if span.usage_is_rollup else span.token_cost
            if span.provider != expected["cost_detail"]["provider_id"] and not priced:
                assert span.price_source == "unpriced", case["id"]
                continue
            want = quantize_money(Decimal(expected["cost_detail"]["total_usd"]))
            assert priced == want, (case["id"], span.name)
            checked += 1
    assert checked >= 20
