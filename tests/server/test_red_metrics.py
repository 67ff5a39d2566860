"""RED metrics on ``/metrics`` and ``/metrics/tenants`` from real OTLP ingest.

Acme sends 60 chat spans, each of its own model (``m00`` .. ``m59``, more than the
label cap), then 3 spans of gpt-4o lasting 3, 120 and 2000 ms, one failed; globex sends 2
gpt-4o spans. The public scrape must count all 65 with at most ``MAX_LABEL_VALUES``
models plus ``other`` and no tenant label; the per-tenant scrape shows a key only its org.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from server_payloads import encode, export_request, llm_span, new_trace_id
from serverkit import InProcess, make_settings, open_in_process
from test_api import assert_error_shape

from mentatlab.server.red_metrics import DURATION_BUCKETS_S, MAX_LABEL_VALUES, OTHER, RedMetrics


def _samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [(s.labels, s.value) for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == name]


async def _send(env: InProcess, key: str, spans: list[object]) -> None:
    body, headers = encode(export_request(spans, project_id="web"))  # type: ignore[arg-type]
    response = await env.client.post("/v1/traces", content=body,
                                     headers={**headers, "x-api-key": key})
    assert response.status_code == 200, response.text


async def test_red_counts_caps_and_tenancy(_isolated_data_dir: Path) -> None:
    settings = make_settings(_isolated_data_dir, auth_required=True)
    async with open_in_process(settings) as env:
        control = env.state.control
        keys: dict[str, dict[str, str]] = {}
        for org in ("acme", "globex"):
            control.create_org(org.title(), org)
            keys[org] = {role: control.create_api_key(org, None, f"{org}-{role}",
                                                      role=role).key
                         for role in ("ingest", "read")}
        trace = new_trace_id()
        await _send(env, keys["acme"]["ingest"],
                    [llm_span(trace, model=f"m{i:02d}", duration_ms=50) for i in range(60)])
        await _send(env, keys["acme"]["ingest"], [
            llm_span(new_trace_id(), model="gpt-4o", duration_ms=3),
            llm_span(new_trace_id(), model="gpt-4o", duration_ms=120),
            llm_span(new_trace_id(), model="gpt-4o", duration_ms=2000, error=True)])
        await _send(env, keys["globex"]["ingest"],
                    [llm_span(new_trace_id(), model="gpt-4o", duration_ms=10)
                     for _ in range(2)])

        scrape = await env.client.get("/metrics")  # public, no credential
        assert scrape.status_code == 200
        text = scrape.text
        spans = _samples(text, "mentatlab_red_spans_total")
        assert sum(v for _, v in spans) == 65, "every committed span counted once"
        assert all(set(labels) == {"service", "operation", "model"} for labels, _ in spans)
        assert "org_id" not in text.split("mentatlab_red_")[1] and "acme" not in text
        assert "globex" not in text
        by_model = defaultdict(float)
        for labels, value in spans:
            by_model[labels["model"]] += value
        # the cap: m00..m49 admitted (first come), m50..m59 and the later gpt-4o are other
        assert len(by_model) == MAX_LABEL_VALUES + 1 == 51
        assert by_model[OTHER] == 10 + 5 and "gpt-4o" not in by_model and "m50" not in by_model
        assert by_model["m00"] == by_model["m49"] == 1
        errors = _samples(text, "mentatlab_red_errors_total")
        assert sum(v for _, v in errors) == 1
        count = sum(v for _, v in _samples(text, "mentatlab_red_duration_seconds_count"))
        assert count == 65
        # 50 ms for the 60, 10 ms (globex) x2, 3, 120 and 2000 ms
        total_s = sum(v for _, v in _samples(text, "mentatlab_red_duration_seconds_sum"))
        assert abs(total_s - (60 * 0.05 + 2 * 0.01 + 0.003 + 0.12 + 2.0)) < 1e-6
        le = defaultdict(float)
        for labels, value in _samples(text, "mentatlab_red_duration_seconds_bucket"):
            le[labels["le"]] += value
        assert le["0.005"] == 1 and le["0.01"] == 3 and le["0.05"] == 63
        assert le["0.25"] == 64 and le["2.5"] == 65 and le["+Inf"] == 65
        assert len(le) == len(DURATION_BUCKETS_S) + 1

        assert_error_shape(await env.client.get("/metrics/tenants"), 401)
        assert_error_shape(await env.client.get(
            "/metrics/tenants", headers={"x-api-key": keys["acme"]["ingest"]}), 403)
        mine = await env.client.get("/metrics/tenants",
                                    headers={"x-api-key": keys["acme"]["read"]})
        assert mine.status_code == 200, mine.text
        tenant = _samples(mine.text, "mentatlab_red_spans_total")
        assert {labels["org_id"] for labels, _ in tenant} == {"acme"}
        assert {labels["project_id"] for labels, _ in tenant} == {"web"}
        assert sum(v for _, v in tenant) == 63


def test_series_cap_and_other_without_a_server() -> None:
    """More label sets than the series cap: the rest count under other/other/other."""
    import pyarrow as pa

    red = RedMetrics(max_label_values=1_000, max_series=3, max_tenants=1)
    n = 10
    red.observe_batch(pa.table({
        "org_id": [f"o{i}" for i in range(n)], "project_id": ["p"] * n,
        "service_name": ["svc"] * n, "operation": ["chat"] * n,
        "request_model": [f"m{i}" for i in range(n)], "response_model": [""] * n,
        "status": ["ok"] * n, "duration_ms": [1.0] * n}))
    assert red.label_sets() == 4  # m0, m1, m2 and other/other/other
    text = red.render_tenants(None, None).decode()
    tenants = {(labels["org_id"], labels["project_id"])
               for labels, _ in _samples(text, "mentatlab_red_spans_total")}
    assert tenants == {("o0", "p"), (OTHER, OTHER)}
    assert sum(v for _, v in _samples(text, "mentatlab_red_spans_total")) == n
