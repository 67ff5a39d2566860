"""Redact: find PII in a batch of spans and record, replace, hash or drop it before storage.

The stage right after normalization (``normalize → redact → policies → … → Arrow →
price``, :func:`mentatlab.pipeline.workers.build_pipeline`), so nothing downstream (the store, the
aggregates, the live stream, the policies) sees a value the mode removed. What is scanned,
per span (docs/decisions/0017-pii-redaction.md):

* every string attribute value, except :data:`STRUCTURAL_KEYS` (model, provider and
  operation names, response and tool-call ids, trace and span ids) — finding key: the
  attribute key;
* every string event attribute (``exception.message``, ``gen_ai.*`` message events...) —
  key ``event:<i>:<key>`` (``i`` = the event's index in the span);
* the status message (often an exception message) — key ``status_message``;
* strings inside JSON-encoded values and inside array/map values
  (:mod:`mentatlab.governance.pii_redaction`).

Not scanned: the canonical columns (ids, names, models, numbers, attribution such as
``user_id``: identifiers the product groups and erases by) and the resource attributes.

The mode of a span comes from its ``org_id``/``project_id``
(:meth:`~mentatlab.governance.pii_config.PiiConfig.mode_for`). ``pii_findings`` gets the
JSON array of the findings (``category``, ``key``, ``offset``, ``length``, ``confidence``;
offsets in the original value, never the value) in every mode but ``off``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

from mentatlab.governance.pii_config import (
    PiiConfig,
    PiiMode,
    load_hash_key,
    org_hash_key,
)
from mentatlab.governance.pii_redaction import (
    MIN_LEAF_CHARS,
    Leaf,
    hash_replacement,
    leaves_of,
    redact_value,
)
from mentatlab.model.span import CanonicalSpan

__all__ = ["STATUS_MESSAGE_KEY", "STRUCTURAL_KEYS", "Redact"]

logger = logging.getLogger(__name__)

STATUS_MESSAGE_KEY: Final = "status_message"
"""Finding key of the span's status message."""
STRUCTURAL_KEYS: Final = frozenset({
    "gen_ai.request.model", "gen_ai.response.model", "gen_ai.system", "gen_ai.provider.name",
    "gen_ai.operation.name", "gen_ai.response.id", "gen_ai.response.finish_reasons",
    "gen_ai.tool.call.id", "gen_ai.tool.name", "gen_ai.tool.type", "gen_ai.output.type",
    "gen_ai.agent.id", "gen_ai.agent.name", "llm.model_name", "llm.provider", "llm.system",
    "openinference.span.kind", "traceloop.span.kind", "ai.model.id", "ai.model.provider",
    "ai.response.id", "mentat.truncated_attributes", "server.address", "server.port",
    "http.request.method", "url.scheme",
})
"""Attribute keys never scanned: names and ids the product reads (and that look like
numbers or keys), not payload. Keys ending in ``trace_id``/``span_id`` are skipped too."""
_ID_SUFFIXES = ("trace_id", "span_id", "traceid", "spanid")


def _structural(key: str) -> bool:
    return key in STRUCTURAL_KEYS or key.lower().endswith(_ID_SUFFIXES)


def _scannable(value: Any) -> bool:
    return (isinstance(value, str) and len(value) >= MIN_LEAF_CHARS) or (
        isinstance(value, (list, dict)) and bool(value))


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _loads_exact(text: str) -> Any:
    # orjson reads integers beyond 64 bits as floats; a rewrite must keep them exact
    return json.loads(text)


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # ints over 64 bits
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass(slots=True)
class _Unit:
    """One scanned value of one span: where it is, and its leaves' slice of the batch."""

    span: int
    where: str
    """``attr``, ``event`` or ``status``."""
    key: str
    """Attribute key (finding key is derived from it)."""
    event: int
    leaves: list[Leaf]
    is_json: bool
    first: int
    """Index of the first leaf in the batch's leaf list."""


@dataclass(slots=True)
class _SpanWork:
    mode: PiiMode
    units: list[_Unit] = field(default_factory=list)


