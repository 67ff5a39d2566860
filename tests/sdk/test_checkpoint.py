"""``mentatlab.checkpoint``: state deltas as RFC 7386 merge patches on span events."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import mentatlab
from mentatlab.merge_patch import apply_merge_patch, drop_nulls, make_merge_patch
from mentatlab.sdk.checkpoint import CHECKPOINT_EVENT


def _checkpoints(exporter: InMemorySpanExporter) -> list[tuple[str, dict[str, Any], bool, int]]:
    """(span name, patch, replace, seq) of every checkpoint, in the order recorded."""
    found = []
    for span in exporter.get_finished_spans():
        for event in span.events:
            if event.name == CHECKPOINT_EVENT:
                attrs = dict(event.attributes or {})
                found.append((event.timestamp, span.name,
                              json.loads(str(attrs["mentat.checkpoint.patch"])),
                              bool(attrs["mentat.checkpoint.replace"]),
                              int(attrs["mentat.checkpoint.seq"])))  # type: ignore[call-overload]
    return [f[1:] for f in sorted(found, key=lambda f: f[0])]


def test_deltas_per_trace(span_exporter: InMemorySpanExporter) -> None:
    with mentatlab.span("run"):
        mentatlab.checkpoint({"step": "plan", "notes": {"a": 1, "b": 2}, "drop": None})
        with mentatlab.span("tool"):
            mentatlab.checkpoint({"step": "act", "notes": {"a": 1, "c": 3}, "hits": [1, None]})
        mentatlab.checkpoint({"step": "act", "notes": {"a": 1, "c": 3}, "hits": [1, None]})
        mentatlab.checkpoint({"done": True})
    with mentatlab.span("other-trace"):
        mentatlab.checkpoint({"step": "plan"})
    assert _checkpoints(span_exporter) == [
        # the first of a trace: the whole state (nulls dropped), replacing
        ("run", {"step": "plan", "notes": {"a": 1, "b": 2}}, True, 1),
        # changed step, nested: b removed, c added; hits added whole
        ("tool", {"step": "act", "notes": {"b": None, "c": 3}, "hits": [1, None]}, False, 2),
        ("run", {}, False, 3),  # nothing changed
        ("run", {"step": None, "notes": None, "hits": None, "done": True}, False, 4),
        ("other-trace", {"step": "plan"}, True, 1),
    ]


def test_no_span_and_bad_state_are_ignored(span_exporter: InMemorySpanExporter) -> None:
    mentatlab.checkpoint({"outside": 1})  # no current span: nothing, no error
    with mentatlab.span("run"):
        mentatlab.checkpoint(["not", "a", "mapping"])  # type: ignore[arg-type]
        mentatlab.checkpoint({"when": object})  # not JSON: recorded as its str
    assert _checkpoints(span_exporter) == [("run", {"when": str(object)}, True, 1)]


@pytest.mark.parametrize(("old", "new"), [
    ({}, {"a": 1}),
    ({"a": 1, "b": {"c": [1, 2], "d": "x"}}, {"b": {"c": [2], "e": {"f": 1}}}),
    ({"a": {"b": {"c": 1}}}, {"a": 5}),
    ({"a": 5}, {"a": {"b": 1}}),
    ({"a": [1]}, {"a": [1]}),
])
def test_patch_round_trips(old: dict[str, Any], new: dict[str, Any]) -> None:
    assert apply_merge_patch(old, make_merge_patch(old, new)) == new


def test_rfc_7386_appendix_a() -> None:
    # Examples from RFC 7386, Appendix A (original, patch, result)
    cases = [({"a": "b"}, {"a": "c"}, {"a": "c"}), ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
             ({"a": "b"}, {"a": None}, {}), ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
             ({"a": ["b"]}, {"a": "c"}, {"a": "c"}), ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
             ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
             ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}), (["a", "b"], ["c", "d"], ["c", "d"]),
             ({"a": "b"}, ["c"], ["c"]), ({"a": "foo"}, None, None), ({"a": "foo"}, "bar", "bar"),
             ({"e": None}, {"a": 1}, {"e": None, "a": 1}), ([1, 2], {"a": "b", "c": None},
                                                            {"a": "b"}),
             ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}})]
    for original, patch, result in cases:
        assert apply_merge_patch(original, patch) == result
    assert drop_nulls({"a": None, "b": {"c": None, "d": [None]}}) == {"b": {"d": [None]}}
