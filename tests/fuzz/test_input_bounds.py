"""The inputs the API fuzz run found answered 5xx: each is now a 422 naming its field.

Found by schemathesis (test_api_fuzz.py) before the bounds in ``server/params.py``:
years the span store cannot hold (``DateTime64``: 1900..2262) reached ClickHouse and came
back as 503 (``DECIMAL_OVERFLOW``, ``BAD_QUERY_PARAMETER``), and a huge ``window_s``
raised ``OverflowError`` (500).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from serverkit import InProcess, make_settings, open_in_process

pytestmark = pytest.mark.fuzz


@pytest.fixture
async def client(_isolated_data_dir: Path) -> AsyncIterator[InProcess]:
    async with open_in_process(make_settings(_isolated_data_dir)) as item:
        yield item


OUT_OF_RANGE = [
    ("GET", "/api/v1/overview?start=1199-08-30T15:26:48Z", "start"),
    ("GET", "/api/v1/unpriced?start=0352-09-19T07:19:16Z", "start"),
    ("GET", "/api/v1/cost?end=2262-04-12T00:00:00Z", "end"),
    ("GET", "/api/v1/traces?start=0001-01-01T00:00:00%2B05:00", "start"),
    ("GET", "/api/v1/traces?end=9999-12-31T23:00:00-05:00", "end"),
    ("GET", "/api/v1/traces?min_duration_ms=1.7976931348623155e%2B308", "min_duration_ms"),
    ("GET", "/api/v1/traces?min_cost=1e40", "min_cost"),
    ("GET", "/api/v1/traces?min_cost=NaN", "min_cost"),
    ("GET", "/api/v1/traces?offset=9223372036854775808", "offset"),
    ("GET", "/api/v1/spans?window_s=5.448099155727086e%2B307", "window_s"),
    ("GET", "/api/v1/spans?after_ns=99999999999999999999", "after_ns"),
    ("POST", "/api/v1/reprice?since=1307-03-01T00:57:58-05:29", "since"),
]


async def test_out_of_range_input_is_a_422_naming_the_field(client: InProcess) -> None:
    for method, path, field in OUT_OF_RANGE:
        answer = await client.client.request(method, path)
        assert answer.status_code == 422, (path, answer.text)
        body = answer.json()
        assert body["ok"] is False and field in {e["field"] for e in body["errors"]}, body
    unhandled = client.state.metrics.unhandled_errors.collect()[0].samples
    assert not [s for s in unhandled if s.value], unhandled


async def test_a_default_start_before_the_store_range_names_start(client: InProcess) -> None:
    answer = await client.client.get("/api/v1/overview?end=1900-01-03T00:00:00Z")
    assert answer.status_code == 422, answer.text
    assert [e["field"] for e in answer.json()["errors"]] == ["start"]


async def test_alert_rule_lists_and_numbers_are_bounded(client: InProcess) -> None:
    rule = {"name": "b", "kind": "budget", "period": "month", "limit_amount": "1e30",
            "channels": ["email:a@example.org"] * 33}
    answer = await client.client.post("/api/v1/alert-rules", json=rule)
    assert answer.status_code == 422, answer.text
    assert {e["field"] for e in answer.json()["errors"]} == {"limit_amount", "channels"}
