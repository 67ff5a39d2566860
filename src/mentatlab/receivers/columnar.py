"""Columnar OTLP decoding: a protobuf ``ExportTraceServiceRequest`` into Arrow tables.

The first stage of the columnar ingest path (issue 18): the request body becomes a
:class:`SpanColumns` (Arrow tables plus a few Python dicts for resources) without a
Python object per span or attribute on the hot path. Two implementations give identical
output, and the tests run both on the conformance corpus and on Hypothesis requests:

* :func:`decode_columns_c`: the C extension ``mentatlab._columnar`` (built at install when
  a compiler is present), which walks the protobuf wire format itself;
* :func:`decode_columns_py`: the pure-Python fallback over upb's parsed message.

:func:`decode_columns` picks the C one when it imported, unless ``MENTATLAB_PURE_PYTHON=1``
(read at import). :func:`columns_to_raw_spans` rebuilds exactly the :class:`RawSpan` list
:func:`~mentatlab.receivers.decode.decode_otlp_protobuf` returns, so the rest of today's
pipeline reads the columns unchanged.

Encoding choices (docs/decisions/0028-columnar-decode.md):

* Attribute tables are CSR: a span's attributes are ``attributes[attr_offset :
  attr_offset + attr_count]``, in wire order, duplicate keys kept (readers take the last
  value at the first key's position, as a dict built in order does). Event and link
  attributes live in ``event_attributes`` and ``link_attributes`` the same way.
* No nulls: unused value slots hold ``""``, ``0``, ``0.0`` and ``false``; ``type`` says
  which slot holds the value (:data:`ATTR_TYPES`).
* Array and kvlist values are compact JSON text in ``str_value`` as Python's ``json``
  module reads it (``NaN``, ``Infinity`` and ``-Infinity`` for non-finite doubles, every
  kvlist entry in order, duplicates included; bytes as hex strings, empty values as
  ``null``), which ``json.loads`` turns back into decode.py's Python value.
* ``status_code`` is int32 (the wire's open enum, kept whole as decode.py keeps it) and an
  event's ``time_ns`` uint64 (decode.py does not bound it), not the int8 and int64 first
  sketched, so no accepted value is clipped.
* ``AnyValue.string_value_strindex`` (a profiles-signal dictionary index) reads as an
  empty value (type 0), as in decode.py.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from mentatlab.errors import DecodeError, FieldError
from mentatlab.model.raw import AttrValue, RawSpan
from mentatlab.receivers.decode import _check_ids, _check_times, _SpanError

__all__ = [
    "ATTRIBUTE_SCHEMA",
    "ATTR_TYPES",
    "EVENT_SCHEMA",
    "HAVE_C_DECODER",
    "LINK_SCHEMA",
    "SPAN_SCHEMA",
    "SpanColumns",
    "USE_C_DECODER",
    "columns_to_raw_spans",
    "decode_columns",
    "decode_columns_c",
    "decode_columns_py",
]

ATTR_TYPES = ("empty", "string", "bool", "int", "double", "bytes", "array", "kvlist")
"""``attributes.type`` codes: the index of the AnyValue kind in this tuple."""

SPAN_SCHEMA = pa.schema([
    ("trace_id", pa.string()), ("span_id", pa.string()), ("parent_span_id", pa.string()),
    ("trace_state", pa.string()), ("name", pa.string()), ("kind", pa.string()),
    ("start_time_ns", pa.int64()), ("end_time_ns", pa.int64()),
    ("status_code", pa.int32()), ("status_message", pa.string()), ("flags", pa.uint32()),
    ("resource_index", pa.int32()), ("scope_name", pa.string()),
    ("scope_version", pa.string()),
    ("attr_offset", pa.int32()), ("attr_count", pa.int32()),
    ("event_offset", pa.int32()), ("event_count", pa.int32()),
    ("link_offset", pa.int32()), ("link_count", pa.int32()),
])
"""One row per accepted span, in request order."""

ATTRIBUTE_SCHEMA = pa.schema([
    ("key", pa.string()), ("type", pa.int8()), ("str_value", pa.string()),
    ("int_value", pa.int64()), ("double_value", pa.float64()), ("bool_value", pa.bool_()),
])
"""One row per KeyValue; shared by span, event and link attributes."""

EVENT_SCHEMA = pa.schema([
    ("time_ns", pa.uint64()), ("name", pa.string()),
    ("attr_offset", pa.int32()), ("attr_count", pa.int32()),
])
"""One row per event of an accepted span; attributes in ``event_attributes``."""

LINK_SCHEMA = pa.schema([
    ("trace_id", pa.string()), ("span_id", pa.string()), ("trace_state", pa.string()),
    ("flags", pa.uint32()), ("attr_offset", pa.int32()), ("attr_count", pa.int32()),
])
"""One row per link of an accepted span (ids as hex of whatever bytes were sent)."""

_KIND_NAMES = ("unspecified", "internal", "server", "client", "producer", "consumer")
_ANY_TYPE = {None: 0, "string_value": 1, "bool_value": 2, "int_value": 3, "double_value": 4,
             "bytes_value": 5, "array_value": 6, "kvlist_value": 7,
             "string_value_strindex": 0}


@dataclass(frozen=True, slots=True)
class SpanColumns:
    """One decoded request as columns (see the module docstring for the encoding)."""

    spans: pa.Table
    """Accepted spans, schema :data:`SPAN_SCHEMA`."""
    attributes: pa.Table
    """Span attributes, schema :data:`ATTRIBUTE_SCHEMA`."""
    events: pa.Table
    """Span events, schema :data:`EVENT_SCHEMA`."""
    event_attributes: pa.Table
    """Event attributes, schema :data:`ATTRIBUTE_SCHEMA`."""
    links: pa.Table
    """Span links, schema :data:`LINK_SCHEMA`."""
    link_attributes: pa.Table
    """Link attributes, schema :data:`ATTRIBUTE_SCHEMA`."""
    resources: list[dict[str, AttrValue]] = field(default_factory=list)
    """One attribute dict per ``ResourceSpans``; ``spans.resource_index`` points here."""
    rejected: list[FieldError] = field(default_factory=list)
    """One error per refused span, as decode.py words it."""


def _bad_body(detail: object) -> DecodeError:
    return DecodeError(f"Expected a protobuf ExportTraceServiceRequest: {detail}")


# --------------------------------------------------------------------------- values


def _any_value(value: Any) -> AttrValue:
    which = value.WhichOneof("value")
    code = _ANY_TYPE[which]
    if code == 0:
        return None
    if code == 5:
        return value.bytes_value.hex()
    if code == 6:
        return [_any_value(v) for v in value.array_value.values]
    if code == 7:
        return _attrs_dict(value.kvlist_value.values)
    return getattr(value, which)


def _attrs_dict(kvs: Any) -> dict[str, AttrValue]:
    """A KeyValue list as decode.py reads it (last value wins)."""
    return {kv.key: _any_value(kv.value) for kv in kvs}


def _json_any(value: Any, out: list[str]) -> None:
    """Append the compact JSON text of an AnyValue (the C writer's exact bytes)."""
    which = value.WhichOneof("value")
    code = _ANY_TYPE[which]
    if code == 0:
        out.append("null")
    elif code == 1:
        out.append(json.dumps(value.string_value, ensure_ascii=False))
    elif code == 2:
        out.append("true" if value.bool_value else "false")
    elif code == 3:
        out.append(str(value.int_value))
    elif code == 4:
        out.append(json.dumps(value.double_value))
    elif code == 5:
        out.append(f'"{value.bytes_value.hex()}"')
    elif code == 6:
        out.append("[")
        for i, item in enumerate(value.array_value.values):
            if i:
                out.append(",")
            _json_any(item, out)
        out.append("]")
    else:
        out.append("{")
        for i, kv in enumerate(value.kvlist_value.values):
            if i:
                out.append(",")
            out.append(json.dumps(kv.key, ensure_ascii=False))
            out.append(":")
            _json_any(kv.value, out)
        out.append("}")


# --------------------------------------------------------------------------- fallback


class _AttrLists:
    """Growing columns of one attribute table (the fallback's builder)."""

    __slots__ = ("bools", "doubles", "ints", "keys", "strs", "types")

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.types: list[int] = []
        self.strs: list[str] = []
        self.ints: list[int] = []
        self.doubles: list[float] = []
        self.bools: list[bool] = []

    def add(self, kvs: Any) -> tuple[int, int]:
        """Append a KeyValue list; return its (offset, count) rows."""
        start = len(self.keys)
        for kv in kvs:
            value = kv.value
            which = value.WhichOneof("value")
            code = _ANY_TYPE[which]
            self.keys.append(kv.key)
            self.types.append(code)
            text, num, dbl, flag = "", 0, 0.0, False
            if code == 1:
                text = value.string_value
            elif code == 2:
                flag = value.bool_value
            elif code == 3:
                num = value.int_value
            elif code == 4:
                dbl = value.double_value
            elif code == 5:
                text = value.bytes_value.hex()
            elif code >= 6:
                parts: list[str] = []
                _json_any(value, parts)
                text = "".join(parts)
            self.strs.append(text)
            self.ints.append(num)
            self.doubles.append(dbl)
            self.bools.append(flag)
        return start, len(self.keys) - start

    def table(self) -> pa.Table:
        return pa.Table.from_arrays([
            pa.array(self.keys, pa.string()), pa.array(self.types, pa.int8()),
            pa.array(self.strs, pa.string()), pa.array(self.ints, pa.int64()),
            pa.array(self.doubles, pa.float64()), pa.array(self.bools, pa.bool_()),
        ], schema=ATTRIBUTE_SCHEMA)


def decode_columns_py(body: bytes) -> SpanColumns:
    """Decode a protobuf ``ExportTraceServiceRequest`` into columns, in pure Python.

    Args:
        body: the uncompressed request body.

    Returns:
        The columns of the accepted spans (N rows in ``spans``), and the refused ones.

    Raises:
        DecodeError: the bytes are not an ``ExportTraceServiceRequest``.
    """
    try:
        msg = ExportTraceServiceRequest.FromString(body)
    except ProtobufDecodeError as exc:
        raise _bad_body(exc) from None
    cols: dict[str, list[Any]] = {name: [] for name in SPAN_SCHEMA.names}
    attrs, ev_attrs, ln_attrs = _AttrLists(), _AttrLists(), _AttrLists()
    events: dict[str, list[Any]] = {name: [] for name in EVENT_SCHEMA.names}
    links: dict[str, list[Any]] = {name: [] for name in LINK_SCHEMA.names}
    resources: list[dict[str, AttrValue]] = []
    rejected: list[FieldError] = []
    for ri, rs in enumerate(msg.resource_spans):
        resources.append(_attrs_dict(rs.resource.attributes))
        for si, ss in enumerate(rs.scope_spans):
            scope_name, scope_version = ss.scope.name, ss.scope.version
            for pi, sp in enumerate(ss.spans):
                try:
                    parent = _check_ids(sp.trace_id, sp.span_id, sp.parent_span_id)
                    _check_times(sp.start_time_unix_nano, sp.end_time_unix_nano)
                except _SpanError as exc:
                    rejected.append(FieldError(
                        f"resourceSpans[{ri}].scopeSpans[{si}].spans[{pi}].{exc.field}",
                        exc.reason))
                    continue
                kind = sp.kind
                row = (sp.trace_id.hex(), sp.span_id.hex(), parent, sp.trace_state, sp.name,
                       _KIND_NAMES[kind] if 0 <= kind < 6 else "unspecified",
                       sp.start_time_unix_nano, sp.end_time_unix_nano, sp.status.code,
                       sp.status.message, sp.flags, ri, scope_name, scope_version,
                       *attrs.add(sp.attributes))
                for name, value in zip(SPAN_SCHEMA.names, row, strict=False):
                    cols[name].append(value)
                cols["event_offset"].append(len(events["name"]))
                cols["event_count"].append(len(sp.events))
                for ev in sp.events:
                    events["time_ns"].append(ev.time_unix_nano)
                    events["name"].append(ev.name)
                    offset, count = ev_attrs.add(ev.attributes)
                    events["attr_offset"].append(offset)
                    events["attr_count"].append(count)
                cols["link_offset"].append(len(links["span_id"]))
                cols["link_count"].append(len(sp.links))
                for ln in sp.links:
                    links["trace_id"].append(ln.trace_id.hex())
                    links["span_id"].append(ln.span_id.hex())
                    links["trace_state"].append(ln.trace_state)
                    links["flags"].append(ln.flags)
                    offset, count = ln_attrs.add(ln.attributes)
                    links["attr_offset"].append(offset)
                    links["attr_count"].append(count)
    return SpanColumns(
        spans=pa.Table.from_pydict(cols, schema=SPAN_SCHEMA),
        attributes=attrs.table(),
        events=pa.Table.from_pydict(events, schema=EVENT_SCHEMA),
        event_attributes=ev_attrs.table(),
        links=pa.Table.from_pydict(links, schema=LINK_SCHEMA),
        link_attributes=ln_attrs.table(),
        resources=resources,
        rejected=rejected,
    )


# --------------------------------------------------------------------------- C


try:
    from mentatlab import _columnar  # type: ignore[attr-defined, unused-ignore]
except ImportError:
    _columnar = None

HAVE_C_DECODER = _columnar is not None
"""Whether the C extension imported (:func:`decode_columns_c` works)."""

USE_C_DECODER = HAVE_C_DECODER and os.environ.get("MENTATLAB_PURE_PYTHON") != "1"
"""Whether ingest decodes with the C extension: built, and ``MENTATLAB_PURE_PYTHON`` is not
``1`` in the process environment (read at import; docs/settings.md)."""


def _wrap(schema: pa.Schema, num_rows: int, buffers: dict[str, Any]) -> pa.Table:
    arrays = []
    for fld in schema:
        bufs = buffers[fld.name]
        if isinstance(bufs, tuple):  # a string column: offsets, data
            arrays.append(pa.Array.from_buffers(
                fld.type, num_rows, [None, pa.py_buffer(bufs[0]), pa.py_buffer(bufs[1])]))
        else:
            arrays.append(pa.Array.from_buffers(fld.type, num_rows, [None, pa.py_buffer(bufs)]))
    return pa.Table.from_arrays(arrays, schema=schema)


def decode_columns_c(body: bytes) -> SpanColumns:
    """Decode like :func:`decode_columns_py`, in the C extension ``mentatlab._columnar``.

    Args:
        body: the uncompressed request body.

    Returns:
        The same columns :func:`decode_columns_py` returns.

    Raises:
        DecodeError: the bytes are not an ``ExportTraceServiceRequest``.
        ImportError: the extension is not built (see :data:`HAVE_C_DECODER`).
    """
    if _columnar is None:
        raise ImportError("mentatlab._columnar is not built (no compiler at install)")
    view = memoryview(body)
    try:
        out = _columnar.decode(view)
    except ValueError as exc:
        raise _bad_body(exc) from None
    (n_spans, span_bufs), attr_out, events_out, ev_attr_out, links_out, ln_attr_out, \
        resource_slices, rejected_raw = out
    resources = [
        _attrs_dict(Resource.FromString(b"".join(view[a:b] for a, b in slices)).attributes)
        if slices else {} for slices in resource_slices]
    rejected: list[FieldError] = []
    for ri, si, pi, trace_id, span_id, parent_id, start_ns, end_ns in rejected_raw:
        try:
            _check_ids(trace_id, span_id, parent_id)
            _check_times(start_ns, end_ns)
        except _SpanError as exc:
            rejected.append(FieldError(
                f"resourceSpans[{ri}].scopeSpans[{si}].spans[{pi}].{exc.field}", exc.reason))
        else:  # pragma: no cover - the C checks are decode.py's
            raise AssertionError(f"C decoder refused a valid span {ri}/{si}/{pi}")
    return SpanColumns(
        spans=_wrap(SPAN_SCHEMA, n_spans, span_bufs),
        attributes=_wrap(ATTRIBUTE_SCHEMA, *attr_out),
        events=_wrap(EVENT_SCHEMA, *events_out),
        event_attributes=_wrap(ATTRIBUTE_SCHEMA, *ev_attr_out),
        links=_wrap(LINK_SCHEMA, *links_out),
        link_attributes=_wrap(ATTRIBUTE_SCHEMA, *ln_attr_out),
        resources=resources,
        rejected=rejected,
    )


def decode_columns(body: bytes) -> SpanColumns:
    """Decode a protobuf ``ExportTraceServiceRequest`` body into :class:`SpanColumns`.

    Runs the C extension when it is built (:data:`HAVE_C_DECODER`) and
    ``MENTATLAB_PURE_PYTHON`` is not ``1``, else the pure-Python fallback; both give the
    same columns.

    Args:
        body: the uncompressed request body.

    Returns:
        The columns of the accepted spans, and one :class:`FieldError` per refused span.

    Raises:
        DecodeError: the bytes are not an ``ExportTraceServiceRequest``.
    """
    if USE_C_DECODER:
        return decode_columns_c(body)
    return decode_columns_py(body)


# --------------------------------------------------------------------------- adapter


def _attr_values(table: pa.Table) -> tuple[list[str], list[AttrValue]]:
    keys: list[str] = table.column("key").to_pylist()
    types: list[int] = table.column("type").to_pylist()
    strs: list[str] = table.column("str_value").to_pylist()
    ints: list[int] = table.column("int_value").to_pylist()
    doubles: list[float] = table.column("double_value").to_pylist()
    bools: list[bool] = table.column("bool_value").to_pylist()
    values: list[AttrValue] = []
    for code, text, num, dbl, flag in zip(types, strs, ints, doubles, bools, strict=True):
        if code == 1 or code == 5:
            values.append(text)
        elif code == 3:
            values.append(num)
        elif code == 4:
            values.append(dbl)
        elif code == 2:
            values.append(flag)
        elif code == 0:
            values.append(None)
        else:
            values.append(json.loads(text))
    return keys, values


def _csr_dicts(keys: list[str], values: list[AttrValue], offsets: list[int],
               counts: list[int]) -> list[dict[str, AttrValue]]:
    return [dict(zip(keys[o:o + c], values[o:o + c], strict=True))
            for o, c in zip(offsets, counts, strict=True)]


def columns_to_raw_spans(cols: SpanColumns) -> list[RawSpan]:
    """Rebuild the spans :func:`~mentatlab.receivers.decode.decode_otlp_protobuf` returns.

    Args:
        cols: decoded columns (N spans).

    Returns:
        N :class:`RawSpan`, equal field by field to decode.py's for the same body; spans of
        one ``ResourceSpans`` share one ``resource`` dict, as there.
    """
    sp = {name: cols.spans.column(name).to_pylist() for name in SPAN_SCHEMA.names}
    attrs = _csr_dicts(*_attr_values(cols.attributes), sp["attr_offset"], sp["attr_count"])
    ev = {name: cols.events.column(name).to_pylist() for name in EVENT_SCHEMA.names}
    ev_attrs = _csr_dicts(*_attr_values(cols.event_attributes), ev["attr_offset"],
                          ev["attr_count"])
    events = [{"name": n, "time_ns": t, "attributes": a}
              for n, t, a in zip(ev["name"], ev["time_ns"], ev_attrs, strict=True)]
    ln = {name: cols.links.column(name).to_pylist() for name in LINK_SCHEMA.names}
    ln_attrs = _csr_dicts(*_attr_values(cols.link_attributes), ln["attr_offset"],
                          ln["attr_count"])
    links = [{"trace_id": t, "span_id": s, "attributes": a}
             for t, s, a in zip(ln["trace_id"], ln["span_id"], ln_attrs, strict=True)]
    resources = cols.resources
    return [
        RawSpan(
            sp["trace_id"][i], sp["span_id"][i], sp["parent_span_id"][i], sp["name"][i],
            sp["start_time_ns"][i], sp["end_time_ns"][i], sp["kind"][i],
            sp["status_code"][i], sp["status_message"][i], attrs[i],
            events[sp["event_offset"][i]:sp["event_offset"][i] + sp["event_count"][i]],
            links[sp["link_offset"][i]:sp["link_offset"][i] + sp["link_count"][i]],
            resources[sp["resource_index"][i]], sp["scope_name"][i], sp["scope_version"][i],
        )
        for i in range(cols.spans.num_rows)
    ]
