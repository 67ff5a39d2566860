"""A failed call sent through POST /v1/traces is stored with its failure class."""

from __future__ import annotations

from opentelemetry.proto.trace.v1.trace_pb2 import Span
from server_payloads import encode, export_request, kvs, llm_span
from serverkit import InProcess

OPENAI_CONTEXT = ("Error code: 400 - {'error': {'message': \"This model's maximum context "
                  "length is 128000 tokens.\", 'type': 'invalid_request_error', "
                  "'param': 'messages', 'code': 'context_length_exceeded'}}")


def _failed(attrs: dict[str, object], exception: tuple[str, str] | None = None,
            name: str = "chat gpt-4o") -> Span:
    span = llm_span(name=name, attrs=attrs, error=True)
    if exception is not None:
        span.events.add(name="exception", time_unix_nano=span.end_time_unix_nano,
                        attributes=kvs({"exception.type": exception[0],
                                        "exception.message": exception[1]}))
    return span


async def test_ingested_failures_are_stored_with_type_and_class(app_client: InProcess) -> None:
    context = _failed({"error.type": "BadRequestError", "http.response.status_code": 400},
                      ("openai.BadRequestError", OPENAI_CONTEXT))
    tool = _failed({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search",
                    "error.type": "TimeoutError"}, name="execute_tool search")
    ok = llm_span()
    body, headers = encode(export_request([context, tool, ok]))
    sent = await app_client.client.post("/v1/traces", content=body, headers=headers)
    assert sent.status_code == 200, sent.text
    stored = []
    for span in (context, tool, ok):
        answer = await app_client.client.get(
            f"/api/v1/traces/{span.trace_id.hex()}/spans/{span.span_id.hex()}")
        assert answer.status_code == 200, answer.text
        got = answer.json()["span"]
        stored.append((got["status"], got["error_type"], got["error_category"],
                       got["error_class"]))
    assert stored == [("error", "BadRequestError", "context_length_exceeded", "model"),
                      # status from error.type
                      ("timeout", "TimeoutError", "tool_timeout", "tooling"),
                      ("ok", "", "", "")]
