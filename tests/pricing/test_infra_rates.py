from __future__ import annotations

import tomllib
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from mentatlab.errors import ConfigError
from mentatlab.pricing.infra_rates import (
    DEFAULTS_PATH,
    GPU_MODEL_ATTRIBUTE,
    ORIGIN_DEFAULTS,
    ORIGIN_PRICING_FILE,
    RATE_KEYS,
    InfraRateCard,
    load_default_infra_rates,
)
from mentatlab.pricing.pricing_file import GpuModelRate, parse_pricing
from mentatlab.sdk.meters import ATTR_GPU_MODEL

DEFAULTS = load_default_infra_rates()
SOURCE_KEYS = ("value", "unit", "provider", "product", "region", "url", "taken")


def test_shipped_file_is_package_data_with_a_source_and_date_for_every_rate() -> None:
    data = tomllib.loads(DEFAULTS_PATH.read_text(encoding="utf-8"))
    assert isinstance(data["as_of"], date) and data["currency"] == "USD"
    entries = [*(data["rates"][k] for k in RATE_KEYS), *data["gpu_models"]]
    assert len(entries) == len(RATE_KEYS) + len(DEFAULTS.gpu_models) >= 10
    for entry in entries:
        for key in SOURCE_KEYS:
            assert key in entry and str(entry[key]).strip(), (entry, key)
        assert isinstance(entry["value"], str), "a string keeps the figure exact"
        Decimal(entry["value"])
        assert isinstance(entry["taken"], date) and entry["taken"] <= data["as_of"]
        assert entry["url"].startswith("https://")
    assert DEFAULTS_PATH.is_relative_to(Path(__import__("mentatlab").__file__).parent)


def test_defaults_are_the_published_list_prices() -> None:
    usd = {k: DEFAULTS.rates[k].usd for k in RATE_KEYS}
    assert usd == {
        "cpu_per_core_hour": Decimal("0.04048"),   # AWS Fargate Linux/x86 us-east-1
        "memory_per_gb_hour": Decimal("0.004445"),
        "gpu_per_hour": Decimal("0.35"),           # GCP NVIDIA T4, the lowest listed
        "network_in_per_gb": Decimal("0"),
        "network_out_per_gb": Decimal("0.09"),     # AWS internet egress, first 10 TB
        "storage_per_gb_month": Decimal("0.023"),  # S3 Standard, first 50 TB
    }
    assert all(r.origin == ORIGIN_DEFAULTS and r.source is not None
               for r in DEFAULTS.rates.values())
    assert DEFAULTS.tag == f"defaults@{DEFAULTS.as_of.isoformat()}"


@pytest.mark.parametrize(("nvml_name", "usd"), [
    ("NVIDIA H100 80GB HBM3", "9.796550569"),
    ("NVIDIA A100-SXM4-80GB", "3.92808"),
    ("NVIDIA A100 80GB PCIe", "3.92808"),
    ("NVIDIA A100-SXM4-40GB", "2.933908"),
    ("NVIDIA A100-PCIE-40GB", "2.933908"),
    ("NVIDIA L4", "0.560040239"),
    ("Tesla V100-SXM2-16GB", "2.48"),
    ("Tesla T4", "0.35"),
    ("NVIDIA L40S", "0.35"),      # not listed: the default GPU rate
    ("", "0.35"),                 # not recorded: the default GPU rate
])
def test_gpu_time_is_priced_by_the_recorded_model(nvml_name: str, usd: str) -> None:
    card = InfraRateCard(DEFAULTS)
    assert card.gpu_rate(nvml_name).usd == Decimal(usd)


