"""Registered prompt/workflow versions (control store, SQLite and PostgreSQL) and the spans
flagged against them (span store, chDB and ClickHouse)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta

import pytest
from signal_spans import T0, append, make_span

from mentatlab.analytics.query import QueryParams, TimeRange
from mentatlab.analytics.versions import flag_versions, seen_versions
from mentatlab.errors import ValidationError
from mentatlab.model.span import INHERITED_GROUPS
from mentatlab.storage.base import SpanStore
from mentatlab.storage.control import ControlStore, migrate_control_store
from mentatlab.storage.control.versions import VersionConflict, content_hash_of

M = timedelta(minutes=1)
TEMPLATE = "You are a triage agent. Answer in {language}."
TEMPLATE_HASH = hashlib.sha256(TEMPLATE.encode()).hexdigest()


@pytest.fixture
def control(control_store_url: str) -> Iterator[ControlStore]:
    migrate_control_store(control_store_url)
    opened = ControlStore(control_store_url)
    opened.create_org("Acme", "acme")
    yield opened
    opened.close()


def test_a_version_is_registered_once_and_never_changes(control: ControlStore) -> None:
    info, created = control.versions.register("acme", "prompt", "triage", "v1", "AB12",
                                              registered_by="cli")
    assert created and info.content_hash == "ab12" and info.registered_by == "cli"
    again, created = control.versions.register("acme", "prompt", "triage", "v1", " ab12 ")
    assert not created and again.id == info.id
    with pytest.raises(VersionConflict) as caught:
        control.versions.register("acme", "prompt", "triage", "v1", "cd34")
    assert caught.value.field == "content_hash" and caught.value.existing.id == info.id
    control.versions.register("acme", "workflow", "checkout", "3", content_hash_of("steps: []"))
    assert [(v.kind, v.name, v.version) for v in control.versions.list("acme")] == [
        ("prompt", "triage", "v1"), ("workflow", "checkout", "3")]
    assert [v.kind for v in control.versions.list("acme", kind="workflow")] == ["workflow"]
    assert control.versions.list("other") == []


@pytest.mark.parametrize(("args", "field"), [
    (("acme", "model", "x", "1", "ab"), "kind"),
    (("acme", "workflow", "", "1", "ab"), "name"),
    (("acme", "prompt", "x", " ", "ab"), "version"),
    (("acme", "prompt", "x", "1", "not a hash!"), "content_hash"),
    (("nobody", "prompt", "x", "1", "ab"), "org_id"),
])
def test_bad_registrations_name_the_field(control: ControlStore, args: tuple[str, ...],
                                          field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        control.versions.register(*args)
    assert caught.value.field == field


def _load(store: SpanStore) -> dict[str, str]:
    prompt_bit = 1 << INHERITED_GROUPS.index(("prompt_version",))
    spans = {
        # registered, same hash given as the OpenLLMetry hash attribute
        "ok": make_span(T0 + M, prompt_version="v1", attributes={
            "traceloop.prompt.key": "triage", "traceloop.prompt.version_hash": "AB12"}),
        # registered, hash computed from the template text: matches
        "template": make_span(T0 + 2 * M, prompt_version="v2", attributes={
            "mentat.prompt_name": "triage", "traceloop.prompt.template": TEMPLATE}),
        # registered version, other hash: changed in place
        "changed": make_span(T0 + 3 * M, prompt_version="v1", attributes={
            "traceloop.prompt.key": "triage", "mentat.prompt_hash": "ffff"}),
        # registered version without any hash: cannot be checked
        "nohash": make_span(T0 + 4 * M, prompt_version="v1", attributes={
            "langfuse.observation.prompt.name": "triage"}),
        # never registered
        "unreg": make_span(T0 + 5 * M, prompt_version="v9", attributes={
            "mentat.prompt_name": "triage", "mentat.prompt_hash": "0a"}),
        "unreg2": make_span(T0 + 6 * M, prompt_version="v9", attributes={
            "mentat.prompt_name": "triage", "mentat.prompt_hash": "0a"}),
        # inherited from an ancestor: the ancestor's claim, not counted here
        "inherited": make_span(T0 + 7 * M, prompt_version="v7", inherited=prompt_bit),
        # workflows
        "wf_ok": make_span(T0 + 8 * M, workflow_id="checkout", workflow_version="3",
                           attributes={"mentat.workflow_hash": content_hash_of("steps: []")}),
        "wf_unreg": make_span(T0 + 9 * M, workflow_id="checkout", workflow_version="4"),
        # out of the window, another org
        "late": make_span(T0 + 90 * M, prompt_version="v8"),
        "other_org": make_span(T0 + 10 * M, org="other", prompt_version="v5"),
    }
    append(store, list(spans.values()))
    return {name: f"{s.trace_id}:{s.span_id}" for name, s in spans.items()}


REGISTERED = {("acme", "prompt", "triage", "v1"): "ab12",
              ("acme", "prompt", "triage", "v2"): TEMPLATE_HASH,
              ("acme", "workflow", "checkout", "3"): content_hash_of("steps: []")}


def test_unregistered_and_changed_versions_are_flagged(store: SpanStore) -> None:
    ids = _load(store)
    params = QueryParams(TimeRange(T0, T0 + 60 * M), filters={"org_id": "acme"})
    seen = seen_versions(store, params)
    assert {(s.kind, s.name, s.version, s.content_hash) for s in seen} == {
        ("prompt", "triage", "v1", "ab12"), ("prompt", "triage", "v2", TEMPLATE_HASH),
        ("prompt", "triage", "v1", "ffff"), ("prompt", "triage", "v1", ""),
        ("prompt", "triage", "v9", "0a"), ("workflow", "checkout", "3", REGISTERED[
            ("acme", "workflow", "checkout", "3")]), ("workflow", "checkout", "4", "")}
    flags = flag_versions(seen, REGISTERED)
    assert [(f.status, f.seen.kind, f.seen.version, f.seen.num_spans) for f in flags] == [
        ("unregistered", "prompt", "v9", 2), ("changed", "prompt", "v1", 1),
        ("unregistered", "workflow", "4", 1)]
    unreg, changed, wf = flags
    assert unreg.seen.evidence == sorted([ids["unreg"], ids["unreg2"]])
    assert unreg.seen.first_seen < unreg.seen.last_seen
    assert changed.registered_hash == "ab12" and changed.seen.evidence == [ids["changed"]]
    assert wf.seen.evidence == [ids["wf_unreg"]]


def test_nothing_is_flagged_when_everything_is_registered(store: SpanStore) -> None:
    append(store, [make_span(T0 + M, prompt_version="v1", attributes={
        "traceloop.prompt.key": "triage", "traceloop.prompt.version_hash": "ab12"})])
    params = QueryParams(TimeRange(T0, T0 + 60 * M), filters={"org_id": "acme"})
    seen = seen_versions(store, params, "prompt")
    assert len(seen) == 1 and flag_versions(seen, REGISTERED) == []
    assert seen_versions(store, params, "workflow") == []
    with pytest.raises(ValidationError, match="kind"):
        seen_versions(store, params, "model")
