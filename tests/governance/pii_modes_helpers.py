"""The span the PII mode tests redact: messages, tool arguments, an exception, a status."""

from __future__ import annotations

import json
from typing import Any

from pii_corpus import T0

from mentatlab.model.span import CanonicalSpan, SpanStatus

EMAIL = "dana.scully@fbi.example.com"
CARD = "4111 1111 1111 1111"
KEY = "sk-proj-" + "A1b2C3d4E5f6" * 5
MESSAGES = json.dumps([
    {"role": "system", "parts": [{"type": "text", "content": "You are a \"careful\" agent."}]},
    {"role": "user",
     "parts": [{"type": "text", "content": f"Café order: mail {EMAIL}, card {CARD}"}],
     "tokens": 1234, "price": 19.99, "id": "4bf92f3577b34da6a3ce929d0e0e4736"},
])
TOOL_ARGS = json.dumps({"to": EMAIL, "body": "see attachment", "retries": 3})
HASH_KEY = b"k" * 32


def make_span(org_id: str = "acme", project_id: str = "web", **attrs: Any) -> CanonicalSpan:
    attributes = {"gen_ai.input.messages": MESSAGES, "gen_ai.tool.call.arguments": TOOL_ARGS,
                  "gen_ai.request.model": "gpt-4o-2024-08-06", "gen_ai.usage.input_tokens": 1234,
                  "mentat.parent_span_id": "4111111111111111", "note": "nothing here", **attrs}
    events = [{"name": "exception", "time_ns": 5, "attributes": {
        "exception.type": "AuthError", "exception.message": f"key {KEY} was revoked"}}]
    return CanonicalSpan("ab" * 16, "cd" * 8, "", "chat", "client", T0, T0, 1.0,
                         SpanStatus.ERROR, f"failed for {EMAIL}", org_id=org_id,
                         project_id=project_id, attributes=json.dumps(attributes),
                         events=json.dumps(events))
