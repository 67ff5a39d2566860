"""GET /api/v1/cost?group_by=error_type: failures counted per error type (raw spans)."""

from __future__ import annotations

from server_payloads import encode, export_request, llm_span
from serverkit import InProcess


async def test_cost_groups_errors_by_error_type(app_client: InProcess) -> None:
    spans = [llm_span(error=True, attrs={"error.type": "RateLimitError"}) for _ in range(3)]
    spans += [llm_span(error=True, attrs={"error.type": "APIConnectionError"}), llm_span(),
              llm_span(error=True)]  # an error without a type, and a success
    body, headers = encode(export_request(spans, project_id="acme"))
    sent = await app_client.client.post("/v1/traces", content=body, headers=headers)
    assert sent.status_code == 200, sent.text
    answer = await app_client.client.get("/api/v1/cost", params={"group_by": "error_type"})
    assert answer.status_code == 200, answer.text
    rows = {r["error_type"]: r for r in answer.json()["rows"]}
    # error_type keeps the producer's error.type; an error without one is "unknown"
    assert {k: (r["num_spans"], r["error_spans"]) for k, r in rows.items()} == {
        "RateLimitError": (3, 3), "APIConnectionError": (1, 1), "unknown": (1, 1), "": (1, 0)}
    filtered = await app_client.client.get("/api/v1/cost", params={
        "group_by": "error_type", "filter": "status=error,project=acme"})
    assert sum(r["error_spans"] for r in filtered.json()["rows"]) == 5
    by_class = await app_client.client.get("/api/v1/cost", params={"group_by": "error_class"})
    assert {r["error_class"]: (r["num_spans"], r["error_spans"])
            for r in by_class.json()["rows"]} == {
        "provider": (4, 4), "unknown": (1, 1), "": (1, 0)}
    only = await app_client.client.get("/api/v1/cost", params={
        "group_by": "error_category", "filter": "error_class=provider"})
    assert sorted((r["error_category"], r["num_spans"]) for r in only.json()["rows"]) == [
        ("network_error", 1), ("rate_limit", 3)]
    bad = await app_client.client.get("/api/v1/cost", params={"group_by": "error_kind"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "group_by"
