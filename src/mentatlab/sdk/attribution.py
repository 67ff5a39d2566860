"""Attribution that follows the context: who and what a span works for.

A value of an *inheritable* field (:data:`INHERITED_GROUPS`: agent, workflow, run,
session, user, customer, prompt version) recorded on a span — by ``set_agent``,
``set_workflow``, ``set_prompt_version``, ``set_attributes`` or as a start attribute —
is carried by every span started later under it: children, grandchildren, spans of
asyncio tasks created inside, of threads entered through ``wrap_context``, and the
spans instrumentations start for LLM calls. Spans leave the process already attributed;
nothing new is added to outgoing baggage (docs/decisions/0005-attribution-propagation.md).

How a span started with parent context ``ctx`` gets its ``mentat.*`` attributes
(:func:`apply_attribution`, called from the span processor's ``on_start``):

1. its own start attributes always win;
2. static tenancy (``init(org=, project=)``), then every ``mentat.*`` baggage entry of
   ``ctx`` (baggage wins over static tenancy);
3. for each inheritable group, the parent span's values (the current span of ``ctx``,
   when it is an OpenTelemetry SDK span of this process, ended or not) — unless baggage
   set *inside* the parent span (a ``baggage(...)`` block entered after it started) gives
   the group, then the baggage's;
4. a group travels whole: a span with any field of a group of its own (say its own
   ``agent_id``) takes nothing of that group from its parent or baggage (no other agent's
   ``agent_version``; same for ``workflow_id``/``workflow_version``), and
   :func:`drop_stale_group_members` removes an inherited version when a span later
   switches to another agent or workflow.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from types import MappingProxyType

from opentelemetry import baggage as otel_baggage
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.util.types import AttributeValue

from mentatlab.sdk._safety import log_internal_error
from mentatlab.sdk.propagation import BAGGAGE_PREFIX

__all__ = [
    "INHERITED_FIELDS",
    "INHERITED_GROUPS",
    "AttributionProcessor",
    "apply_attribution",
    "drop_stale_group_members",
]

INHERITED_GROUPS: tuple[tuple[str, ...], ...] = (  # as mentatlab.model.span.INHERITED_GROUPS
    ("mentat.agent_id", "mentat.agent_version"),
    ("mentat.workflow_id", "mentat.workflow_version"),
    ("mentat.run_id",),
    ("mentat.session_id",),
    ("mentat.user_id",),
    ("mentat.customer_id",),
    ("mentat.prompt_version",),
)
"""Attributes a span passes on to the spans started under it, in groups that travel
together: a span with any field of a group of its own takes none of that group from its
parent or baggage (the server's rule for ancestors, ``mentatlab.model.span``)."""

INHERITED_FIELDS: frozenset[str] = frozenset(key for group in INHERITED_GROUPS for key in group)
"""Every inheritable attribute (``mentat.<canonical field>``)."""

_GROUP_OF: dict[str, tuple[str, ...]] = {key: group for group in INHERITED_GROUPS
                                         for key in group}
_LEADERS = frozenset(group[0] for group in INHERITED_GROUPS if len(group) > 1)
_EMPTY: Mapping[str, str] = MappingProxyType({})

# The mentat.* baggage a span started under, for spans started under some: a child tells
# from it whether its own baggage was set before the parent span (the parent's values win)
# or inside it (the baggage wins). Weak, so a span never ended is not kept alive.
_start_baggage: weakref.WeakKeyDictionary[Span, Mapping[str, str]] = (
    weakref.WeakKeyDictionary())


def _snapshot(attributes: Mapping[str, AttributeValue] | None) -> dict[str, AttributeValue]:
    # An SDK span's attributes are a read-only proxy of its BoundedAttributes; their copy()
    # is one C-level dict copy (no lock, no per-key lookups that raise on a miss).
    if isinstance(attributes, MappingProxyType):
        copied: dict[str, AttributeValue] = attributes.copy()
        return copied
    return dict(attributes or {})


def _inherited(parent: Span, parent_attributes: Mapping[str, AttributeValue],
               present: AbstractSet[str], bag: Mapping[str, str]) -> dict[str, AttributeValue]:
    """The inheritable attributes ``parent`` passes on (before the child's own win)."""
    inherited = {key: parent_attributes[key] for key in present}
    if bag:
        parent_bag = _start_baggage.get(parent, _EMPTY)
        for group in INHERITED_GROUPS:
            # baggage entered inside the parent span: the nearer setting wins the group
            if any(key in bag and bag[key] != parent_bag.get(key) for key in group):
                for key in group:
                    inherited.pop(key, None)
    return inherited


def apply_attribution(span: Span, parent_context: Context | None,
                      static_attributes: Mapping[str, str] = _EMPTY) -> None:
    """Give a starting span its tenancy, baggage and inherited attribution.

    Call from :meth:`SpanProcessor.on_start`. Precedence, highest first: the span's own
    start attributes, then (per inheritable group) the nearer of the parent span's values
    and ``mentat.*`` baggage, then other ``mentat.*`` baggage, then ``static_attributes``.

    Args:
        span: the span being started (its start attributes already set).
        parent_context: the context it starts in (None: the current one).
        static_attributes: process-wide attributes, e.g. ``mentat.org_id``.
    """
    # This runs for every span started in the process, so the common cases (no baggage, a
    # parent with no attribution) are inline, and set operations do the per-key work
    # (docs/decisions/0005).
    entries = otel_baggage.get_all(parent_context)
    bag: Mapping[str, str] = _EMPTY
    if entries:
        bag = {key: str(value) for key, value in entries.items()
               if key.startswith(BAGGAGE_PREFIX)}
    inherited = None
    parent = trace.get_current_span(parent_context)
    if isinstance(parent, Span):  # not a remote, non-recording or another SDK's span
        parent_attributes = _snapshot(parent.attributes)
        present = INHERITED_FIELDS.intersection(parent_attributes)
        if present:
            inherited = _inherited(parent, parent_attributes, present, bag)
    if not (static_attributes or bag or inherited):
        return
    updates: dict[str, AttributeValue] = {**static_attributes, **bag}
    if inherited:
        # A group taken from the parent replaces the baggage's members of that group.
        for key in INHERITED_FIELDS.intersection(inherited):
            for member in _GROUP_OF[key]:
                updates.pop(member, None)
        updates.update(inherited)
    own = _snapshot(span.attributes)
    if own:
        for key in own.keys() & updates.keys():
            del updates[key]
        # A group with any field of its own is the span's own: no other agent's version.
        for key in INHERITED_FIELDS.intersection(own):
            for member in _GROUP_OF[key]:
                updates.pop(member, None)
    if bag:
        _start_baggage[span] = bag
    if updates:
        span.set_attributes(updates)


def drop_stale_group_members(span: trace.Span, fields: Mapping[str, AttributeValue]) -> None:
    """Before ``fields`` are set on ``span``: drop members of a group whose id changes.

    A span that inherited ``agent_id=a, agent_version=1`` and then calls
    ``set_agent("b")`` must not report ``b`` at version 1. OpenTelemetry has no API to
    remove an attribute, so this removes it from the SDK span's attribute map under the
    span's lock; on a span of another SDK it does nothing.

    Args:
        span: the span about to receive ``fields``.
        fields: ``mentat.<field>`` → value about to be set.
    """
    if not isinstance(span, Span) or _LEADERS.isdisjoint(fields):
        return
    current = _snapshot(span.attributes)
    stale: list[str] = []
    for leader in _LEADERS.intersection(fields):
        group = _GROUP_OF[leader]
        new_id = fields[leader]
        if new_id is not None and current.get(leader, new_id) != new_id:
            stale.extend(key for key in group[1:] if key in current and key not in fields)
    if not stale:
        return
    attributes = getattr(span, "_attributes", None)  # no public way to remove an attribute
    lock = getattr(span, "_lock", None)
    if not isinstance(attributes, BoundedAttributes) or lock is None:
        return
    with lock:
        if span.is_recording():
            for key in stale:
                attributes.pop(key, None)


class AttributionProcessor(SpanProcessor):
    """Attribution for a tracer provider that :func:`mentatlab.init` does not manage.

    ``mentatlab.init()`` already does this on its provider. Add one to a provider of your
    own (``provider.add_span_processor(AttributionProcessor())``), before its export
    processor, so its spans carry ``mentat.*`` baggage and inherit agent, workflow, run,
    session, user, customer and prompt version from their parent spans.
    """

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Apply :func:`apply_attribution` to the starting span; never raises."""
        try:
            apply_attribution(span, parent_context)
        except Exception:
            log_internal_error()

    def on_end(self, span: ReadableSpan) -> None:
        """Nothing to do at span end."""

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing buffered: always flushed."""
        return True
