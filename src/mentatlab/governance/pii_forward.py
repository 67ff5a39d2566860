"""The same PII redaction on the copy of a request that is forwarded to another OTLP backend.

Forwarding (docs/forwarding.md) sends the request as the agent sent it, not MentatLab's
rows. With ``forward_pii = redacted`` (the default) the ingest path hands the forwarder a
:data:`ForwardPlan` built from the committed rows (:func:`forward_plan`): for each span
that the redact stage changed, its mode, org and ``pii_findings``. The forwarder applies it
to the request message in its sender thread (:func:`apply_forward_plan`), so no detection
runs twice and the forwarded placeholders are exactly the stored ones (``hash`` mode: the
same per-org HMAC). Offsets of findings are in the original values, which is what the
request holds:

* a string attribute, event attribute or status message gets its findings replaced in
  place (``redact``/``hash``) or is removed (``drop``; the status message is emptied);
* a finding in an array or map value (whose element the finding does not name) removes
  that attribute in every mode.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

from mentatlab.governance.pii_config import PiiConfig, PiiMode, org_hash_key
from mentatlab.governance.pii_redaction import HASH_HEX_CHARS

__all__ = ["ForwardPlan", "SpanPlan", "apply_forward_plan", "forward_plan"]

_STATUS_KEY: Final = "status_message"
TRUNCATED_ATTRIBUTES_KEY: Final = "mentat.truncated_attributes"
"""The span attribute normalization lists cut keys in (``pipeline/normalize.py``)."""


@dataclass(frozen=True, slots=True)
class SpanPlan:
    """What to do to one forwarded span: the mode its rows got, and their findings."""

    mode: PiiMode
    org_id: str
    findings: tuple[tuple[str, str, int, int], ...]
    """``(category, key, offset, length)`` per finding (``pii_findings`` of the row)."""
    truncated: tuple[str, ...] = ()
    """Attribute keys normalization cut (only their first ``limit_bytes`` were scanned)."""
    limit_bytes: int = 0
    """``max_attribute_value_bytes``: forwarded ``truncated`` values are cut to it too."""


ForwardPlan: TypeAlias = Mapping[tuple[bytes, bytes], SpanPlan]
"""``{(trace_id, span_id) as bytes: SpanPlan}`` of the spans a forwarded copy must change."""


def forward_plan(table: pa.Table, config: PiiConfig,
                 limit_bytes: int = 0) -> dict[tuple[bytes, bytes], SpanPlan]:
    """The plan of a committed batch: its rows whose forwarded copy must change.

    Args:
        table: committed rows (``SPAN_SCHEMA``: ``trace_id``, ``span_id``, ``org_id``,
            ``project_id``, ``pii_findings``, ``attributes``).
        config: the PII configuration the rows were redacted with.
        limit_bytes: ``max_attribute_value_bytes`` (values normalization cut were scanned
            only this far, so the forwarded copy is cut alike).

    Returns:
        The plan; empty when no row of a scanned span has findings or cut attributes.
    """
    if table.num_rows == 0 or not (config.modes - {PiiMode.OFF, PiiMode.DETECT}):
        return {}
    cut = pc.match_substring(table["attributes"], f'"{TRUNCATED_ATTRIBUTES_KEY}"')
    rows = table.filter(pc.or_(pc.not_equal(table["pii_findings"], ""), cut))
    plan: dict[tuple[bytes, bytes], SpanPlan] = {}
    for row in rows.select(["trace_id", "span_id", "org_id", "project_id", "pii_findings",
                            "attributes"]).to_pylist():
        mode = config.mode_for(row["org_id"], row["project_id"])
        if mode in (PiiMode.OFF, PiiMode.DETECT):
            continue
        findings = tuple((f["category"], f["key"], int(f["offset"]), int(f["length"]))
                         for f in json.loads(row["pii_findings"] or "[]"))
        truncated: tuple[str, ...] = ()
        if TRUNCATED_ATTRIBUTES_KEY in row["attributes"]:
            listed = json.loads(row["attributes"]).get(TRUNCATED_ATTRIBUTES_KEY)
            truncated = tuple(str(k) for k in listed) if isinstance(listed, list) else ()
        plan[(bytes.fromhex(row["trace_id"]), bytes.fromhex(row["span_id"]))] = SpanPlan(
            mode, row["org_id"], findings, truncated, limit_bytes)
    return plan


def _decoded(raw: str) -> str:
    """The matched text as the redact stage hashed it (JSON escapes undone)."""
    if "\\" not in raw:
        return raw
    try:
        value = json.loads(f'"{raw}"')
    except json.JSONDecodeError:
        return raw
    return value if isinstance(value, str) else raw


def _replace(text: str, findings: list[tuple[str, int, int]], plan: SpanPlan,
             org_key: bytes) -> str | None:
    """``text`` with the findings replaced; None when a finding does not fit in it."""
    parts: list[str] = []
    last = 0
    for category, offset, length in sorted(findings, key=lambda f: f[1]):
        if offset < last or offset + length > len(text):
            return None
        parts.append(text[last:offset])
        if plan.mode is PiiMode.HASH:
            digest = hmac.new(org_key, _decoded(text[offset:offset + length]).encode(),
                              hashlib.sha256).hexdigest()[:HASH_HEX_CHARS]
            parts.append(f"<{category}:{digest}>")
        else:
            parts.append(f"<{category}>")
        last = offset + length
    parts.append(text[last:])
    return "".join(parts)


def _cut(text: str, limit_bytes: int) -> str:
    encoded = text.encode()
    return text if len(encoded) <= limit_bytes else \
        encoded[:limit_bytes].decode("utf-8", "ignore")


def _apply_to_attributes(attributes: Any, by_key: dict[str, list[tuple[str, int, int]]],
                         plan: SpanPlan, org_key: bytes, truncated: tuple[str, ...] = ()
                         ) -> None:
    drop: list[int] = []
    for index, kv in enumerate(attributes):
        findings = by_key.get(kv.key)
        is_string = kv.value.WhichOneof("value") == "string_value"
        if kv.key in truncated and is_string and plan.limit_bytes:
            kv.value.string_value = _cut(kv.value.string_value, plan.limit_bytes)
        if not findings:
            continue
        new = None
        if plan.mode is not PiiMode.DROP and is_string:
            new = _replace(kv.value.string_value, findings, plan, org_key)
        if new is None:
            drop.append(index)
        else:
            kv.value.string_value = new
    for index in reversed(drop):
        del attributes[index]


def apply_forward_plan(message: Any, plan: ForwardPlan, master_key: bytes = b"") -> int:
    """Apply a plan to an ``ExportTraceServiceRequest`` in place.

    Args:
        message: the request (``opentelemetry.proto`` message).
        plan: from :func:`forward_plan`.
        master_key: the ``hash`` mode master key (needed when a span's mode is ``hash``).

    Returns:
        The number of spans changed.
    """
    changed = 0
    org_keys: dict[str, bytes] = {}
    for rs in message.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                item = plan.get((bytes(span.trace_id), bytes(span.span_id)))
                if item is None:
                    continue
                org_key = b""
                if item.mode is PiiMode.HASH:
                    org_key = org_keys.get(item.org_id) or org_hash_key(master_key, item.org_id)
                    org_keys[item.org_id] = org_key
                attrs: dict[str, list[tuple[str, int, int]]] = {}
                events: dict[int, dict[str, list[tuple[str, int, int]]]] = {}
                status: list[tuple[str, int, int]] = []
                for category, key, offset, length in item.findings:
                    entry = (category, offset, length)
                    if key == _STATUS_KEY:
                        status.append(entry)
                    elif key.startswith("event:"):
                        _, position, name = key.split(":", 2)
                        events.setdefault(int(position), {}).setdefault(name, []).append(entry)
                    else:
                        attrs.setdefault(key, []).append(entry)
                _apply_to_attributes(span.attributes, attrs, item, org_key, item.truncated)
                for index, by_key in events.items():
                    if index < len(span.events):
                        _apply_to_attributes(span.events[index].attributes, by_key, item,
                                             org_key)
                if status:
                    new = None if item.mode is PiiMode.DROP else _replace(
                        span.status.message, status, item, org_key)
                    span.status.message = new or ""
                changed += 1
    return changed
