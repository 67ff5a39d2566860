"""Infrastructure priced out of the box: shipped default rates, pricing.toml overrides, and
where the rates came from in ``price_source``. Expected values are computed by hand from the
rates in ``pricing/data/infrastructure.toml``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import genai_prices
import orjson

from mentatlab.model.span import CanonicalSpan, SpanStatus
from mentatlab.pipeline.price import UNPRICED, Price
from mentatlab.pricing.catalog import PriceCatalog
from mentatlab.pricing.infra_rates import load_default_infra_rates
from mentatlab.pricing.price_source import parse_price_source
from mentatlab.pricing.pricing_file import PricingConfig, parse_pricing

T0 = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)
V = genai_prices.__version__
CATALOG = PriceCatalog()
DEFAULTS_TAG = load_default_infra_rates().tag
A100_80 = orjson.dumps({"mentat.resource.gpu_model": "NVIDIA A100-SXM4-80GB"}).decode()
METERED: dict[str, Any] = dict(
    cpu_core_seconds=5400.0,            # 1.5 core-hours
    memory_gb_seconds=900.0,            # 0.25 GB-hour
    gpu_seconds=1800.0,                 # 0.5 GPU-hour
    network_bytes_in=3_000_000_000,     # 3 GB
    network_bytes_out=2_500_000_000,    # 2.5 GB
    storage_bytes=4_000_000_000,        # 4 GB
)


def make_span(**fields: Any) -> CanonicalSpan:
    base: dict[str, Any] = dict(trace_id="ab" * 16, span_id="cd" * 8, parent_span_id="",
                                name="tool", kind="internal", start_time=T0,
                                end_time=T0 + timedelta(seconds=1), duration_ms=1000.0,
                                status=SpanStatus.OK)
    base.update(fields)
    return CanonicalSpan(**base)


def price_one(span: CanonicalSpan, pricing: PricingConfig | None = None) -> CanonicalSpan:
    return Price(CATALOG, pricing)([span])[0]


def test_default_rates_price_every_metered_resource_exactly() -> None:
    span = price_one(make_span(provider="openai", request_model="gpt-4o", input_tokens=1000,
                               output_tokens=100, attributes=A100_80, **METERED))
    assert span.cpu_cost == Decimal("0.06072")        # 1.5 h * 0.04048 (Fargate vCPU-hour)
    assert span.memory_cost == Decimal("0.00111125")  # 0.25 h * 0.004445 (Fargate GB-hour)
    assert span.gpu_cost == Decimal("1.96404")        # 0.5 h * 3.92808 (GCP A100 80GB)
    assert span.network_cost == Decimal("0.225")      # 3 GB in * 0 + 2.5 GB out * 0.09
    assert span.storage_cost == Decimal("0.092")      # 4 GB * 0.023 (S3 Standard) * 1 month
    assert span.token_cost == Decimal("0.0035")
    assert span.total_cost == Decimal("2.34637125")
    assert span.price_source == f"genai-prices@{V}:openai/gpt-4o;infra={DEFAULTS_TAG}"
    assert parse_price_source(span.price_source).infra == DEFAULTS_TAG
    assert DEFAULTS_TAG == "defaults@2026-12-06"


def test_gpu_without_a_known_model_uses_the_default_gpu_rate() -> None:
    unknown = orjson.dumps({"mentat.resource.gpu_model": "Imaginary GPU 9000"}).decode()
    for attributes in ("{}", unknown):
        span = price_one(make_span(gpu_seconds=1800.0, attributes=attributes))
        assert span.gpu_cost == Decimal("0.175")      # 0.5 h * 0.35 (default: GCP T4)
    on_resource = price_one(make_span(gpu_seconds=1800.0, resource=A100_80))
    assert on_resource.gpu_cost == Decimal("1.96404")


def test_pricing_file_rates_win_key_by_key_and_say_so() -> None:
    pricing = parse_pricing({"infrastructure": {
        "cpu_per_core_hour": "0.1", "gpu_models": [{"model": "*a100*", "per_hour": "2"}]}})
    span = price_one(make_span(attributes=A100_80, **METERED), pricing)
    assert span.cpu_cost == Decimal("0.15")           # 1.5 h * 0.1 from pricing.toml
    assert span.gpu_cost == Decimal("1")              # 0.5 h * 2 from pricing.toml
    assert span.memory_cost == Decimal("0.00111125")  # still the default
    assert span.price_source == f"infra=pricing.toml+{DEFAULTS_TAG}"
    only_file = price_one(make_span(cpu_core_seconds=3600.0), pricing)
    assert only_file.price_source == "infra=pricing.toml"
    only_defaults = price_one(make_span(memory_gb_seconds=3600.0), pricing)
    assert only_defaults.price_source == f"infra={DEFAULTS_TAG}"


def test_infrastructure_pricing_can_be_turned_off() -> None:
    for doc in ({"infrastructure": {"defaults": False}},
                {"infrastructure": {"cpu_per_core_hour": "0", "memory_per_gb_hour": "0",
                                    "gpu_per_hour": "0", "network_per_gb": "0",
                                    "storage_per_gb_month": "0"}}):
        span = price_one(make_span(provider="openai", request_model="gpt-4o", input_tokens=1000,
                                   output_tokens=100, attributes=A100_80, **METERED),
                         parse_pricing(doc))
        assert span.total_cost == span.token_cost == Decimal("0.0035")
        assert span.price_source == f"genai-prices@{V}:openai/gpt-4o"


def test_unpriced_tokens_keep_the_exact_unpriced_marker() -> None:
    span = price_one(make_span(provider="openai", request_model="house-model", input_tokens=10,
                               cpu_core_seconds=3600.0))
    assert span.price_source == UNPRICED
    assert (span.token_cost, span.cpu_cost) == (0, Decimal("0.04048"))


def test_no_resources_no_infra_source() -> None:
    span = price_one(make_span(provider="openai", request_model="gpt-4o", input_tokens=1000,
                               output_tokens=100))
    assert span.price_source == f"genai-prices@{V}:openai/gpt-4o"
    assert price_one(make_span()).price_source == ""
