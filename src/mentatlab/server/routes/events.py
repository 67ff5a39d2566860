"""``POST /api/v1/events``: MentatLab's native agent events (JSON array or NDJSON).

A batch is all or nothing (422 listing every invalid event's fields), because events
pair up. ``*.started`` events are stored at once as open spans and replaced when their
``*.completed`` arrives; everything is committed before the answer.
"""

from __future__ import annotations

import time
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from pydantic import BaseModel

from mentatlab.receivers.events import decode_events
from mentatlab.receivers.otlp_http import decompress
from mentatlab.server.deps import Caller
from mentatlab.server.errors import FieldErrorBody, error_responses
from mentatlab.server.routes.otlp import read_capped_body
from mentatlab.server.state import server_state

__all__ = ["EventsAnswer", "router"]

router = APIRouter(tags=["events"])


class EventsAnswer(BaseModel):
    """Outcome of a batch of events."""

    ok: bool = True
    num_events: int
    """Events in the request."""
    num_spans: int
    """Spans committed by this request (open starts, completed pairs, one-shot events)."""
    num_open: int
    """``*.started`` events (all requests) still waiting for their ``*.completed``."""
    errors: list[FieldErrorBody] = []
    """Spans the pipeline refused (field and reason)."""


@router.post(
    "/api/v1/events",
    response_model=EventsAnswer,
    summary="Send native agent events",
    responses=error_responses(400, 401, 403, 413, 415, 422, 429, 503),
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
        "application/x-ndjson": {"schema": {"type": "string"}}}}},
)
async def post_events(request: Request, caller: Caller) -> EventsAnswer:
    """Receive events as a JSON array or NDJSON (one event per line).

    200 once the resulting spans are committed; 422 (listing every bad field as
    ``events[i].field``) when any event is invalid, and then nothing is stored.
    """
    state = server_state(request)
    body = await read_capped_body(request, state.settings.max_body_bytes)

    def decode() -> list[Any]:
        raw = decompress(body, request.headers.get("content-encoding"),
                         state.settings.max_decompressed_bytes)
        return decode_events(raw, request.headers.get("content-type"))

    events = await anyio.to_thread.run_sync(decode)
    state.quotas.admit_spans(caller, len(events))  # before the pairer: refused whole
    received_ns = time.time_ns()
    spans = state.pairer.add(events, received_ns)  # the pairer lives on the event loop
    # a completion re-emits its open span's ids on purpose: no ingest dedup
    outcome = await state.ingestor.ingest(spans, "events", caller.tenancy, dedup=False)
    return EventsAnswer(
        num_events=len(events), num_spans=outcome.accepted, num_open=state.pairer.open_count,
        errors=[FieldErrorBody(field=e.field, reason=e.reason) for e in outcome.rejected])
