"""Received OTLP bodies as forwardable ``ExportTraceServiceRequest`` bytes (pure functions).

* Binary protobuf bodies are forwarded as received (after decompression).
* OTLP/JSON bodies are converted with ``google.protobuf.json_format``, after the
  OTLP-specific deviations of the JSON mapping are undone: trace and span ids are hex in
  OTLP/JSON, base64 in proto3 JSON
  (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding).
* Spans MentatLab refused are removed, so only accepted spans are forwarded: decoder
  refusals name the span by position (``resourceSpans[r].scopeSpans[s].spans[p]…`` or
  ``resourceSpans[r].resource``), pipeline refusals by span id (``<span_id hex>:<key>``).

Concatenated serialized ``ExportTraceServiceRequest`` messages parse as one request
whose ``resource_spans`` are the concatenation (protobuf merges repeated fields), which
is how batches are built without re-encoding.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from mentatlab.errors import ConfigError, DecodeError, FieldError
from mentatlab.receivers.decode import load_json_object

__all__ = [
    "ForwardTarget",
    "drop_rejected",
    "json_to_protobuf",
    "parse_forward_endpoint",
    "parse_headers",
]

_TRACES_PATH = "/v1/traces"
_DECODER_PATH = re.compile(
    r"^resourceSpans\[(\d+)\](?:\.resource$|\.scopeSpans\[(\d+)\]\.spans\[(\d+)\])")
_PIPELINE_KEY = re.compile(r"^([0-9a-f]{16}):")
_HEX_ID_LENGTH = {"traceId": 32, "trace_id": 32, "spanId": 16, "span_id": 16,
                  "parentSpanId": 16, "parent_span_id": 16}
_HEX = re.compile(r"^[0-9a-fA-F]*$")


@dataclass(frozen=True, slots=True)
class ForwardTarget:
    """Where forwarded spans go."""

    protocol: str
    """``http`` (OTLP/HTTP protobuf) or ``grpc`` (OTLP/gRPC)."""
    url: str
    """Full URL for ``http`` (``…/v1/traces``); ``host:port`` for ``grpc``."""
    secure: bool
    """TLS (``https://`` or ``grpcs://``)."""


def parse_forward_endpoint(endpoint: str) -> ForwardTarget:
    """Resolve ``forward_otlp_endpoint`` into a target.

    ``http(s)://host:port`` gets ``/v1/traces`` appended (as
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` does); a URL whose path already ends in ``/v1/traces``
    is used as given. ``grpc://host:port`` and ``grpcs://host:port`` select OTLP/gRPC.

    Raises:
        ConfigError: another scheme, or no host.
    """
    parts = urllib.parse.urlsplit(endpoint.strip())
    scheme = parts.scheme.lower()
    if not parts.hostname:
        raise ConfigError(f"Expected forward_otlp_endpoint to be a URL with a host, "
                          f"got {endpoint!r}")
    if scheme in ("http", "https"):
        path = parts.path.rstrip("/")
        if not path.endswith(_TRACES_PATH):
            path += _TRACES_PATH
        url = urllib.parse.urlunsplit((scheme, parts.netloc, path, parts.query, ""))
        return ForwardTarget("http", url, scheme == "https")
    if scheme in ("grpc", "grpcs"):
        port = parts.port or 4317
        return ForwardTarget("grpc", f"{parts.hostname}:{port}", scheme == "grpcs")
    raise ConfigError(f"Expected forward_otlp_endpoint to start with http://, https://, "
                      f"grpc:// or grpcs://, got {endpoint!r}")


def parse_headers(text: str) -> dict[str, str]:
    """Parse ``k=v,k=v`` (values URL-decoded, as ``OTEL_EXPORTER_OTLP_HEADERS``).

    Raises:
        ConfigError: an entry without ``=`` or with an empty key.
    """
    headers: dict[str, str] = {}
    for entry in text.split(","):
        if not entry.strip():
            continue
        key, sep, value = entry.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"Expected forward_otlp_headers entries as key=value, "
                              f"got {entry.strip()!r}")
        headers[urllib.parse.unquote(key.strip())] = urllib.parse.unquote(value.strip())
    return headers


