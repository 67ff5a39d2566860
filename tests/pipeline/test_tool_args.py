"""Tool arguments hash: every convention's argument attribute, equal text hashes alike,
other text or another tool kind does not, and no text is stored twice."""

from __future__ import annotations

import hashlib
from typing import Any

import pyarrow as pa

from mentatlab.model.raw import RawSpan
from mentatlab.model.schema import SPAN_SCHEMA
from mentatlab.model.span import CanonicalSpan, Operation
from mentatlab.pipeline.normalize import Normalize
from mentatlab.pipeline.tool_args import HashToolArguments, hash_tool_arguments

T0_NS = 1_763_000_000_000_000_000


def span(attributes: dict[str, Any], name: str = "execute_tool search") -> CanonicalSpan:
    raw = RawSpan(trace_id="4bf92f3577b34da6a3ce929d0e0e4736", span_id="00f067aa0ba902b7",
                  parent_span_id="", name=name, start_time_ns=T0_NS, end_time_ns=T0_NS + 10,
                  status_code=1, status_message="", attributes=attributes, events=[])
    return Normalize()([raw]).spans[0]


def sha16(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_each_convention_key_is_hashed() -> None:
    tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}
    cases = [
        {**tool, "gen_ai.tool.call.arguments": '{"q":"x"}'},
        {**tool, "tool_arguments": '{"q":"x"}'},
        {**tool, "ai.toolCall.args": '{"q":"x"}'},
        {**tool, "gcp.vertex.agent.tool_call_args": '{"q":"x"}'},
        {**tool, "traceloop.entity.input": '{"q":"x"}'},
        {"openinference.span.kind": "TOOL", "tool.name": "search", "input.value": '{"q":"x"}',
         "tool.parameters": '{"q":"string"}'},  # the schema, not the call: ignored
    ]
    spans = [span(a) for a in cases]
    assert all(s.operation is Operation.TOOL for s in spans)
    out = HashToolArguments()(spans)
    # stored JSON keeps the string's escapes: {\"q\":\"x\"} is what is hashed
    assert {s.tool_args_hash for s in out} == {sha16('{\\"q\\":\\"x\\"}')}


def test_different_arguments_and_non_tool_spans() -> None:
    tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}
    a = span({**tool, "gen_ai.tool.call.arguments": '{"q":"x"}'})
    b = span({**tool, "gen_ai.tool.call.arguments": '{"q":"y"}'})
    none = span(tool)  # no arguments recorded
    chat = span({"gen_ai.operation.name": "chat", "input.value": '{"q":"x"}'}, name="chat")
    out = HashToolArguments()([a, b, none, chat])
    assert out[0].tool_args_hash != out[1].tool_args_hash
    assert len(out[0].tool_args_hash) == 16
    assert (out[2].tool_args_hash, out[3].tool_args_hash) == ("", "")


def test_columns_and_the_text_is_not_stored_twice() -> None:
    got = hash_tool_arguments(
        pa.array(['{"tool_arguments":"1"}', '{"tool_arguments":"1"}', "{}",
                  '{"tool_arguments":"1"}']),
        pa.array(["tool", "tool", "tool", "chat"])).to_pylist()
    assert got == [sha16("1"), sha16("1"), "", ""]
    column = SPAN_SCHEMA.field("tool_args_hash")
    assert column.type == pa.string()
    assert [f.name for f in SPAN_SCHEMA if "argument" in f.name] == []
