"""The columnar decoder: C and pure-Python paths agree, and both agree with decode.py.

Inputs: the conformance corpus as protobuf, Hypothesis wire bytes built field by field
(duplicates, unknown fields and groups, wrong wire types, bad UTF-8, odd ids and times)
plus their canonical re-serialization, and malformed bodies.
"""

from __future__ import annotations

import math
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from conformance_corpus import payloads, protobuf_body, require
from mentatlab.errors import DecodeError
from mentatlab.receivers import columnar
from mentatlab.receivers.base import MAX_TIME_NS
from mentatlab.receivers.columnar import (
    SpanColumns,
    columns_to_raw_spans,
    decode_columns,
    decode_columns_c,
    decode_columns_py,
)
from mentatlab.receivers.decode import DecodedBatch, decode_otlp_protobuf

CORPUS = payloads() or [None]
"""The corpus payloads; ``[None]`` when it is missing (the test then skips, or fails in CI)."""

needs_c = pytest.mark.skipif(not columnar.HAVE_C_DECODER,
                             reason="mentatlab._columnar not built (setup.py build_ext)")
DECODERS = [pytest.param(decode_columns_py, id="py"),
            pytest.param(decode_columns_c, id="c", marks=needs_c)]
FUZZ = settings(max_examples=250, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# --------------------------------------------------------------------------- comparing


def _bits(table: pa.Table) -> pa.Table:
    """Doubles as their bit patterns, so NaN equals NaN."""
    cols = [c.combine_chunks().view(pa.int64()) if c.type == pa.float64() else c
            for c in table.columns]
    return pa.Table.from_arrays(cols, names=table.column_names)


def _same(a: Any, b: Any) -> bool:
    """Deep equality with exact types (True is not 1) and NaN equal to NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if hasattr(a, "__slots__") and not isinstance(a, (str, int)):
        return all(_same(getattr(a, f), getattr(b, f)) for f in a.__slots__)
    return bool(a == b)


def _assert_same_columns(a: SpanColumns, b: SpanColumns) -> None:
    for name in ("spans", "attributes", "events", "event_attributes", "links",
                 "link_attributes"):
        ta, tb = getattr(a, name), getattr(b, name)
        assert ta.schema == tb.schema, name
        assert _bits(ta).equals(_bits(tb)), (name, ta.to_pylist(), tb.to_pylist())
    assert _same(a.resources, b.resources)
    assert a.rejected == b.rejected


def _decode_reference(body: bytes) -> DecodedBatch | type[Exception]:
    try:
        return decode_otlp_protobuf(body)
    except DecodeError:
        return DecodeError


def _check_body(body: bytes) -> None:
    """Every decoder on one body: same error, or same columns and same RawSpans."""
    expected = _decode_reference(body)
    outputs = []
    for decoder in (decode_columns_py, decode_columns_c) if columnar.HAVE_C_DECODER else (
            decode_columns_py,):
        if expected is DecodeError:
            with pytest.raises(DecodeError):
                decoder(body)
            continue
        outputs.append(decoder(body))
    if expected is DecodeError:
        return
    for other in outputs[1:]:
        _assert_same_columns(outputs[0], other)
    assert isinstance(expected, DecodedBatch)
    assert outputs[0].rejected == expected.rejected
    assert _same(columns_to_raw_spans(outputs[0]), expected.spans)


# --------------------------------------------------------------------------- corpus


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem if p else "missing" for p in CORPUS])
def test_conformance_corpus(path: Path | None) -> None:
    if path is None:
        require("otel-genai")
    assert path is not None
    body = protobuf_body(path)
    assert decode_otlp_protobuf(body).spans, "the corpus case decodes to spans"
    _check_body(body)


def test_sdk_request(sdk_request: ExportTraceServiceRequest) -> None:
    body = sdk_request.SerializeToString()
    _check_body(body)
    cols = decode_columns(body)
    assert cols.spans.num_rows == 3
    assert cols.resources[0]["service.name"] == "billing-agent"
    tags = cols.attributes.filter(pc.equal(cols.attributes["key"], "tags"))
    assert tags.to_pylist() == [{"key": "tags", "type": 6, "str_value": '["a","b"]',
                                 "int_value": 0, "double_value": 0.0, "bool_value": False}]


# --------------------------------------------------------------------------- wire bytes


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _tag(num: int, wire_type: int) -> bytes:
    return _varint(num << 3 | wire_type)


def _ld(num: int, payload: bytes) -> bytes:
    return _tag(num, 2) + _varint(len(payload)) + payload


# message name -> field number -> kind: a message name, "str", "bytes", "id16", "id8",
# "varint", "fixed64", "time", "fixed32"
SCHEMA: dict[str, dict[int, str]] = {
    "Request": {1: "ResourceSpans"},
    "ResourceSpans": {1: "Resource", 2: "ScopeSpans", 3: "str"},
    "Resource": {1: "KeyValue", 2: "varint", 3: "EntityRef"},
    "EntityRef": {1: "str", 2: "str", 3: "str", 4: "str"},
    "KeyValue": {1: "str", 2: "AnyValue", 3: "varint"},
    "AnyValue": {1: "str", 2: "varint", 3: "varint", 4: "fixed64", 5: "ArrayValue",
                 6: "KeyValueList", 7: "bytes", 8: "varint"},
    "ArrayValue": {1: "AnyValue"},
    "KeyValueList": {1: "KeyValue"},
    "ScopeSpans": {1: "InstrumentationScope", 2: "Span", 3: "str"},
    "InstrumentationScope": {1: "str", 2: "str", 3: "KeyValue", 4: "varint"},
    "Span": {1: "id16", 2: "id8", 3: "str", 4: "id8", 5: "str", 6: "varint", 7: "time",
             8: "time", 9: "KeyValue", 10: "varint", 11: "Event", 12: "varint", 13: "Link",
             14: "varint", 15: "Status", 16: "fixed32"},
    "Event": {1: "time", 2: "str", 3: "KeyValue", 4: "varint"},
    "Link": {1: "id16", 2: "id8", 3: "str", 4: "KeyValue", 5: "varint", 6: "fixed32"},
    "Status": {2: "str", 3: "varint"},
}
PREFER = {"Request": [1], "ResourceSpans": [2, 2, 1], "ScopeSpans": [2, 2, 1],
          "Span": [9, 9, 11, 13, 15], "KeyValue": [1, 2], "ArrayValue": [1],
          "KeyValueList": [1], "Event": [3], "Link": [4], "AnyValue": [1, 3, 4]}
"""Fields drawn again so that spans, attributes and nested values are common."""
RARE = {("AnyValue", 8)}
"""string_value_strindex (a profiles-signal index, read as an empty value): drawn rarely."""
WIRE_TYPE = {"varint": 0, "fixed64": 1, "time": 1, "fixed32": 5}
TEXT = st.text(st.characters(codec="utf-8"), max_size=8) | st.sampled_from(
    ["", "gen_ai.system", "k", "é\u2028\x00\"\\\n\x1f", "\U0001f600"])
BAD_UTF8 = st.sampled_from([b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"a\xe2\x82",
                            b"\xf4\x90\x80\x80"])
VARINT = st.integers(0, 2**64 - 1) | st.integers(0, 8) | st.integers(-(2**31), -1).map(
    lambda n: n + 2**64)
NOW_NS = 1_733_000_000_000_000_000
TIME = st.integers(NOW_NS, NOW_NS + 10**9) | st.sampled_from(
    [0, 1, MAX_TIME_NS, MAX_TIME_NS + 1, 2**63, 2**64 - 1])


@st.composite
def _scalar(draw: st.DrawFn, kind: str) -> bytes:
    if kind == "str":
        if draw(st.integers(0, 300)) == 137:  # rare: one bad string fails the whole body
            return draw(BAD_UTF8)
        return bytes(draw(TEXT).encode())
    if kind in ("id16", "id8"):
        size = 16 if kind == "id16" else 8
        return bytes(draw(st.one_of(
            st.binary(min_size=size, max_size=size), st.just(bytes(size)),
            st.binary(max_size=20))))
    if kind == "bytes":
        return bytes(draw(st.binary(max_size=6)))
    if kind == "varint":
        return _varint(draw(VARINT))
    if kind == "time":
        return struct.pack("<Q", draw(TIME))
    if kind == "fixed64":
        if draw(st.booleans()):
            return struct.pack("<Q", draw(st.integers(0, 2**64 - 1)))
        return struct.pack("<d", draw(st.floats()))
    return struct.pack("<I", draw(st.integers(0, 2**32 - 1)))  # fixed32


@st.composite
def _unknown_field(draw: st.DrawFn, depth: int) -> bytes:
    num = draw(st.sampled_from([17, 18, 99, 1000, 2**29 - 1]))
    wire_type = draw(st.sampled_from([0, 1, 2, 5, 3] if depth > 0 else [0, 1, 2, 5]))
    if wire_type == 3:
        inner = b"".join(draw(st.lists(_unknown_field(depth - 1), max_size=2)))
        return _tag(num, 3) + inner + _tag(num, 4)
    return _encode(draw, num, wire_type, {0: "varint", 1: "fixed64", 5: "fixed32",
                                          2: "bytes"}[wire_type])


def _encode(draw: st.DrawFn, num: int, wire_type: int, kind: str) -> bytes:
    payload = draw(_scalar(kind))
    return _ld(num, payload) if wire_type == 2 else _tag(num, wire_type) + payload


@st.composite
def _message(draw: st.DrawFn, name: str, depth: int) -> bytes:
    fields = SCHEMA[name]
    leaf = [n for n, k in fields.items() if k not in SCHEMA and (name, n) not in RARE]
    if name == "AnyValue" and draw(st.integers(0, 40)) == 17:
        leaf.append(8)
    nested = [n for n, k in fields.items() if k in SCHEMA] if depth > 0 else []
    if not leaf + nested:
        return b""
    numbers = draw(st.lists(st.sampled_from(leaf + nested), max_size=3))
    prefer = [n for n in PREFER.get(name, ()) if n in leaf or n in nested]
    if prefer:
        numbers += draw(st.lists(st.sampled_from(prefer), min_size=1, max_size=2))
    parts = []
    if name == "Span" and draw(st.integers(0, 4)):  # mostly spans with good ids and times
        start = draw(TIME)
        end = start + draw(st.integers(0, 10**6)) if draw(st.integers(0, 4)) else draw(TIME)
        parts += [_ld(1, b"\x01" + draw(st.binary(min_size=15, max_size=15))),
                  _ld(2, draw(st.sampled_from([b"\x01" * 8, bytes(range(1, 9))]))),
                  _tag(7, 1) + struct.pack("<Q", start),
                  _tag(8, 1) + struct.pack("<Q", min(end, 2**64 - 1))]
    for num in numbers:
        kind = fields[num]
        if kind in SCHEMA:
            parts.append(_ld(num, draw(_message(kind, depth - 1))))
        elif draw(st.integers(0, 20)) == 0:  # a known number with a wrong wire type
            wrong = draw(st.sampled_from([w for w in (0, 1, 2, 5)
                                          if w != WIRE_TYPE.get(kind, 2)]))
            parts.append(_encode(draw, num, wrong, {0: "varint", 1: "fixed64", 5: "fixed32",
                                                    2: "bytes"}[wrong]))
        else:
            wire_type = WIRE_TYPE.get(kind, 2)
            parts.append(_encode(draw, num, wire_type, kind))
    if draw(st.integers(0, 10)) == 0:
        parts.append(draw(_unknown_field(2)))
    return b"".join(draw(st.permutations(parts)))


REQUESTS = _message("Request", 8)


def _mutate(body: bytes, data: st.DataObject) -> bytes:
    mutated = bytearray(body)
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        at = data.draw(st.integers(0, len(mutated)))
        if op == "flip" and at < len(mutated):
            mutated[at] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del mutated[at:at + data.draw(st.integers(1, 4))]
        else:
            mutated[at:at] = data.draw(st.binary(min_size=1, max_size=3))
    return bytes(mutated)


@FUZZ
@given(REQUESTS, st.data())
def test_generated_requests_agree(body: bytes, data: st.DataObject) -> None:
    """One generated body three ways: as drawn, re-serialized by protobuf, and mutated."""
    _check_body(body)
    try:
        msg = ExportTraceServiceRequest.FromString(body)
    except Exception:  # only parseable bodies give a message
        pass
    else:
        _check_body(msg.SerializeToString())
    _check_body(_mutate(body, data))


@needs_c
@FUZZ
@given(st.binary(max_size=64))
def test_random_bytes_agree(body: bytes) -> None:
    _check_body(body)


# --------------------------------------------------------------------------- by hand

SPAN_OK = (_ld(1, bytes(range(1, 17))) + _ld(2, bytes(range(1, 9)))
           + _tag(7, 1) + struct.pack("<Q", NOW_NS) + _tag(8, 1) + struct.pack("<Q", NOW_NS + 5))


def _request(span: bytes, scope_spans_extra: bytes = b"", resource_extra: bytes = b"") -> bytes:
    return _ld(1, resource_extra + _ld(2, _ld(2, span) + scope_spans_extra))


def _kv(key: str, *values: bytes) -> bytes:
    return _ld(1, key.encode()) + b"".join(_ld(2, v) for v in values)


def _nested_arrays(levels: int, kvlist_levels: int = 0) -> bytes:
    """An AnyValue nested 2 messages deep per array level, 3 per kvlist level."""
    value = _tag(3, 0) + _varint(1)
    for _ in range(kvlist_levels):
        value = _ld(6, _ld(1, _kv("n", value)))
    for _ in range(levels):
        value = _ld(5, _ld(1, value))
    return value


@pytest.mark.parametrize("body", [
    pytest.param(_request(SPAN_OK + _ld(9, _kv("a", _ld(5, _ld(1, b"\x18\x01")),
                                                _ld(5, _ld(1, b"\x10\x01"))))),
                 id="value-occurrences-merge"),
    pytest.param(_request(SPAN_OK + _ld(9, _kv("a", _ld(6, _ld(1, _kv("x", b"\x18\x01"))),
                                                _ld(1, b"s"), _ld(6, b"")))),
                 id="oneof-switch-restarts-kvlist"),
    pytest.param(_request(SPAN_OK + _ld(9, _kv("k", b"\x18\x01")) + _ld(9, _kv("k", b"\x10\x01"))
                          + _ld(9, _kv("j", b""))), id="duplicate-keys-last-wins"),
    pytest.param(_request(SPAN_OK + _ld(15, _ld(2, b"first") + b"\x18\x02")
                          + _ld(15, _ld(2, b"second"))), id="status-occurrences-merge"),
    pytest.param(_request(SPAN_OK, _ld(1, _ld(1, b"lib")) + _ld(1, _ld(2, b"1.0"))),
                 id="scope-after-spans-merges"),
    pytest.param(_request(SPAN_OK, resource_extra=_ld(1, _ld(1, _kv("r", _ld(1, b"1"))))
                          + _ld(1, _ld(1, _kv("s", _ld(1, b"2"))))), id="resources-merge"),
    pytest.param(_request(SPAN_OK + _tag(6, 0) + _varint(2**64 - 3)), id="negative-kind"),
    pytest.param(_request(SPAN_OK + _ld(9, _kv("b", _tag(2, 0) + _varint(256)))),
                 id="bool-varint-256"),
    pytest.param(_request(SPAN_OK + _ld(4, bytes(3))), id="short-zero-parent"),
    pytest.param(_request(SPAN_OK + _ld(4, bytes(8))), id="zero-parent-is-root"),
    # request > resource spans > scope spans > span > key value > any value: 5 levels
    pytest.param(_request(SPAN_OK + _ld(9, _kv("d", _nested_arrays(46, 1)))), id="depth-100"),
    pytest.param(_request(SPAN_OK + _ld(9, _kv("d", _nested_arrays(45, 2)))), id="depth-101"),
    pytest.param(_request(SPAN_OK + _ld(9, _kv("d", _ld(1, b"\xff"), _ld(1, b"ok")))),
                 id="overridden-bad-utf8"),
    pytest.param(_request(SPAN_OK + _tag(20, 3) + _tag(21, 3) + _tag(21, 4) + _tag(20, 4)),
                 id="unknown-groups"),
    pytest.param(_request(SPAN_OK + _tag(20, 3) + _tag(21, 4)), id="mismatched-end-group"),
    pytest.param(_request(SPAN_OK + _tag(5, 0) + _varint(7)), id="name-as-varint"),
    pytest.param(_tag(20, 3) * 100 + _tag(20, 4) * 100, id="groups-depth-100"),
    pytest.param(_tag(20, 3) * 101 + _tag(20, 4) * 101, id="groups-depth-101"),
    pytest.param(b"\x8a\x80\x80\x80\x00\x00", id="tag-5-bytes"),
    pytest.param(b"\x8a\x80\x80\x80\x80\x00\x00", id="tag-6-bytes"),
    pytest.param(b"\x80\x80\x80\x80\x10", id="tag-over-uint32"),
    pytest.param(b"\x08" + b"\xff" * 9 + b"\x7f", id="varint-10-bytes-overflowing"),
    pytest.param(b"\x08" + b"\xff" * 10 + b"\x01", id="varint-11-bytes"),
    pytest.param(_tag(0, 3) + _tag(0, 4), id="field-0-group"),
    # upb skips what an unknown group holds without checking field numbers (found by
    # test_generated_requests_agree: the C decoder refused field 0 inside a group)
    pytest.param(_tag(1, 3) + _tag(0, 5) + bytes(4) + _tag(1, 4), id="field-0-in-a-group"),
    pytest.param(_tag(1, 3) + _tag(0, 0) + _varint(5) + _tag(1, 4), id="field-0-varint-in-group"),
    pytest.param(_tag(1, 3) + _tag(0, 3) + _tag(0, 4) + _tag(1, 4), id="field-0-group-in-group"),
    pytest.param(_tag(1, 3) + _tag(0, 4) + _tag(1, 4), id="field-0-end-in-group"),
    pytest.param(b"\x0b\x18\n\x05\x12\x00\x88\x01\x00\n\x0c\x11" + bytes(8)
                 + b"\x88\x01\x00" * 3, id="hypothesis-field-0-in-group"),
    pytest.param(_request(SPAN_OK + _ld(9, _kv("f", _tag(4, 1) + struct.pack(
        "<d", float("nan"))))), id="nan"),
])
def test_wire_edge_cases(body: bytes) -> None:
    _check_body(body)


def test_depth_limit_is_upbs() -> None:
    """The limit the hand cases straddle is the one upb applies."""
    ok = _request(SPAN_OK + _ld(9, _kv("d", _nested_arrays(46, 1))))
    over = _request(SPAN_OK + _ld(9, _kv("d", _nested_arrays(45, 2))))
    assert decode_otlp_protobuf(ok).spans
    with pytest.raises(DecodeError):
        decode_otlp_protobuf(over)


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("body", [
    b"\x0a\xff\xff\xff", b"\xff" * 10, b"\x0a\x05abc", b"\x0a", b"\x08",
    b"\x0a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", b"\x0f", b"\x00\x00", b"\x0c",
])
def test_malformed_body_raises_decode_error(decoder: Any, body: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_otlp_protobuf(body)
    with pytest.raises(DecodeError, match="Expected a protobuf ExportTraceServiceRequest"):
        decoder(body)


@pytest.mark.parametrize("decoder", DECODERS)
def test_empty_body_is_empty_columns(decoder: Any) -> None:
    cols = decoder(b"")
    assert cols.spans.num_rows == 0 and cols.resources == [] and cols.rejected == []
    assert cols.spans.schema == columnar.SPAN_SCHEMA


def test_schema_table_matches_descriptors() -> None:
    """The string and message fields the C validator knows are the installed proto's."""
    desc = ExportTraceServiceRequest.DESCRIPTOR
    seen: dict[str, dict[int, str]] = {}

    def walk(d: Any) -> None:
        if d.name in seen:
            return
        seen[d.name] = {}
        for f in d.fields:
            if f.message_type is not None:
                seen[d.name][f.number] = f.message_type.name
                walk(f.message_type)
            elif f.type == f.TYPE_STRING:
                seen[d.name][f.number] = "str"
    walk(desc)
    seen["Request"] = seen.pop("ExportTraceServiceRequest")
    expected = {name: {n: k for n, k in fields.items() if k == "str" or k in SCHEMA}
                for name, fields in SCHEMA.items()}
    assert seen == expected


def test_the_c_extension_is_built_where_it_can_be() -> None:
    # The install builds it whenever a C compiler is there (setup.py, optional=True); CI
    # must never run only the fallback, so there it is required outright.
    if os.environ.get("CI") or shutil.which("cc") or shutil.which("gcc"):
        assert columnar.HAVE_C_DECODER, "mentatlab._columnar is not built (make install)"
    else:
        assert not columnar.USE_C_DECODER


def test_pure_python_env_forces_the_fallback() -> None:
    code = "from mentatlab.receivers import columnar as c; print(c.USE_C_DECODER)"
    env = {**os.environ, "MENTATLAB_PURE_PYTHON": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("text", [
    b"\xff", b"\xc0\x80", b"\xc1\xbf", b"\xc2\x80", b"\xed\xa0\x80", b"\xed\x9f\xbf",
    b"\xee\x80\x80", b"\xef\xbf\xbf", b"\xf0\x8f\xbf\xbf", b"\xf0\x90\x80\x80",
    b"\xf4\x8f\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xe2\x82", b"a\x80",
    b"\xe0\x9f\xbf", b"\xe0\xa0\x80", b"12345678\xff", b"1234567\xe2\x82\xac",
])
def test_utf8_boundaries_match_upb(text: bytes) -> None:
    """upb's UTF-8 check is Python's strict one; the C check must be too."""
    body = _request(SPAN_OK + _ld(5, text))
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        with pytest.raises(DecodeError):
            decode_otlp_protobuf(body)
    _check_body(body)
