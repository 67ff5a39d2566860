from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import genai_prices
import pytest

from mentatlab.errors import PriceNotFound, PricingError
from mentatlab.pricing.catalog import PriceCatalog, snapshot_path, undated_model, update_prices
from mentatlab.pricing.rate_card import TokenUsage

AT = datetime(2026, 8, 21, 12, 0, tzinfo=UTC)
V = genai_prices.__version__


@pytest.fixture(scope="module")
def catalog() -> PriceCatalog:
    return PriceCatalog()


@pytest.mark.parametrize(("provider", "model", "source"), [
    ("openai", "gpt-4o", f"genai-prices@{V}:openai/gpt-4o"),
    ("OpenAI", "GPT-4o", f"genai-prices@{V}:openai/gpt-4o"),
    ("", "gpt-4o", f"genai-prices@{V}:openai/gpt-4o"),
    ("openai", "openai/gpt-5-mini", f"genai-prices@{V}:openai/gpt-5-mini"),
    ("", "anthropic/claude-3-haiku-20240307", f"genai-prices@{V}:anthropic/claude-3-haiku"),
    ("openrouter", "google/gemini-2.5-flash",
     f"genai-prices@{V}:openrouter/google/gemini-2.5-flash"),
    ("aws.bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0",
     f"genai-prices@{V}:aws/regional.anthropic.claude-sonnet-4-20250514-v1:0"),
    ("gcp.vertex_ai", "gemini-2.5-pro", f"genai-prices@{V}:google/gemini-2.5-pro"),
    ("gcp.gemini", "gemini-2.0-flash", f"genai-prices@{V}:google/gemini-2.0-flash"),
    ("azure.ai.openai", "gpt-4o", f"genai-prices@{V}:azure/gpt-4o"),
    ("mistral_ai", "mistral-large-latest", f"genai-prices@{V}:mistral/mistral-large"),
    ("", "text-embedding-3-small", f"genai-prices@{V}:openai/text-embedding-3-small"),
    ("openai", "gpt-4.1-2026-04-14",
     f"genai-prices@{V}:openai/gpt-4.1?fallback=gpt-4.1-2026-04-14"),
    ("openai", "gpt-3.5-turbo-0613", f"genai-prices@{V}:openai/gpt-3.5-turbo-0613"),
])
def test_lookup_matches_provider_and_model(catalog: PriceCatalog, provider: str, model: str,
                                           source: str) -> None:
    found = catalog.lookup(provider, model, AT)
    assert found is not None
    assert found.source == source


@pytest.mark.parametrize(("provider", "model"), [
    ("openai", "no-such-model"),
    ("ollama", "llama3"),                # a provider genai-prices does not know: not guessed
    ("self-hosted", "gpt-4o"),           # never priced at someone else's list price
    ("openai", ""),
])
def test_unknown_is_none_never_a_guess(catalog: PriceCatalog, provider: str, model: str) -> None:
    assert catalog.lookup(provider, model, AT) is None
    with pytest.raises(PriceNotFound):
        catalog.price(TokenUsage(input_tokens=10), provider, model, AT)


def test_undated_model() -> None:
    assert undated_model("gpt-4.1-2026-04-14") == "gpt-4.1"
    assert undated_model("claude-3-5-sonnet-20240620") == "claude-3-5-sonnet"
    assert undated_model("gpt-4o") == "gpt-4o"
    assert undated_model("gpt-3.5-turbo-0613") == "gpt-3.5-turbo-0613"


def test_time_of_day_price_is_cached_per_minute_not_per_day(catalog: PriceCatalog) -> None:
    usage = TokenUsage(input_tokens=100_000_000)
    peak = datetime(2025, 6, 1, 16, 29, 59, tzinfo=UTC)
    off_peak = datetime(2025, 6, 1, 16, 30, 0, tzinfo=UTC)
    first, _ = catalog.price(usage, "deepseek", "deepseek-chat", peak)
    second, _ = catalog.price(usage, "deepseek", "deepseek-chat", off_peak)
    again, _ = catalog.price(usage, "deepseek", "deepseek-chat", peak)
    assert (first.total_usd, second.total_usd, again.total_usd) == (
        Decimal("27"), Decimal("13.5"), Decimal("27"))


