from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mentatlab.analytics.query import QueryParams, TimeRange
from mentatlab.errors import ValidationError

_START = datetime(2026, 1, 1, tzinfo=UTC)
_RANGE = TimeRange(_START, _START + timedelta(days=1))


def test_short_names_mean_the_canonical_columns() -> None:
    params = QueryParams(_RANGE, filters={"org": "acme", "tool": "search"},
                         group_by=["project", "model", "agent"])
    assert params.group_by == ("project_id", "model", "agent_id")
    assert params.filters == {"org_id": "acme", "tool_name": "search"}


def test_an_alias_and_its_column_together_are_a_duplicate() -> None:
    with pytest.raises(ValidationError) as info:
        QueryParams(_RANGE, group_by=["project", "project_id"])
    assert info.value.field == "group_by"