class Redact:
    """Processor ``redact``: PII detection and redaction on a batch of spans.

    Args:
        config: modes, overrides and custom entities (:class:`PiiConfig`).
        hash_key: master key of ``hash`` mode (:func:`load_hash_key`); needed when some span
            can get ``hash`` mode.

    Raises:
        ConfigError: ``hash`` mode is configured and ``hash_key`` is empty.
        ImportError: a mode other than ``off`` is configured and Presidio is not installed.
    """

    name = "redact"

    def __init__(self, config: PiiConfig, hash_key: bytes = b"") -> None:
        from mentatlab.errors import ConfigError

        self.config = config
        if PiiMode.HASH in config.modes and not hash_key:
            raise ConfigError("Expected a PII hash key with pii_mode hash")
        self._hash_key = hash_key
        self._org_replacements: dict[str, Callable[..., str]] = {}
        self._detector: Any = None
        if config.scans:
            from mentatlab.governance.pii import PiiDetector

            self._detector = PiiDetector(config.custom_entities, config.phone_regions,
                                         config.ner_model)

    @classmethod
    def from_settings(cls, settings: Any) -> Redact:
        """The stage of a :class:`~mentatlab.settings.Settings` (hash key loaded if needed).

        Raises:
            ConfigError: a PII setting that does not parse, or an unusable hash key.
        """
        config = PiiConfig.from_settings(settings)
        key = b""
        if PiiMode.HASH in config.modes:
            key = load_hash_key(settings.pii_hash_key, Path(settings.data_dir))
        return cls(config, key)

    def __call__(self, spans: list[CanonicalSpan]) -> list[CanonicalSpan]:
        """Scan the N spans of a batch, in place; sets ``pii_findings`` and rewrites values.

        Columnar where it can be: the batch's candidate values (strings of scanned keys)
        are gated at once (:meth:`~mentatlab.governance.pii.PiiDetector.may_contain`), and
        only admitted values are cut into leaves and detected, in one batch call.

        Returns:
            The same N spans.
        """
        if self._detector is None:
            return spans
        candidates: list[tuple[_SpanWork, int, str, str, int, Any]] = []
        work: list[_SpanWork | None] = []
        for index, span in enumerate(spans):
            mode = self.config.mode_for(span.org_id, span.project_id)
            if mode is PiiMode.OFF:
                work.append(None)
                continue
            item = _SpanWork(mode)
            work.append(item)
            self._candidates(index, span, item, candidates)
        if not candidates:
            return spans
        admitted = self._detector.may_contain(
            [value if isinstance(value, str) else _dumps(value) for *_, value in candidates])
        texts: list[str] = []
        for (owner, index, where, key, event, value), ok in zip(candidates, admitted,
                                                                strict=True):
            if ok:
                self._add(owner, texts, _Unit(index, where, key, event, [], False, 0), value)
        if not texts:
            return spans
        found = self._detector.detect_batch(texts)
        for span, done in zip(spans, work, strict=True):
            if done is not None and done.units:
                self._apply(span, done, found)
        return spans

    @staticmethod
    def _candidates(index: int, span: CanonicalSpan, item: _SpanWork,
                    out: list[tuple[_SpanWork, int, str, str, int, Any]]) -> None:
        """The values of one span worth scanning: strings (≥ 6 chars), lists and maps.

        Appends ``(item, span index, where, key, event index, value)``; the
        :class:`_Unit` is made only for a value the batch gate admits.
        """
        if len(span.attributes) > 2:
            for key, value in _loads(span.attributes).items():
                if type(value) is str:  # most values: checked inline (hot loop)
                    if len(value) < MIN_LEAF_CHARS:
                        continue
                elif not _scannable(value):
                    continue
                if not _structural(key):
                    out.append((item, index, "attr", key, -1, value))
        if len(span.events) > 2:
            for i, event in enumerate(_loads(span.events)):
                attributes = event.get("attributes") if isinstance(event, dict) else None
                if isinstance(attributes, dict):
                    for key, value in attributes.items():
                        if _scannable(value):
                            out.append((item, index, "event", key, i, value))
        if len(span.status_message) >= MIN_LEAF_CHARS:
            out.append((item, index, "status", STATUS_MESSAGE_KEY, -1, span.status_message))

    @staticmethod
    def _add(item: _SpanWork, texts: list[str], unit: _Unit, value: Any) -> None:
        leaves, is_json = leaves_of(value)
        if leaves:
            unit.leaves, unit.is_json, unit.first = leaves, is_json, len(texts)
            texts.extend(leaf.text for leaf in leaves)
            item.units.append(unit)

    def _replacement(self, mode: PiiMode, org_id: str) -> Callable[..., str]:
        if mode is PiiMode.REDACT:
            return _placeholder
        hit = self._org_replacements.get(org_id)
        if hit is None:
            hit = hash_replacement(org_hash_key(self._hash_key, org_id))
            self._org_replacements[org_id] = hit
        return hit

    def _apply(self, span: CanonicalSpan, item: _SpanWork, found: list[Any]) -> None:
        findings: list[dict[str, Any]] = []
        changed: list[tuple[_Unit, list[Any]]] = []
        for unit in item.units:
            unit_found = found[unit.first:unit.first + len(unit.leaves)]
            if not any(unit_found):
                continue
            key = f"event:{unit.event}:{unit.key}" if unit.where == "event" else unit.key
            for leaf, leaf_found in zip(unit.leaves, unit_found, strict=True):
                for f in leaf_found:
                    start = leaf.raw_offset(f.start)
                    findings.append({"category": f.category, "key": key, "offset": start,
                                     "length": leaf.raw_offset(f.end) - start,
                                     "confidence": f.confidence})
            changed.append((unit, unit_found))
        if not findings:
            return
        span.pii_findings = orjson.dumps(findings).decode()
        if item.mode is PiiMode.DETECT:
            return
        self._rewrite(span, item, changed)

    def _rewrite(self, span: CanonicalSpan, item: _SpanWork,
                 changed: list[tuple[_Unit, list[Any]]]) -> None:
        drop = item.mode is PiiMode.DROP
        replacement = None if drop else self._replacement(item.mode, span.org_id)
        attrs = events = None
        for unit, unit_found in changed:
            if unit.where == "status":
                span.status_message = "" if replacement is None else redact_value(
                    span.status_message, unit.leaves, unit_found, False, replacement)
                continue
            if unit.where == "attr":
                attrs = attrs if attrs is not None else _loads_exact(span.attributes)
                container = attrs
            else:
                events = events if events is not None else _loads_exact(span.events)
                container = events[unit.event]["attributes"]
            if replacement is None:
                del container[unit.key]
            else:
                container[unit.key] = redact_value(container[unit.key], unit.leaves, unit_found,
                                                   unit.is_json, replacement)
        if attrs is not None:
            span.attributes = _dumps(attrs)
        if events is not None:
            span.events = _dumps(events)


def _placeholder(finding: Any, matched: str) -> str:
    return f"<{finding.category}>"