def test_price_changes_with_the_date(catalog: PriceCatalog) -> None:
    usage = TokenUsage(input_tokens=1000)
    before, _ = catalog.price(usage, "openai", "o3", datetime(2025, 6, 9, tzinfo=UTC))
    after, _ = catalog.price(usage, "openai", "o3", datetime(2025, 6, 10, tzinfo=UTC))
    assert (before.total_usd, after.total_usd) == (Decimal("0.01"), Decimal("0.002"))


def test_naive_timestamp_is_utc(catalog: PriceCatalog) -> None:
    usage = TokenUsage(input_tokens=100_000_000)
    naive, _ = catalog.price(usage, "deepseek", "deepseek-chat", datetime(2025, 6, 1, 17, 0))  # noqa: DTZ001
    assert naive.total_usd == Decimal("13.5")


_TINY_DATA = [{
    "id": "openai", "name": "OpenAI", "api_pattern": "https://api\\.openai\\.com",
    "model_match": {"contains": "gpt"},
    "models": [{"id": "gpt-4o", "match": {"equals": "gpt-4o"},
                "prices": {"input_mtok": 1, "output_mtok": 2}}],
}]


class _Handler(BaseHTTPRequestHandler):
    body = b""
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def price_server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("H", (_Handler,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/data.json", handler
    finally:
        server.shutdown()
        server.server_close()


def test_update_prices_saves_data_a_catalog_then_uses(
        tmp_path: Path, price_server: tuple[str, type[_Handler]]) -> None:
    url, handler = price_server
    handler.body = json.dumps(_TINY_DATA).encode()
    dest = tmp_path / "prices" / "genai-prices.json"
    result = update_prices(dest, url=url, timeout_s=5)
    assert (result.num_providers, result.num_bytes) == (1, len(handler.body))
    updated = PriceCatalog(snapshot_path=dest)
    assert updated.version == result.version
    assert result.version.startswith(f"{V}+snapshot.")
    cost, resolved = updated.price(TokenUsage(input_tokens=1_000_000, output_tokens=1_000_000),
                                   "openai", "gpt-4o", AT)
    assert cost.total_usd == Decimal(3)
    assert resolved.source == f"genai-prices@{result.version}:openai/gpt-4o"


@pytest.mark.parametrize(("status", "body"), [(500, b"[]"), (200, b"{}"), (200, b"not json")])
def test_update_prices_failure_leaves_the_old_file(
        tmp_path: Path, price_server: tuple[str, type[_Handler]], status: int, body: bytes) -> None:
    url, handler = price_server
    handler.status, handler.body = status, body
    dest = tmp_path / "genai-prices.json"
    dest.write_text(json.dumps(_TINY_DATA))
    with pytest.raises(PricingError):
        update_prices(dest, url=url, timeout_s=5)
    assert json.loads(dest.read_text()) == _TINY_DATA


def test_bad_snapshot_file_is_a_pricing_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"not": "providers"}')
    with pytest.raises(PricingError, match="bad.json"):
        PriceCatalog(snapshot_path=path)
    with pytest.raises(PricingError):
        PriceCatalog(snapshot_path=tmp_path / "missing.json")


def test_for_data_dir_prefers_saved_prices(tmp_path: Path) -> None:
    assert PriceCatalog.for_data_dir(tmp_path).version == V
    snapshot_path(tmp_path).write_text(json.dumps(_TINY_DATA))
    assert PriceCatalog.for_data_dir(tmp_path).version.startswith(f"{V}+snapshot.")


def test_dated_model_without_provider_falls_back_through_its_maker(catalog: PriceCatalog) -> None:
    found = catalog.lookup("", "text-embedding-3-small-2031-01-01", AT)
    assert found is not None
    assert found.source == (f"genai-prices@{V}:openai/text-embedding-3-small"
                            "?fallback=text-embedding-3-small-2031-01-01")
