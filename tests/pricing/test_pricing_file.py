from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from mentatlab.errors import ConfigError
from mentatlab.pricing.pricing_file import (
    Currency,
    InfraRates,
    PricingConfig,
    load_pricing_file,
    parse_pricing,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pricing.toml"


def test_example_file_loads_and_documents_every_key() -> None:
    config = load_pricing_file(EXAMPLE)
    assert config.models[0].cache_write_per_mtok == Decimal("2.50")
    assert config.infrastructure.network_out_per_gb == Decimal("0.09")
    assert config.infrastructure.network_in_per_gb == Decimal("0")
    assert config.infrastructure.use_defaults is True
    assert config.infrastructure.gpu_models[0].model == "*a100*80gb*"
    assert config.discounts[0].applies_to == "tokens"
    assert config.currency == Currency("USD", Decimal(1))
    text = EXAMPLE.read_text()
    for key in ("provider", "model", "input_per_mtok", "output_per_mtok", "cache_read_per_mtok",
                "cache_write_per_mtok", "per_request", "cpu_per_core_hour", "memory_per_gb_hour",
                "gpu_per_hour", "network_per_gb", "network_in_per_gb", "network_out_per_gb",
                "storage_per_gb_month", "storage_billed_months", "defaults", "per_hour",
                "percent", "org_id", "applies_to", "code", "rate_from_usd"):
        assert f"\n{key} = " in text or f"\n{key}=" in text, key


def test_empty_document_is_the_default() -> None:
    assert parse_pricing({}) == PricingConfig()
    assert parse_pricing({}).infrastructure == InfraRates()


def test_values_are_exact_decimals() -> None:
    config = parse_pricing({"models": [{"model": "m", "input_per_mtok": 0.1,
                                        "output_per_mtok": "0.30", "per_request": 2}]})
    rate = config.models[0]
    assert (rate.input_per_mtok, rate.output_per_mtok, rate.per_request) == (
        Decimal("0.1"), Decimal("0.30"), Decimal(2))
    assert rate.provider == "*"


def test_network_per_gb_sets_both_directions_unless_overridden() -> None:
    rates = parse_pricing({"infrastructure": {"network_per_gb": "0.1",
                                              "network_in_per_gb": "0"}}).infrastructure
    assert (rates.network_in_per_gb, rates.network_out_per_gb) == (Decimal(0), Decimal("0.1"))


def test_first_matching_model_and_discount_win() -> None:
    config = parse_pricing({
        "models": [{"provider": "self-hosted", "model": "Llama-*", "input_per_mtok": 1,
                    "output_per_mtok": 1},
                   {"model": "*", "input_per_mtok": 9, "output_per_mtok": 9}],
        "discounts": [{"percent": 10, "org_id": "acme"}, {"percent": 5}],
    })
    rate = config.model_rate("Self-Hosted", "llama-3-8b")
    assert rate is not None and rate.input_per_mtok == 1
    other = config.model_rate("openai", "gpt")
    assert other is not None and other.input_per_mtok == 9
    acme = config.discount_for("x", "y", "acme")
    assert acme is not None and acme.percent == 10
    rest = config.discount_for("x", "y", "other")
    assert rest is not None and rest.percent == 5


@pytest.mark.parametrize(("doc", "message"), [
    ({"modles": []}, "Unknown key pricing.toml.modles"),
    ({"models": {"model": "m"}}, "Expected models to be an array of tables"),
    ({"models": [{"input_per_mtok": 1, "output_per_mtok": 1}]}, "Missing key models[0].model"),
    ({"models": [{"model": "m", "output_per_mtok": 1}]}, "Missing key models[0].input_per_mtok"),
    ({"models": [{"model": "m", "input_per_mtok": "-1", "output_per_mtok": 1}]},
     "models[0].input_per_mtok to be a finite number >= 0"),
    ({"models": [{"model": "m", "input_per_mtok": "abc", "output_per_mtok": 1}]},
     "models[0].input_per_mtok to be a decimal number, got 'abc'"),
    ({"models": [{"model": "m", "input_per_mtok": True, "output_per_mtok": 1}]},
     "models[0].input_per_mtok to be a decimal number"),
    ({"models": [{"model": "m", "input_per_mtok": "NaN", "output_per_mtok": 1}]},
     "models[0].input_per_mtok to be a finite number"),
    ({"models": [{"model": "m", "input_per_mtok": 1, "output_per_mtok": 1, "cached": 1}]},
     "Unknown key models[0].cached"),
    ({"models": [{"model": "", "input_per_mtok": 1, "output_per_mtok": 1}]},
     "models[0].model to be a non-empty string"),
    ({"infrastructure": {"cpu_per_core_second": 1}},
     "Unknown key infrastructure.cpu_per_core_second"),
    ({"infrastructure": {"gpu_per_hour": "x"}}, "infrastructure.gpu_per_hour"),
    ({"discounts": [{"provider": "openai"}]}, "Missing key discounts[0].percent"),
    ({"discounts": [{"percent": 101}]}, "discounts[0].percent to be at most 100"),
    ({"discounts": [{"percent": 1, "applies_to": "gpu"}]}, "discounts[0].applies_to to be one of"),
    ({"currency": {"code": "EURO"}}, "currency.code to be a 3-letter"),
    ({"currency": {"code": "EUR", "rate_from_usd": 0}}, "currency.rate_from_usd to be > 0"),
    ({"currency": {"code": "USD", "rate_from_usd": "0.9"}}, "rate_from_usd to be 1 for USD"),
])
def test_bad_values_name_the_key(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_pricing(doc)
    assert message in str(info.value)


def test_bad_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pricing.toml"
    path.write_text("[currency\ncode=1")
    with pytest.raises(ConfigError, match="valid TOML"):
        load_pricing_file(path)
    path.write_text('[currency]\ncode = "EURO"\n')
    with pytest.raises(ConfigError, match=r"pricing\.toml: Expected currency\.code"):
        load_pricing_file(path)
    with pytest.raises(ConfigError, match="readable"):
        load_pricing_file(tmp_path / "nope.toml")
