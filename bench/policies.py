"""Guardrail policy evaluation cost (docs/decisions/0018-guardrail-policies.md).

``--engines``: one small rule over one span activation, in µs per evaluation, with the
compiled ``common-expression-language`` bindings (``cel``) and with ``cel-python``
(``celpy``, when installed): compiled once, then per span the activation converted and the
rule evaluated (what ingest pays), and the evaluation alone on a prepared activation.

``--stage`` (default): the ``policies`` ingest stage on 2,000 normalized GenAI spans of
``bench/_otlp_payload.make_request``: CPU ms with no policy, with the five built-ins and
with ten policies (the built-ins and five custom rules of each scope).

    PYTHONPATH=src .venv/bin/python bench/policies.py --engines --stage
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _otlp_payload import make_request  # noqa: E402

RULE = ('span.operation == "chat" && span.input_tokens > 100'
        ' && "gen_ai.request.model" in attributes')
SPAN = {"operation": "chat", "input_tokens": 812, "agent_id": "planner",
        "tool_name": "", "project_id": "web", "request_model": "gpt-4o"}
ATTRIBUTES = {"gen_ai.request.model": "gpt-4o", "gen_ai.operation.name": "chat",
              "gen_ai.provider.name": "openai", "gen_ai.usage.input_tokens": 812,
              "gen_ai.usage.output_tokens": 96, "server.address": "api.openai.com",
              "gen_ai.input.messages": '[{"role":"user","content":"' + "x" * 200 + '"}]'}


def _per_call_us(run: Any, n: int) -> float:
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            run()
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def engines() -> None:
    import cel

    program = cel.compile(RULE)
    activation = {"span": SPAN, "attributes": ATTRIBUTES}

    def cel_convert_and_eval() -> Any:
        context = cel.Context()
        context.update(activation)
        return program.execute(context)

    prepared = cel.Context()
    prepared.update(activation)
    assert cel_convert_and_eval() is True and program.execute(prepared) is True
    print(f"cel (common-expression-language): convert + evaluate "
          f"{_per_call_us(cel_convert_and_eval, 5000):.1f} µs, evaluate "
          f"{_per_call_us(lambda: program.execute(prepared), 20000):.2f} µs, parse each time "
          f"{_per_call_us(lambda: cel.evaluate(RULE, activation), 2000):.1f} µs")
    try:
        import celpy
        from celpy import json_to_cel
    except ImportError:
        print("cel-python not installed")
        return
    env = celpy.Environment()
    runner = env.program(env.compile(RULE))
    converted = {"span": json_to_cel(SPAN), "attributes": json_to_cel(ATTRIBUTES)}

    def celpy_convert_and_eval() -> Any:
        return runner.evaluate({"span": json_to_cel(SPAN),
                                "attributes": json_to_cel(ATTRIBUTES)})

    assert bool(celpy_convert_and_eval())
    print(f"cel-python: convert + evaluate {_per_call_us(celpy_convert_and_eval, 500):.1f} µs,"
          f" evaluate {_per_call_us(lambda: runner.evaluate(converted), 500):.1f} µs")


def _rules(custom: bool) -> list[Any]:
    from mentatlab.governance.policies import PolicyRule
    from mentatlab.governance.policy_rules import BUILTIN_POLICIES

    rules = [PolicyRule(i, 1, s.name, s.condition, s.action, s.scope, s.scope_value, "",
                        s.severity, orjson.dumps(s.params).decode())
             for i, s in BUILTIN_POLICIES]
    if custom:
        rules += [
            PolicyRule("c.model", 1, "m", 'span.request_model == "gpt-4o" && '
                       "span.output_tokens > 4000", "log"),
            PolicyRule("c.org", 1, "o", "span.input_tokens > 100000", "alert", scope="org",
                       scope_value="acme"),
            PolicyRule("c.project", 1, "p", 'span.provider == "anthropic"', "log",
                       scope="project", scope_value="support-bot"),
            PolicyRule("c.agent", 1, "a", "span.duration_ms > 60000", "log", scope="agent",
                       scope_value="planner"),
            PolicyRule("c.tool", 1, "t", '"gen_ai.tool.call.arguments" in attributes',
                       "block", scope="tool", scope_value="shell"),
        ]
    return rules


def stage(total_spans: int = 2000) -> None:
    from mentatlab.governance.policies import PolicySnapshot
    from mentatlab.pipeline.policies import EvaluatePolicies
    from mentatlab.pipeline.workers import build_pipeline
    from mentatlab.receivers.decode import decode_otlp_protobuf
    from mentatlab.settings import load_settings

    with tempfile.TemporaryDirectory() as tmp:
        pipeline = build_pipeline(load_settings(data_dir=Path(tmp)))
    bodies = [make_request(500, seed=i) for i in range(total_spans // 500)]
    normalized = [pipeline.normalizer(decode_otlp_protobuf(b).spans).spans for b in bodies]
    for label, rules in (("no policy", []), ("5 built-ins", _rules(False)),
                         ("10 policies", _rules(True))):
        snapshot = PolicySnapshot.of(rules)
        best = float("inf")
        matched = 0
        for _ in range(6):
            batches = [[_copy(s) for s in batch] for batch in normalized]
            t0 = time.thread_time()
            for batch in batches:
                EvaluatePolicies(snapshot)(batch)
            best = min(best, time.thread_time() - t0)
            matched = sum(1 for batch in batches for s in batch if s.policy_ids)
        print(f"policies stage, {label}: {1000 * best:.1f} CPU ms per {total_spans} spans "
              f"({1e6 * best / total_spans:.1f} µs/span; {matched} spans matched)")
    print(f"load average {os.getloadavg()}")


def _copy(span: Any) -> Any:
    import copy

    return copy.copy(span)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engines", action="store_true")
    ap.add_argument("--stage", action="store_true")
    args = ap.parse_args()
    if args.engines:
        engines()
    if args.stage or not args.engines:
        stage()


if __name__ == "__main__":
    main()
