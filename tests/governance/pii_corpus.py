"""The labelled PII corpus (data/pii_corpus.jsonl, made by make_pii_corpus.py) as spans."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mentatlab.model.span import CanonicalSpan, SpanStatus

CORPUS = Path(__file__).parent / "data" / "pii_corpus.jsonl"
T0 = datetime(2026, 12, 1, tzinfo=UTC)


@dataclass
class Line:
    key: str
    value: str
    entities: list[tuple[str, str]]

    @property
    def finding_key(self) -> str:
        """The key a finding in this line must carry (``event:0:...`` for the event)."""
        return "event:0:exception.message" if self.key.startswith("event:") else self.key

    def raw_interval(self, text: str) -> tuple[int, int]:
        """Where an entity sits in the original value (as written: JSON escapes counted)."""
        for form in (text, json.dumps(text)[1:-1]):
            at = self.value.find(form)
            if at >= 0:
                return at, at + len(form)
        raise AssertionError(f"entity {text!r} not in {self.value!r}")


def load_corpus() -> list[Line]:
    return [Line(d["key"], d["value"], [tuple(e) for e in d["entities"]])  # type: ignore[misc]
            for d in map(json.loads, CORPUS.read_text().splitlines())]


def span_of(line: Line, index: int, org_id: str = "acme", project_id: str = "web") -> CanonicalSpan:
    """One span carrying the line's value where a producer would put it."""
    span = CanonicalSpan(f"{index:032x}", f"{index:016x}", "", "chat", "client", T0, T0, 0.0,
                         SpanStatus.OK, org_id=org_id, project_id=project_id)
    if line.key == "status_message":
        span.status = SpanStatus.ERROR
        span.status_message = line.value
    elif line.key.startswith("event:"):
        span.events = json.dumps([{"name": "exception", "time_ns": 1,
                                   "attributes": {"exception.type": "ValueError",
                                                  "exception.message": line.value}}])
    else:
        span.attributes = json.dumps({line.key: line.value, "gen_ai.request.model": "gpt-4o",
                                      "gen_ai.usage.input_tokens": 1234})
    return span
