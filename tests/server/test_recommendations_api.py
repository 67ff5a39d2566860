"""``GET /api/v1/recommendations`` over real OTLP ingest and HTTP, savings by hand.

Acme sends (range: 2 days, so a month is 15 windows):

* 12 gpt-4o retries (``mentat.is_retry``) of 1,000 + 100 tokens, 9 failing: each costs
  1000 × 2.5e-6 + 100 × 10e-6 = 0.0035, the failed ones 0.0315; a month 0.4725;
* 11 claude-sonnet-4 calls with one long prompt (``input.value`` of 8,190 characters: a
  text of 8,192 with its two newlines), 4,000 input tokens, no cache reads: the prefix
  hash is set at ingest, 4,000 × 4,096 / 8,192 = 2,000 cacheable tokens a call, 10 warm:
  10 × 2000 × (3 − 0.3)e-6 − 2000 × (3.75 − 3)e-6 = 0.0525; a month 0.7875.

Globex sends 12 failing retries: an acme key never sees them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from server_payloads import encode, export_request, llm_span, new_trace_id
from serverkit import InProcess, make_settings, open_in_process
from test_api import assert_error_shape

URL = "/api/v1/recommendations"
PROMPT = ("Answer as the support agent of ACME; cite the policy. " * 200)[:8190]


async def _send(env: InProcess, key: str, spans: list[Any]) -> None:
    body, headers = encode(export_request(spans, project_id="web"))
    response = await env.client.post("/v1/traces", content=body,
                                      headers={**headers, "x-api-key": key})
    assert response.status_code == 200, response.text


def _retries(n_failed: int) -> list[Any]:
    return [llm_span(new_trace_id(), input_tokens=1000, output_tokens=100, error=i < n_failed,
                     attrs={"mentat.is_retry": True, "mentat.attempt": 2,
                            "mentat.agent_id": "fetcher"}) for i in range(12)]


async def test_recommendations_over_ingest_scoped_and_bad_input(_isolated_data_dir: Path
                                                                 ) -> None:
    settings = make_settings(_isolated_data_dir, auth_required=True)
    async with open_in_process(settings) as env:
        control = env.state.control
        keys: dict[str, dict[str, str]] = {}
        for org in ("acme", "globex"):
            control.create_org(org.title(), org)
            keys[org] = {role: control.create_api_key(org, None, f"{org}-{role}",
                                                      role=role).key
                         for role in ("ingest", "read")}
        retries = _retries(9)
        await _send(env, keys["acme"]["ingest"], retries)
        await _send(env, keys["globex"]["ingest"], _retries(12))
        cached = [llm_span(new_trace_id(), model="claude-sonnet-4", provider="anthropic",
                           input_tokens=4000, output_tokens=100,
                           attrs={"input.value": PROMPT, "mentat.agent_id": "writer"})
                  for _ in range(11)]
        await _send(env, keys["acme"]["ingest"], cached)

        start = (datetime.now(UTC) - timedelta(days=1)).replace(second=0, microsecond=0)
        window = {"start": start.isoformat(), "end": (start + timedelta(days=2)).isoformat()}
        read = {"x-api-key": keys["acme"]["read"]}
        response = await env.client.get(URL, params=window, headers=read)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["currency"], body["window_days"]) == ("USD", 2.0)
        recs = {r["kind"]: r for r in body["recommendations"]}
        assert set(recs) == {"failing_retries", "prompt_caching"}
        retry = recs["failing_retries"]
        assert (retry["evidence"]["num_retries"], retry["evidence"]["num_failed_retries"]) == (
            12, 9), "globex's retries are not acme's"
        assert Decimal(retry["saving_in_window"]) == Decimal("0.0315")
        assert Decimal(retry["saving_per_month"]) == Decimal("0.4725")
        failed_ids = {s.trace_id.hex() for s in retries[:9]}
        assert retry["sample_trace_ids"] and set(retry["sample_trace_ids"]) <= failed_ids
        caching = recs["prompt_caching"]
        assert caching["evidence"]["prefix_chars"] == 4096
        assert (caching["evidence"]["num_calls"], caching["evidence"]["num_warm_calls"]) == (
            11, 10)
        assert Decimal(caching["saving_in_window"]) == Decimal("0.0525")
        assert Decimal(caching["saving_per_month"]) == Decimal("0.7875")
        assert Decimal(body["total_saving_per_month"]) == Decimal("1.26")
        assert [r["kind"] for r in body["recommendations"]] == [
            "prompt_caching", "failing_retries"]

        only = await env.client.get(URL, params={**window, "kind": "failing_retries"},
                                    headers=read)
        assert [r["kind"] for r in only.json()["recommendations"]] == ["failing_retries"]

        for params, status, field in [
            ({**window, "kind": "cheaper"}, 422, "kind"),
            ({"start": window["end"], "end": window["start"]}, 400, "start"),
            ({"start": "not a time"}, 422, "start"),
            ({**window, "filter": "nope=1"}, 400, "filter.nope"),
        ]:
            err = assert_error_shape(await env.client.get(URL, params=params, headers=read),
                                     status)
            assert [e["field"] for e in err["errors"]] == [field], (params, err)
        assert_error_shape(await env.client.get(
            URL, params={**window, "filter": "org=globex"}, headers=read), 403)
        assert_error_shape(await env.client.get(URL, params=window), 401)
        unhandled = env.state.metrics.unhandled_errors.collect()[0].samples
        assert not [s for s in unhandled if s.value], unhandled
