"""Scalar string parameters reach the store unchanged: tabs, newlines, backslashes, quotes."""

from __future__ import annotations

import pytest
from spanfactory import T0, make_table

from mentatlab.analytics import QueryParams, TimeRange, cost_by
from mentatlab.storage.base import SpanStore
from mentatlab.storage.query_param import escape_text, format_params

NASTY = [
    "tab\there",
    "new\nline",
    "back\\slash",
    "literal \\n and \\t",
    "quote ' and \" and `",
    "cr\rlf\r\n",
    "\\",
    "nul\0byte",
    "trailing\\",
]


@pytest.mark.parametrize("value", NASTY)
def test_string_parameter_round_trips(store: SpanStore, value: str) -> None:
    got = store.query_arrow("SELECT {v:String} AS v", {"v": value}).column("v")[0].as_py()
    assert got == value


def test_escape_text_is_the_tab_separated_escaping() -> None:
    assert escape_text("a\tb\nc\\d'e") == "a\\tb\\nc\\\\d'e"
    assert format_params({"s": "x\ty", "a": ["x\ty"], "n": 3}) == {
        "s": "x\\ty", "a": "['x\ty']", "n": "3"}


def test_nasty_values_filter_exactly(store: SpanStore) -> None:
    from datetime import timedelta

    for i, value in enumerate(NASTY):
        store.append_batch(make_table([i * 10, i * 10 + 1], agent_id=value))
    # One plain neighbour whose name a mis-escaped filter could match instead.
    store.append_batch(make_table([500], agent_id="literal \n and \t"))
    time_range = TimeRange(T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    for value in NASTY:
        rows = cost_by(store, QueryParams(time_range, filters={"agent_id": value},
                                          group_by=["agent_id"]))
        assert [(r.keys["agent_id"], r.num_spans) for r in rows] == [(value, 2)]
    array = store.query_arrow(
        "SELECT count() AS n FROM spans WHERE agent_id IN {v:Array(String)}", {"v": NASTY})
    assert array.column("n")[0].as_py() == 2 * len(NASTY)
