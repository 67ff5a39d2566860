"""OTLP trace decoding: protobuf, OTLP/JSON and gRPC requests into :class:`RawSpan` lists.

Per span validation (the rest of the request still decodes when one span is refused):

* ``traceId`` must be 16 bytes and not all zero; ``spanId`` 8 bytes and not all zero;
  ``parentSpanId`` empty or 8 bytes (all zero is read as "no parent");
* ``startTimeUnixNano`` must be set and ``endTimeUnixNano`` not before it, nor after
  :data:`MAX_TIME_NS` (2262-04-11, the end of what the store holds).

OTLP/JSON (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding) is read
leniently: lowerCamelCase and snake_case field names, ids in hex of either case, enum
integers or enum names (``SPAN_KIND_SERVER``, ``STATUS_CODE_ERROR``), 64-bit integers as
numbers or decimal strings, ``doubleValue`` as a number or a string (``"NaN"``).
Ids in base64 are not valid OTLP/JSON, but protobuf's own JSON printer and early
OpenTelemetry JS exporters send them; we accept them because the lengths cannot be
confused (a trace id is 32 hex chars or 24/22 base64 chars, a span id 16 hex or 12/11
base64 chars). ``bytesValue`` is base64 as in proto3 JSON. Bytes values become
lowercase hex strings.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from mentatlab.errors import DecodeError, FieldError
from mentatlab.model.raw import AttrValue, RawSpan
from mentatlab.receivers.base import MAX_TIME_NS, DecodedBatch

__all__ = [
    "DecodedBatch",
    "decode_export_request",
    "decode_otlp_json",
    "decode_otlp_protobuf",
    "load_json_object",
]

_KIND_NAMES = ("unspecified", "internal", "server", "client", "producer", "consumer")
_KIND_BY_NAME = {f"SPAN_KIND_{n.upper()}": i for i, n in enumerate(_KIND_NAMES)}
_KIND_BY_NAME.update({n: i for i, n in enumerate(_KIND_NAMES)})
_STATUS_BY_NAME = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2,
                   "unset": 0, "ok": 1, "error": 2}
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)


class _SpanError(ValueError):
    """A refused span: the field (relative to the span) and the reason."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def _check_ids(trace_id: bytes, span_id: bytes, parent_id: bytes) -> str:
    """Validate ids; return the parent span id as hex (``""`` for a root span)."""
    if len(trace_id) != 16 or trace_id == _ZERO_TRACE:
        raise _SpanError("traceId", f"expected 16 non-zero bytes, got {trace_id.hex()!r}")
    if len(span_id) != 8 or span_id == _ZERO_SPAN:
        raise _SpanError("spanId", f"expected 8 non-zero bytes, got {span_id.hex()!r}")
    if not parent_id or parent_id == _ZERO_SPAN:
        return ""
    if len(parent_id) != 8:
        raise _SpanError("parentSpanId", f"expected 8 bytes or none, got {parent_id.hex()!r}")
    return parent_id.hex()


def _check_times(start_ns: int, end_ns: int) -> None:
    if start_ns <= 0:
        raise _SpanError("startTimeUnixNano", "expected a start time, got none")
    if end_ns < start_ns:
        raise _SpanError("endTimeUnixNano",
                         f"expected end ({end_ns} ns) not before start ({start_ns} ns)")
    if end_ns > MAX_TIME_NS:  # uint64 on the wire; the store ends in 2262
        raise _SpanError("endTimeUnixNano" if start_ns <= MAX_TIME_NS else "startTimeUnixNano",
                         f"expected a time at most 2262-04-11T23:47:16Z ({MAX_TIME_NS} ns), "
                         f"got {end_ns} ns")


# --------------------------------------------------------------------------- protobuf


def _pb_any(value: Any) -> AttrValue:
    which = value.WhichOneof("value")
    if which is None:
        return None
    return _PB_ANY[which](value)


