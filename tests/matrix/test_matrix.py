"""The real-client matrix: published instrumentations × real clients × fake providers.

For every producer and mode, the spans MentatLab stored (read back through
``GET /api/v1/traces/{trace_id}``) must carry exactly the usage the fake answered, in
MentatLab's token meaning (input inclusive of cache reads and writes, output inclusive of
reasoning), the provider and model, a ``token_cost`` equal to ``genai-prices`` on that usage
at the span's start to the 12th decimal, and the agent of the case's agent span (inherited
by every LLM span below it). Known producer gaps (``matrix.GAPS``) are asserted exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest
from genai_prices import Usage, calc_price

from fakes.scenario import Answer, Tokens
from matrix import GAPS, PRODUCERS, Gap, Producer

pytestmark = pytest.mark.matrix

GENAI_PRICES_PROVIDER = {"openai": "openai", "anthropic": "anthropic", "aws.bedrock": "aws"}
"""Fake's provider → genai-prices provider id (independent of MentatLab's own mapping)."""
CACHE_EXCLUSIVE_PROVIDERS = frozenset({"anthropic", "aws.bedrock"})
"""Providers whose wire input count excludes the cache (a lost cache count lowers input)."""
_QUANTUM = Decimal("1e-12")
_DATE = re.compile(r"-(?:20\d\d-\d\d-\d\d|20\d{6})$")
_TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                 "reasoning_tokens")

CASES = [(p, mode) for p in PRODUCERS for mode in p.modes]


def _params() -> list[Any]:
    return [pytest.param(p, mode, id=f"{p.name}:{mode}",
                         marks=pytest.mark.xdist_group(p.name)) for p, mode in CASES]


def walk(nodes: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for node in nodes:
        yield node
        yield from walk(node.get("children", []))


def llm_spans(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Model-call spans: coarse operation chat/completion, not a roll-up of children."""
    return [s for s in spans if s["operation"] in ("chat", "completion")
            and not s.get("usage_is_rollup")]


def _has_usage(span: dict[str, Any]) -> bool:
    return any(span[f] is not None for f in _TOKEN_FIELDS)


def _stored(span: dict[str, Any]) -> Tokens:
    """The span's tokens; a detail not reported (None) compares as 0 (the fake's 0)."""
    assert span["input_tokens"] is not None and span["output_tokens"] is not None, span
    return Tokens(span["input_tokens"], span["output_tokens"],
                  span["cache_read_tokens"] or 0, span["cache_write_tokens"] or 0,
                  span["reasoning_tokens"] or 0)


def expected_tokens(answer: Answer, gap: Gap | None) -> Tokens:
    """The fake's usage in MentatLab's meaning, as changed by a known producer gap."""
    assert answer.tokens is not None
    tokens = answer.tokens
    if gap is None:
        return tokens
    over = dict(gap.over)
    read = 0 if "cache_read" in gap.lost else tokens.cache_read
    write = 0 if "cache_write" in gap.lost else tokens.cache_write
    input_tokens = tokens.input
    if answer.provider in CACHE_EXCLUSIVE_PROVIDERS:
        input_tokens -= (tokens.cache_read - read) + (tokens.cache_write - write)
    reasoning = 0 if "reasoning" in gap.lost else tokens.reasoning
    return Tokens(input_tokens + over.get("input", 0), tokens.output + over.get("output", 0),
                  read, write, reasoning)


def expected_cost(tokens: Tokens, answer: Answer, at: datetime) -> Decimal:
    """``genai-prices`` on ``tokens`` for the fake's model at ``at``, 12 places, half even."""
    price = calc_price(Usage(input_tokens=tokens.input, output_tokens=tokens.output,
                             cache_read_tokens=tokens.cache_read or None,
                             cache_write_tokens=tokens.cache_write or None),
                       model_ref=answer.model,
                       provider_id=GENAI_PRICES_PROVIDER[answer.provider],
                       genai_request_timestamp=at)
    return price.total_price.quantize(_QUANTUM, rounding=ROUND_HALF_EVEN)


