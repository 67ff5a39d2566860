"""The fast paths of the ingest pipeline give exactly what the plain paths give."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from mentatlab.model.schema import SPAN_SCHEMA, arrow_to_spans, spans_to_arrow
from mentatlab.model.span import CanonicalSpan
from mentatlab.pipeline import workers
from mentatlab.pipeline.price import Price
from mentatlab.pricing.catalog import PriceCatalog
from mentatlab.pricing.rate_card import RateCard, TokenUsage
from mentatlab.receivers.decode import decode_otlp_protobuf
from mentatlab.receivers.otlp_http import HttpLimits
from mentatlab.settings import load_settings

_CATALOG = PriceCatalog()
_AT = datetime(2026, 1, 1, tzinfo=UTC)
_MODELS = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"),
           ("anthropic", "claude-3-5-sonnet-20241022"), ("google", "gemini-1.5-pro"),
           ("openai", "text-embedding-3-small"), ("anthropic", "claude-sonnet-4")]
_CARDS = [found.card for provider, model in _MODELS
          if (found := _CATALOG.lookup(provider, model, _AT)) is not None]
_COUNT = st.one_of(st.none(), st.integers(0, 3_000_000))


def test_the_sampled_cards_are_compiled_to_integers() -> None:
    assert len(_CARDS) >= 5
    assert all(card._int_plan is not None for card in _CARDS)  # noqa: SLF001


@settings(max_examples=300, deadline=None)
@given(card=st.sampled_from(_CARDS), inputs=_COUNT, output=_COUNT, read=_COUNT,
       write=_COUNT, reasoning=_COUNT)
def test_integer_rate_card_sums_equal_genai_prices(card: RateCard, inputs: int | None,
                                                   output: int | None, read: int | None,
                                                   write: int | None,
                                                   reasoning: int | None) -> None:
    usage = TokenUsage(input_tokens=inputs, output_tokens=output, cache_read_tokens=read,
                       cache_write_tokens=write, reasoning_tokens=reasoning)
    fast = card.cost(usage)
    values = usage.to_genai_values()
    if not values:
        assert fast.total_usd == 0
        return
    from genai_prices.types import Usage

    direct = card.model_price.calc_price(Usage(**values))
    assert (fast.input_usd, fast.output_usd, fast.total_usd) == (
        direct["input_price"], direct["output_price"], direct["total_price"])


def test_spans_to_arrow_round_trips_mixed_and_constant_columns(otlp_body: bytes) -> None:
    pipeline = workers.build_pipeline(load_settings())
    price = workers.price_of(pipeline)
    assert price is not None
    spans = price(pipeline.run_spans(decode_otlp_protobuf(otlp_body).spans).spans)
    spans[3].is_streaming = True  # one non-null in an otherwise null column
    table = spans_to_arrow(spans)
    assert table.schema == SPAN_SCHEMA
    assert arrow_to_spans(table) == spans
    assert spans_to_arrow([]).num_rows == 0


def test_price_in_place_matches_price_span(otlp_body: bytes) -> None:
    pipeline = workers.build_pipeline(load_settings())
    normalize = pipeline.normalizer
    price = workers.price_of(pipeline)
    assert isinstance(price, Price)
    fresh = normalize(decode_otlp_protobuf(otlp_body).spans).spans
    copies = [dataclasses.replace(span) for span in fresh]
    priced = price(fresh)
    assert priced is fresh  # priced in place
    assert [price.price_span(span) for span in copies] == priced
    assert all(copy.token_cost == 0 for copy in copies)  # price_span never mutates
    assert sum((span.token_cost for span in priced), Decimal(0)) > 0


def test_worker_gives_the_table_the_server_process_would(otlp_body: bytes,
                                                         tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    workers.init_worker(settings)
    limits = HttpLimits(1 << 24, 1 << 26)
    result = workers.run_otlp_http(otlp_body, "application/x-protobuf", None, limits,
                                   {"org_id": "from-key"})
    assert result is not None and result.table_ipc is not None
    table = workers.arrow_from_ipc(result.table_ipc)
    raw = decode_otlp_protobuf(otlp_body).spans
    for span in raw:
        span.tenancy["org_id"] = "from-key"
    expected = workers.build_pipeline(settings).run(raw).table
    drop = ["ingested_at_ns"]
    assert table.drop_columns(drop).equals(expected.drop_columns(drop))
    assert set(table.column("org_id").to_pylist()) == {"from-key"}
    assert (result.received, result.decode_rejected, result.rejected) == (200, [], [])
    assert workers.run_otlp_http(b"\xff\xff", "application/x-protobuf", None, limits,
                                 None) is None
    assert isinstance(table, pa.Table)


def test_the_pipeline_table_is_the_spans_priced_one_by_one(otlp_body: bytes) -> None:
    # pricing is the pipeline's last stage, on columns (PriceColumns): the same table as
    # pricing each span (Price) before spans_to_arrow, the path it replaced
    pipeline = workers.build_pipeline(load_settings())
    price = workers.price_of(pipeline)
    assert price is not None
    raw = decode_otlp_protobuf(otlp_body).spans
    table = pipeline.run(raw).table
    by_span = spans_to_arrow(price(pipeline.run_spans(decode_otlp_protobuf(otlp_body).spans)
                                   .spans))
    drop = ["ingested_at_ns"]
    assert table.drop_columns(drop).equals(by_span.drop_columns(drop))
    assert sum(table.column("token_cost").to_pylist(), Decimal(0)) > 0
    assert [s.name for s in pipeline.stages][-1] == "price"


def test_canonical_span_is_mutable_and_slotted() -> None:
    assert "__slots__" in CanonicalSpan.__dict__
    assert not CanonicalSpan.__dataclass_params__.frozen  # type: ignore[attr-defined]