def _pb_attrs(kvs: Iterable[Any]) -> dict[str, AttrValue]:
    out: dict[str, AttrValue] = {}
    for kv in kvs:
        value = kv.value
        which = value.WhichOneof("value")
        if which == "string_value":
            out[kv.key] = value.string_value
        else:
            out[kv.key] = None if which is None else _PB_ANY[which](value)
    return out


_PB_ANY: dict[str, Callable[[Any], AttrValue]] = {
    "string_value": lambda v: v.string_value,
    "bool_value": lambda v: v.bool_value,
    "int_value": lambda v: v.int_value,
    "double_value": lambda v: v.double_value,
    "bytes_value": lambda v: v.bytes_value.hex(),
    "array_value": lambda v: [_pb_any(x) for x in v.array_value.values],
    "kvlist_value": lambda v: _pb_attrs(v.kvlist_value.values),
    # a profiles-signal dictionary index: no value a trace can carry (read as empty; a
    # KeyError here used to fail the whole request)
    "string_value_strindex": lambda v: None,
}


def _pb_span(sp: Any, resource: dict[str, AttrValue], scope_name: str,
             scope_version: str) -> RawSpan:
    parent = _check_ids(sp.trace_id, sp.span_id, sp.parent_span_id)
    start_ns = sp.start_time_unix_nano
    end_ns = sp.end_time_unix_nano
    _check_times(start_ns, end_ns)
    kind = sp.kind
    status = sp.status
    return RawSpan(
        sp.trace_id.hex(), sp.span_id.hex(), parent, sp.name, start_ns, end_ns,
        _KIND_NAMES[kind] if 0 <= kind < 6 else "unspecified",
        status.code, status.message,
        _pb_attrs(sp.attributes),
        [{"name": e.name, "time_ns": e.time_unix_nano, "attributes": _pb_attrs(e.attributes)}
         for e in sp.events] if sp.events else [],
        [{"trace_id": ln.trace_id.hex(), "span_id": ln.span_id.hex(),
          "attributes": _pb_attrs(ln.attributes)} for ln in sp.links] if sp.links else [],
        resource, scope_name, scope_version,
    )


def decode_export_request(msg: ExportTraceServiceRequest) -> DecodedBatch:
    """Decode a parsed ``ExportTraceServiceRequest`` (protobuf and gRPC paths).

    Args:
        msg: the request message.

    Returns:
        The valid spans and one :class:`FieldError` per refused span.
    """
    batch = DecodedBatch()
    spans = batch.spans
    for ri, rs in enumerate(msg.resource_spans):
        resource = _pb_attrs(rs.resource.attributes)
        for si, ss in enumerate(rs.scope_spans):
            scope = ss.scope
            scope_name = scope.name
            scope_version = scope.version
            for pi, sp in enumerate(ss.spans):
                try:
                    spans.append(_pb_span(sp, resource, scope_name, scope_version))
                except _SpanError as exc:
                    batch.rejected.append(FieldError(
                        f"resourceSpans[{ri}].scopeSpans[{si}].spans[{pi}].{exc.field}",
                        exc.reason))
    return batch


def decode_otlp_protobuf(body: bytes) -> DecodedBatch:
    """Decode a binary protobuf ``ExportTraceServiceRequest``.

    Args:
        body: the uncompressed request body.

    Returns:
        The valid spans and one :class:`FieldError` per refused span.

    Raises:
        DecodeError: the bytes are not an ``ExportTraceServiceRequest``.
    """
    try:
        msg = ExportTraceServiceRequest.FromString(body)
    except ProtobufDecodeError as exc:
        raise DecodeError(f"Expected a protobuf ExportTraceServiceRequest: {exc}") from None
    return decode_export_request(msg)


# --------------------------------------------------------------------------- OTLP/JSON


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _json_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError(f"expected an integer or a decimal string, got {value!r}")


def _json_float(value: Any) -> float:
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"expected a number, got {value!r}")