def same_model(reported: str | None, answered: str) -> bool:
    """The span names the fake's model: exactly, undated, or without a Bedrock vendor prefix."""
    if not reported:
        return False

    def bare(model: str) -> str:
        model = _DATE.sub("", model)
        return model.split(".", 1)[1] if model.startswith("anthropic.") else model

    return reported == answered or bare(reported) == bare(answered)


def _case(runs: Any, producer: Producer, mode: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    run = runs.get(producer.name)
    assert mode in run.cases, f"the {producer.name} driver did not run {mode}"
    case = run.cases[mode]
    assert len(case["trace_ids"]) == 1, f"one trace per case, got {case['trace_ids']}"
    spans = list(walk(run.traces[case["trace_ids"][0]]["roots"]))
    return case, spans


@pytest.mark.parametrize(("producer", "mode"), _params())
def test_usage_provider_model_and_cost(runs: Any, producer: Producer, mode: str) -> None:
    case, spans = _case(runs, producer, mode)
    gap = GAPS.get((producer.name, mode))
    answers = runs.fakes.answers(case["id"])
    assert answers, f"the fakes never saw {case['id']}"
    ok = [a for a in answers if a.status == 200]
    llm = llm_spans(spans)
    if mode.endswith("-error"):
        assert case["error"] and not ok
        assert [s["status"] for s in llm] == ["error"], llm
        assert not _has_usage(llm[0]) and Decimal(llm[0]["token_cost"]) == 0
        return
    assert case["error"] is None, case["error"]
    if mode.endswith("-retry"):
        assert [a.status for a in answers] == [429, 200], answers
    if gap is not None and gap.missing:
        assert not [s for s in llm if _has_usage(s)], f"gap closed ({gap.reason}): {llm}"
        return
    with_usage = [s for s in llm if _has_usage(s)]
    # spans without usage (Logfire's request span of a stream) must not carry cost
    assert all(Decimal(s["token_cost"]) == 0 for s in llm if not _has_usage(s))
    assert len(with_usage) == len(ok), (f"{len(ok)} answers, {len(with_usage)} LLM spans "
                                        f"with usage: {with_usage}")
    if gap is not None and gap.estimated:
        # the producer's own estimate: priced as stored, and never the provider's numbers
        for span, answer in zip(with_usage, ok, strict=True):
            assert _stored(span) != answer.tokens, f"gap closed ({gap.reason})"
            at = datetime.fromisoformat(span["start_time"])
            assert Decimal(span["token_cost"]) == expected_cost(_stored(span), answer, at)
        return
    remaining = list(ok)
    for span in with_usage:
        stored = _stored(span)
        match = next((a for a in remaining if expected_tokens(a, gap) == stored), None)
        assert match is not None, (f"span usage {stored} matches no answer: "
                                   f"{[expected_tokens(a, gap) for a in remaining]}")
        remaining.remove(match)
        assert span["status"] == "ok"
        assert span["provider"] == match.provider, span["provider"]
        assert same_model(span["response_model"] or span["request_model"], match.model), span
        at = datetime.fromisoformat(span["start_time"])
        assert Decimal(span["token_cost"]) == expected_cost(stored, match, at), span
        assert span["price_source"].startswith("genai-prices")


@pytest.mark.parametrize(("producer", "mode"), _params())
def test_agent_is_inherited_from_the_agent_span(runs: Any, producer: Producer,
                                                mode: str) -> None:
    case, spans = _case(runs, producer, mode)
    agent = case["agent"]
    named = [s for s in spans if s["operation"] == "agent" and s["agent_id"] == agent]
    assert named, f"no agent span named {agent!r}: {[(s['name'], s['agent_id']) for s in spans]}"
    if not producer.framework_agent:
        roots = [s for s in spans if not s.get("parent_span_id")]
        assert [r["agent_id"] for r in roots] == [agent]
    llm = llm_spans(spans)
    gap = GAPS.get((producer.name, mode))
    if gap is None or not gap.missing:
        assert llm
    assert [s["agent_id"] for s in llm] == [agent] * len(llm), \
        "every LLM span inherits the agent of its agent span"