def _positions(rejected: Iterable[FieldError]) -> tuple[set[int], set[tuple[int, int, int]],
                                                        set[bytes]]:
    """Whole resources, (resource, scope, span) positions and span ids refused."""
    resources: set[int] = set()
    positions: set[tuple[int, int, int]] = set()
    span_ids: set[bytes] = set()
    for error in rejected:
        match = _DECODER_PATH.match(error.field)
        if match is not None:
            if match.group(2) is None:
                resources.add(int(match.group(1)))
            else:
                positions.add((int(match.group(1)), int(match.group(2)), int(match.group(3))))
            continue
        key = _PIPELINE_KEY.match(error.field)
        if key is not None:
            span_ids.add(bytes.fromhex(key.group(1)))
    return resources, positions, span_ids


def _list(doc: dict[str, Any], camel: str, snake: str) -> list[Any]:
    value = doc.get(camel, doc.get(snake))
    return value if isinstance(value, list) else []


def _hex_to_base64(obj: dict[str, Any]) -> None:
    for key, length in _HEX_ID_LENGTH.items():
        value = obj.get(key)
        if isinstance(value, str) and len(value) == length and _HEX.match(value):
            obj[key] = base64.b64encode(bytes.fromhex(value)).decode()


def json_to_protobuf(body: bytes, rejected: Sequence[FieldError] = ()) -> bytes:
    """An uncompressed OTLP/JSON body as serialized ``ExportTraceServiceRequest`` bytes.

    Spans refused by the decoder (``rejected`` positions) are removed before conversion,
    so a span MentatLab could not read never makes the conversion fail.

    Args:
        body: the OTLP/JSON request body.
        rejected: the decoder's refusals of this body (pipeline refusals are applied
            by :func:`drop_rejected` afterwards).

    Raises:
        DecodeError: the JSON does not map onto ``ExportTraceServiceRequest``.
    """
    resources, positions, _ = _positions(rejected)
    doc = load_json_object(body)
    for ri, rs in enumerate(_list(doc, "resourceSpans", "resource_spans")):
        if not isinstance(rs, dict):
            continue
        for si, ss in enumerate(_list(rs, "scopeSpans", "scope_spans")):
            if not isinstance(ss, dict):
                continue
            spans = _list(ss, "spans", "spans")
            kept = [sp for pi, sp in enumerate(spans)
                    if ri not in resources and (ri, si, pi) not in positions]
            if len(kept) != len(spans):
                ss["spans"] = kept
            for span in kept:
                if isinstance(span, dict):
                    _hex_to_base64(span)
                    for link in _list(span, "links", "links"):
                        if isinstance(link, dict):
                            _hex_to_base64(link)
    message = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(doc, message, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise DecodeError(f"Expected OTLP/JSON to map onto ExportTraceServiceRequest: "
                          f"{exc}") from None
    return bytes(message.SerializeToString())


def drop_rejected(body: bytes, rejected: Sequence[FieldError], *,
                  positions_apply: bool = True) -> bytes:
    """Remove refused spans from a serialized ``ExportTraceServiceRequest``.

    Scopes and resources left without spans are removed too. Without refusals the bytes
    are returned untouched (no re-encoding).

    Args:
        body: serialized request.
        rejected: refusals of this request (decoder positions and pipeline span ids).
        positions_apply: False when positions were already applied (JSON bodies, whose
            decoder positions :func:`json_to_protobuf` removed).

    Returns:
        The serialized request without the refused spans.

    Raises:
        DecodeError: ``body`` is not an ``ExportTraceServiceRequest``.
    """
    if not rejected:
        return body
    resources, positions, span_ids = _positions(rejected)
    if not positions_apply:
        resources, positions = set(), set()
    try:
        message = ExportTraceServiceRequest.FromString(body)
    except Exception as exc:  # noqa: BLE001 — protobuf raises DecodeError/RuntimeError
        raise DecodeError(f"Expected an ExportTraceServiceRequest: {exc}") from None
    out = ExportTraceServiceRequest()
    for ri, rs in enumerate(message.resource_spans):
        if ri in resources:
            continue
        new_rs = None
        for si, ss in enumerate(rs.scope_spans):
            keep = [sp for pi, sp in enumerate(ss.spans)
                    if (ri, si, pi) not in positions and sp.span_id not in span_ids]
            if not keep:
                continue
            if new_rs is None:
                new_rs = out.resource_spans.add()
                new_rs.resource.CopyFrom(rs.resource)
                new_rs.schema_url = rs.schema_url
            new_ss = new_rs.scope_spans.add()
            new_ss.scope.CopyFrom(ss.scope)
            new_ss.schema_url = ss.schema_url
            new_ss.spans.extend(keep)
    return bytes(out.SerializeToString())