def _json_bytes(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"expected a base64 string, got {value!r}")
    text = value.replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


_ID_BASE64_CHARS = {16: (24, 22), 8: (12, 11)}


def _json_id(value: Any, nbytes: int) -> bytes:
    """An id from its hex (any case) or, leniently, base64 form; ``b""`` when absent."""
    if value is None or value == "":
        return b""
    if not isinstance(value, str):
        raise ValueError(f"expected a hex string, got {value!r}")
    try:
        if len(value) in _ID_BASE64_CHARS[nbytes]:
            return _json_bytes(value)
        return bytes.fromhex(value)
    except (ValueError, binascii.Error):
        raise ValueError(f"expected {2 * nbytes} hex digits, got {value!r}") from None


def _json_any(value: Any) -> AttrValue:
    if not isinstance(value, dict):
        raise ValueError(f"expected an AnyValue object, got {value!r}")
    for key, inner in value.items():
        decoder = _JSON_ANY.get(key)
        if decoder is not None:
            return decoder(inner)
    return None


def _json_attrs(kvs: Any) -> dict[str, AttrValue]:
    if not kvs:
        return {}
    if not isinstance(kvs, list):
        raise ValueError(f"expected a list of key/value objects, got {kvs!r}")
    out: dict[str, AttrValue] = {}
    for kv in kvs:
        value = kv.get("value")
        if value is not None:
            string = value.get("stringValue")
            if isinstance(string, str):
                out[kv.get("key", "")] = string
                continue
        out[kv.get("key", "")] = None if value is None else _json_any(value)
    return out


def _json_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a string, got {value!r}")


def _json_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"expected true or false, got {value!r}")


def _json_array(value: Any) -> list[AttrValue]:
    return [_json_any(x) for x in (value or {}).get("values") or ()]


def _json_kvlist(value: Any) -> dict[str, AttrValue]:
    return _json_attrs((value or {}).get("values"))


_JSON_ANY: dict[str, Callable[[Any], AttrValue]] = {}
for _camel, _snake, _fn in (
    ("stringValue", "string_value", _json_str),
    ("boolValue", "bool_value", _json_bool),
    ("intValue", "int_value", _json_int),
    ("doubleValue", "double_value", _json_float),
    ("bytesValue", "bytes_value", lambda v: _json_bytes(v).hex()),
    ("arrayValue", "array_value", _json_array),
    ("kvlistValue", "kvlist_value", _json_kvlist),
):
    _JSON_ANY[_camel] = _JSON_ANY[_snake] = _fn


def _json_enum(value: Any, names: dict[str, int], field: str) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value in names:
        return names[value]
    raise _SpanError(field, f"expected an enum integer or name, got {value!r}")


def _json_span(sp: dict[str, Any], resource: dict[str, AttrValue], scope_name: str,
               scope_version: str) -> RawSpan:
    try:
        trace_id = _json_id(_get(sp, "traceId", "trace_id"), 16)
    except ValueError as exc:
        raise _SpanError("traceId", str(exc)) from None
    try:
        span_id = _json_id(_get(sp, "spanId", "span_id"), 8)
    except ValueError as exc:
        raise _SpanError("spanId", str(exc)) from None
    try:
        parent_id = _json_id(_get(sp, "parentSpanId", "parent_span_id"), 8)
    except ValueError as exc:
        raise _SpanError("parentSpanId", str(exc)) from None
    parent = _check_ids(trace_id, span_id, parent_id)
    start_ns = _json_int(_get(sp, "startTimeUnixNano", "start_time_unix_nano") or 0)
    end_ns = _json_int(_get(sp, "endTimeUnixNano", "end_time_unix_nano") or 0)
    _check_times(start_ns, end_ns)
    kind = _json_enum(sp.get("kind"), _KIND_BY_NAME, "kind")
    status = sp.get("status") or {}
    try:
        attributes = _json_attrs(sp.get("attributes"))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise _SpanError("attributes", f"malformed attribute: {exc!r}") from None
    events = [
        {"name": e.get("name", ""),
         "time_ns": _json_int(_get(e, "timeUnixNano", "time_unix_nano") or 0),
         "attributes": _json_attrs(e.get("attributes"))}
        for e in sp.get("events") or ()]
    links = [
        {"trace_id": _json_id(_get(ln, "traceId", "trace_id"), 16).hex(),
         "span_id": _json_id(_get(ln, "spanId", "span_id"), 8).hex(),
         "attributes": _json_attrs(ln.get("attributes"))}
        for ln in sp.get("links") or ()]
    return RawSpan(
        trace_id.hex(), span_id.hex(), parent, _json_str(sp.get("name", "")), start_ns, end_ns,
        _KIND_NAMES[kind] if 0 <= kind < 6 else "unspecified",
        _json_enum(status.get("code"), _STATUS_BY_NAME, "status.code"),
        _json_str(status.get("message", "")),
        attributes, events, links, resource, scope_name, scope_version,
    )


