"""``GET /api/v1/prices``: the prices in force on the server and where each came from."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import genai_prices
from server_payloads import JSON, encode, export_request, llm_span, new_trace_id
from serverkit import InProcess, make_settings, open_in_process
from test_api import assert_error_shape

from mentatlab.pricing.infra_rates import RATE_KEYS

PRICING = """
[[models]]
provider = "self-hosted"
model = "llama-*"
input_per_mtok = "0.20"
output_per_mtok = "0.40"

[infrastructure]
cpu_per_core_hour = "0.05"

[[infrastructure.gpu_models]]
model = "*rtx 4090*"
per_hour = "0.69"

[[discounts]]
percent = "10"
org_id = "acme"

[[discounts]]
percent = "5"
org_id = "globex"
"""


async def test_defaults_are_listed_with_their_sources(app_client: InProcess) -> None:
    response = await app_client.client.get("/api/v1/prices")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True
    assert body["currency"] == {"code": "USD", "rate_from_usd": "1"}
    assert body["pricing_file"] is None and body["models"] == [] and body["discounts"] == []
    tokens = body["token_prices"]
    assert tokens["version"] == genai_prices.__version__ and tokens["snapshot"] is None
    assert tokens["price_source"] == f"genai-prices@{genai_prices.__version__}"
    infra = body["infrastructure"]
    assert infra["priced"] is True and infra["defaults"]["in_use"] is True
    assert infra["defaults"]["as_of"] == "2026-12-06"
    assert infra["defaults"]["price_source"] == "defaults@2026-12-06"
    rates = {r["key"]: r for r in infra["rates"]}
    assert list(rates) == list(RATE_KEYS)
    cpu = rates["cpu_per_core_hour"]
    assert (cpu["value"], cpu["unit"], cpu["origin"]) == ("0.04048", "vCPU-hour", "defaults")
    assert cpu["source"]["provider"] == "AWS" and cpu["source"]["taken"] == "2026-12-06"
    assert cpu["source"]["url"] == "https://aws.amazon.com/fargate/pricing/"
    for rate in [*infra["rates"], *infra["gpu_models"]]:
        assert {"provider", "product", "region", "url", "taken"} <= set(rate["source"]), rate
        Decimal(rate["value"])
    h100 = infra["gpu_models"][0]
    assert h100["match"] == ["*h100*"] and h100["value"] == "9.796550569"


async def test_pricing_file_overrides_show_their_origin(_isolated_data_dir: Path) -> None:
    _isolated_data_dir.mkdir(parents=True, exist_ok=True)
    (_isolated_data_dir / "pricing.toml").write_text(PRICING)
    async with open_in_process(make_settings(_isolated_data_dir)) as env:
        body = (await env.client.get("/api/v1/prices")).json()
        assert body["pricing_file"] == str(_isolated_data_dir / "pricing.toml")
        rates = {r["key"]: r for r in body["infrastructure"]["rates"]}
        assert (rates["cpu_per_core_hour"]["value"], rates["cpu_per_core_hour"]["origin"],
                rates["cpu_per_core_hour"]["source"]) == ("0.05", "pricing.toml", None)
        assert rates["memory_per_gb_hour"]["origin"] == "defaults"
        first_gpu = body["infrastructure"]["gpu_models"][0]
        assert (first_gpu["match"], first_gpu["value"], first_gpu["origin"]) == (
            ["*rtx 4090*"], "0.69", "pricing.toml")
        assert body["models"] == [{
            "provider": "self-hosted", "model": "llama-*", "input_per_mtok": "0.2",
            "output_per_mtok": "0.4", "cache_read_per_mtok": None,
            "cache_write_per_mtok": None, "per_request": None}]
        assert [d["org_id"] for d in body["discounts"]] == ["acme", "globex"]
        # what the route lists is what ingest charges: CPU at the file's rate
        trace = new_trace_id()
        span = llm_span(trace, attrs={"mentat.resource.cpu_core_seconds": 3600.0})
        payload, headers = encode(export_request([span]), JSON)
        assert (await env.client.post("/v1/traces", content=payload,
                                      headers=headers)).status_code == 200
        detail = (await env.client.get(f"/api/v1/traces/{trace.hex()}")).json()
        [node] = detail["roots"]
        assert Decimal(node["cpu_cost"]) == Decimal("0.05")
        assert node["price_source"].endswith(";infra=pricing.toml")


async def test_scoped_key_sees_only_its_discounts_and_no_key_is_401(
        _isolated_data_dir: Path) -> None:
    _isolated_data_dir.mkdir(parents=True, exist_ok=True)
    (_isolated_data_dir / "pricing.toml").write_text(PRICING)
    async with open_in_process(make_settings(_isolated_data_dir, auth_required=True)) as env:
        assert_error_shape(await env.client.get("/api/v1/prices"), 401)
        env.state.control.create_org("Acme", "acme")
        key = env.state.control.create_api_key("acme", None, "reader", role="admin").key
        body = (await env.client.get("/api/v1/prices",
                                     headers={"authorization": f"Bearer {key}"})).json()
        assert [d["org_id"] for d in body["discounts"]] == ["acme"]