def test_pricing_file_overrides_defaults_key_by_key() -> None:
    overrides = parse_pricing({"infrastructure": {
        "cpu_per_core_hour": "0.05", "network_per_gb": "0.02",
        "gpu_models": [{"model": "*A100*", "per_hour": "1.10"}]}}).infrastructure
    card = InfraRateCard(DEFAULTS, overrides)
    origins = {k: (card.rates[k].usd, card.rates[k].origin) for k in RATE_KEYS}
    assert origins == {
        "cpu_per_core_hour": (Decimal("0.05"), ORIGIN_PRICING_FILE),
        "memory_per_gb_hour": (Decimal("0.004445"), ORIGIN_DEFAULTS),
        "gpu_per_hour": (Decimal("0.35"), ORIGIN_DEFAULTS),
        "network_in_per_gb": (Decimal("0.02"), ORIGIN_PRICING_FILE),
        "network_out_per_gb": (Decimal("0.02"), ORIGIN_PRICING_FILE),
        "storage_per_gb_month": (Decimal("0.023"), ORIGIN_DEFAULTS),
    }
    # the file's GPU entries are tried first; the shipped ones still apply to the rest
    assert card.gpu_rate("NVIDIA A100-SXM4-80GB").usd == Decimal("1.10")
    assert card.gpu_rate("NVIDIA A100-SXM4-80GB").origin == ORIGIN_PRICING_FILE
    assert card.gpu_rate("NVIDIA H100 80GB HBM3").usd == Decimal("9.796550569")
    assert card.is_priced


def test_defaults_false_or_zero_rates_turn_infrastructure_pricing_off() -> None:
    off = InfraRateCard(DEFAULTS, parse_pricing({"infrastructure": {"defaults": False}})
                        .infrastructure)
    assert not off.is_priced and not off.use_defaults
    assert off.gpu_rate("Tesla T4").usd == 0
    zeros = {k: "0" for k in ("cpu_per_core_hour", "memory_per_gb_hour", "gpu_per_hour",
                              "network_per_gb", "storage_per_gb_month")}
    zero = InfraRateCard(DEFAULTS, parse_pricing({"infrastructure": zeros}).infrastructure)
    assert all(r.usd == 0 for r in zero.rates.values())
    # your gpu_per_hour replaces the shipped per-model GPU rates too
    assert zero.gpu_rate("Tesla T4").usd == 0 and not zero.is_priced
    one = InfraRateCard(DEFAULTS, parse_pricing({"infrastructure": {
        "defaults": False, "cpu_per_core_hour": "0.1"}}).infrastructure)
    assert one.cpu.usd == Decimal("0.1") and one.memory.usd == 0 and one.is_priced


def test_source_tags() -> None:
    card = InfraRateCard(DEFAULTS)
    tag = DEFAULTS.tag
    assert card.source_tag(from_file=False, from_defaults=True) == tag
    assert card.source_tag(from_file=True, from_defaults=False) == "pricing.toml"
    assert card.source_tag(from_file=True, from_defaults=True) == f"pricing.toml+{tag}"
    assert card.source_tag(from_file=False, from_defaults=False) == ""


def test_pricing_file_gpu_models_and_defaults_key_are_validated() -> None:
    rates = parse_pricing({"infrastructure": {"gpu_models": [
        {"model": "NVIDIA RTX*", "per_hour": "0.69"}]}}).infrastructure
    assert rates.gpu_models == (GpuModelRate("nvidia rtx*", Decimal("0.69")),)
    for doc, message in [
        ({"gpu_models": [{"model": "x"}]}, "Missing key infrastructure.gpu_models[0].per_hour"),
        ({"gpu_models": [{"model": "x", "per_hour": "-1"}]}, "gpu_models[0].per_hour"),
        ({"gpu_models": {"model": "x"}}, "Expected infrastructure.gpu_models to be an array"),
        ({"defaults": "no"}, "infrastructure.defaults to be true or false"),
    ]:
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
            parse_pricing({"infrastructure": doc})


def test_a_rates_file_without_a_source_is_refused(tmp_path: Path) -> None:
    text = DEFAULTS_PATH.read_text(encoding="utf-8")
    broken = tmp_path / "rates.toml"
    broken.write_text(text.replace('url = "https://aws.amazon.com/fargate/pricing/"\n', "", 1))
    with pytest.raises(ConfigError, match=r"Missing key rates\.cpu_per_core_hour\.url"):
        load_default_infra_rates(broken)


def test_sdk_and_pricing_agree_on_the_gpu_model_attribute() -> None:
    assert ATTR_GPU_MODEL == GPU_MODEL_ATTRIBUTE == "mentat.resource.gpu_model"