def _json_list(obj: dict[str, Any], camel: str, snake: str, where: str) -> list[Any]:
    value = _get(obj, camel, snake)
    if value is None:
        return []
    if not isinstance(value, list):
        raise DecodeError(f"Expected {where}{camel} to be a list, got {type(value).__name__}")
    return value


def load_json_object(body: bytes) -> dict[str, Any]:
    """Parse a JSON request body that must be one object.

    Raises:
        DecodeError: the body is not JSON, or its top level is not an object.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"Expected a JSON body: {exc}") from None
    if not isinstance(doc, dict):
        raise DecodeError(f"Expected a JSON object, got {type(doc).__name__}")
    return doc


def decode_otlp_json(body: bytes) -> DecodedBatch:
    """Decode an OTLP/JSON ``ExportTraceServiceRequest`` (see the module docstring).

    Args:
        body: the uncompressed request body, UTF-8 JSON.

    Returns:
        The valid spans and one :class:`FieldError` per refused span.

    Raises:
        DecodeError: the body is not JSON or not shaped like an export request.
    """
    doc = load_json_object(body)
    batch = DecodedBatch()
    for ri, rs in enumerate(_json_list(doc, "resourceSpans", "resource_spans", "")):
        where = f"resourceSpans[{ri}]"
        if not isinstance(rs, dict):
            raise DecodeError(f"Expected {where} to be an object")
        resource_error = ""
        try:
            resource = _json_attrs((rs.get("resource") or {}).get("attributes"))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            resource, resource_error = {}, f"malformed resource attribute: {exc!r}"
        for si, ss in enumerate(_json_list(rs, "scopeSpans", "scope_spans", f"{where}.")):
            if not isinstance(ss, dict):
                raise DecodeError(f"Expected {where}.scopeSpans[{si}] to be an object")
            scope = ss.get("scope") or {}
            if not isinstance(scope, dict):
                raise DecodeError(f"Expected {where}.scopeSpans[{si}].scope to be an object")
            scope_name = str(scope.get("name") or "")
            scope_version = str(scope.get("version") or "")
            spans_where = f"{where}.scopeSpans[{si}]."
            for pi, sp in enumerate(_json_list(ss, "spans", "spans", spans_where)):
                path = f"{spans_where}spans[{pi}]"
                if resource_error:
                    batch.rejected.append(FieldError(f"{where}.resource", resource_error))
                    continue
                try:
                    if not isinstance(sp, dict):
                        raise _SpanError("", "expected a span object")
                    batch.spans.append(_json_span(sp, resource, scope_name, scope_version))
                except _SpanError as exc:
                    field = f"{path}.{exc.field}" if exc.field else path
                    batch.rejected.append(FieldError(field, exc.reason))
                except (ValueError, TypeError, KeyError, AttributeError) as exc:
                    batch.rejected.append(FieldError(path, f"malformed span: {exc!r}"))
    return batch
