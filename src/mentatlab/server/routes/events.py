"""``POST /api/v1/events``: MentatLab's native agent events (JSON array or NDJSON).

``*.started`` events wait in the :class:`~mentatlab.receivers.events.EventPairer` for
their ``*.completed``; a pair (or a one-shot event) becomes a span and is committed before
the answer. Each refused event gets its own field/reason pairs.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from pydantic import BaseModel

from mentatlab.server.deps import resolve_tenancy, server_state
from mentatlab.server.errors import FieldErrorBody, error_responses
from mentatlab.server.routes.otlp import read_capped_body

__all__ = ["EventsAnswer", "router"]

router = APIRouter(tags=["events"])


class EventsAnswer(BaseModel):
    """Outcome of a batch of events."""

    ok: bool = True
    num_events: int
    """Events in the request."""
    num_rejected: int
    """Events refused; ``errors`` says why, field by field."""
    num_spans: int
    """Spans committed by this request (completed pairs and one-shot events)."""
    num_open: int
    """``*.started`` events still waiting for their ``*.completed``."""
    errors: list[FieldErrorBody] = []


@router.post(
    "/api/v1/events",
    response_model=EventsAnswer,
    summary="Send native agent events",
    responses=error_responses(400, 401, 413, 415, 422, 503),
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
        "application/x-ndjson": {"schema": {"type": "string"}}}}},
)
async def post_events(request: Request) -> Any:
    """Receive events as a JSON array or NDJSON (one event per line).

    200 once the resulting spans are committed (refused events are listed in ``errors``);
    422 when every event was refused.
    """
    from mentatlab.receivers.events import decode_events

    state = server_state(request)
    tenancy = await resolve_tenancy(request)
    body = await read_capped_body(request, state.settings.max_body_bytes)
    decoded = await anyio.to_thread.run_sync(
        decode_events, body, request.headers.get("content-type"))
    events = list(decoded.events)
    completed = state.pairer.add(events)
    outcome = await state.ingestor.ingest(list(completed), "events", tenancy)
    errors = [*decoded.rejected, *outcome.rejected]
    answer = EventsAnswer(
        num_events=len(events) + len(decoded.rejected), num_rejected=len(errors),
        num_spans=outcome.accepted, num_open=len(state.pairer),
        errors=[FieldErrorBody(field=e.field, reason=e.reason) for e in errors])
    if errors and not events:
        from mentatlab.server.errors import error_response

        return error_response(422, "Every event was refused", errors)
    return answer
