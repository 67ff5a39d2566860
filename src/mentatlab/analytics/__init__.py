"""Named, parameterised ClickHouse SQL queries over the span store, returning typed results.

API, CLI and UI all call these functions; every one runs unchanged on chDB and on a
ClickHouse server.
"""

from __future__ import annotations

from mentatlab.analytics.cost import CostRow, cost_by
from mentatlab.analytics.overview import Overview, get_overview
from mentatlab.analytics.query import (
    BUCKETS,
    FILTER_COLUMNS,
    GROUP_BY_COLUMNS,
    QueryParams,
    TimeRange,
)
from mentatlab.analytics.spans import SpanPage, iter_spans, list_spans_since
from mentatlab.analytics.traces import (
    SpanNode,
    TraceDetail,
    TraceSummary,
    get_trace,
    list_traces,
)
from mentatlab.analytics.unpriced import UnpricedModel, list_unpriced

__all__ = [
    "BUCKETS",
    "FILTER_COLUMNS",
    "GROUP_BY_COLUMNS",
    "CostRow",
    "Overview",
    "QueryParams",
    "SpanNode",
    "SpanPage",
    "TimeRange",
    "TraceDetail",
    "TraceSummary",
    "UnpricedModel",
    "cost_by",
    "get_overview",
    "get_trace",
    "iter_spans",
    "list_spans_since",
    "list_traces",
    "list_unpriced",
]
