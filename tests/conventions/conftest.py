from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mentatlab.conventions.registry import extract_fields
from mentatlab.model.raw import RawSpan
from mentatlab.model.span import CanonicalSpan
from mentatlab.pipeline.normalize import Normalize

T0_NS = 1_763_000_000_000_000_000


def raw_span(attributes: dict[str, Any] | None = None, *, name: str = "span", scope: str = "",
             kind: str = "internal", status_code: int = 0, status_message: str = "",
             resource: dict[str, Any] | None = None, tenancy: dict[str, str] | None = None,
             events: list[dict[str, Any]] | None = None, span_id: str = "00f067aa0ba902b7",
             duration_ns: int = 5_000_000) -> RawSpan:
    return RawSpan(
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736", span_id=span_id, parent_span_id="",
        name=name, start_time_ns=T0_NS, end_time_ns=T0_NS + duration_ns, kind=kind,
        status_code=status_code, status_message=status_message,
        attributes=dict(attributes or {}), events=list(events or []),
        resource=dict(resource or {}), scope_name=scope, tenancy=dict(tenancy or {}))


@pytest.fixture
def fields() -> Callable[..., dict[str, Any]]:
    """Canonical fields the registry extracts from a span built from the arguments."""
    def run(attributes: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        return extract_fields(raw_span(attributes, **kwargs))
    return run


@pytest.fixture
def normalized() -> Callable[..., CanonicalSpan]:
    """The CanonicalSpan Normalize makes of a span built from the arguments."""
    def run(attributes: dict[str, Any] | None = None, **kwargs: Any) -> CanonicalSpan:
        result = Normalize()([raw_span(attributes, **kwargs)])
        assert result.rejected == []
        return result.spans[0]
    return run


@pytest.fixture
def make_raw() -> Callable[..., RawSpan]:
    """The raw_span factory, for tests that call Normalize themselves."""
    return raw_span
