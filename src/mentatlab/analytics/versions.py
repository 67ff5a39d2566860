"""Spans that name an unregistered prompt/workflow version, or a registered one changed.

What a span names (its own values only: a version inherited from an ancestor is the
ancestor's claim, counted there):

* prompt: ``prompt_version`` (the canonical column, from ``mentat.prompt_version``,
  ``traceloop.prompt.version``, ``llm.prompt_template.version``,
  ``langfuse.observation.prompt.version``), the prompt name from the first of
  :data:`~mentatlab.conventions.oversight.PROMPT_NAME_KEYS` present (``""`` if none), and
  the content hash from the first of ``PROMPT_HASH_KEYS``, else the SHA-256 hex of the
  first of ``PROMPT_TEMPLATE_KEYS`` (``""`` if none);
* workflow: ``workflow_id`` @ ``workflow_version``, the hash from ``WORKFLOW_HASH_KEYS``.

The registry lives in the control store and the spans in the span store, so the join is
made at query time in Python (:func:`flag_versions`): the span store groups the window's
spans by (org, kind, name, version, hash) — a few rows per version — and each group is
compared with the registered versions. A group is flagged

* ``unregistered``: no version of that org, kind, name and version is registered;
* ``changed``: it is registered, the spans carry a hash, and it differs from the
  registered one (case-insensitive).

Spans of a registered version that carry no hash cannot be checked and are not flagged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from mentatlab.analytics.query import FINAL_SETTINGS, QueryParams, build_where
from mentatlab.conventions.oversight import (
    PROMPT_HASH_KEYS,
    PROMPT_NAME_KEYS,
    PROMPT_TEMPLATE_KEYS,
    WORKFLOW_HASH_KEYS,
)
from mentatlab.errors import ValidationError
from mentatlab.model.span import INHERITED_GROUPS
from mentatlab.storage.base import SpanStore

__all__ = ["MAX_FLAGS", "NUM_EVIDENCE", "SeenVersion", "VersionFlag", "flag_versions",
           "seen_versions"]

NUM_EVIDENCE: Final = 5
"""Evidence span ids per flagged group (the lowest ``trace_id:span_id``)."""
MAX_FLAGS: Final = 500
"""Most flagged groups returned (most spans first)."""
_KINDS: Final = ("prompt", "workflow")
_PROMPT_BIT: Final = 1 << INHERITED_GROUPS.index(("prompt_version",))
_WORKFLOW_BIT: Final = 1 << INHERITED_GROUPS.index(("workflow_id", "workflow_version"))


@dataclass(frozen=True, slots=True)
class SeenVersion:
    """Spans of a window naming one version with one content hash."""

    org_id: str
    kind: str
    name: str
    version: str
    content_hash: str
    """Lowercased; ``""`` when the spans carry none."""
    num_spans: int
    first_seen: datetime
    last_seen: datetime
    evidence: list[str]
    """Up to :data:`NUM_EVIDENCE` ``trace_id:span_id`` of these spans."""


@dataclass(frozen=True, slots=True)
class VersionFlag:
    """A flagged group: :class:`SeenVersion` plus why."""

    status: str
    """``unregistered`` or ``changed``."""
    seen: SeenVersion
    registered_hash: str
    """The registered hash (``changed``), ``""`` when unregistered."""


def _first_present(keys: Iterable[str]) -> list[str]:
    # a substring test on the raw JSON text skips the JSON parse of the (many) spans
    # without the key: measured 1.2 s -> see bench/RESULTS.md, "Oversight and security"
    return [f"if(position(attributes, '\"{k}\"') > 0, JSONExtractString(attributes, '{k}'),"
            f" '')" for k in keys]


def _coalesce(exprs: list[str]) -> str:
    out = "''"
    for expr in reversed(exprs):
        out = f"if({expr} != '', {expr}, {out})"
    return out


def _prompt_hash() -> str:
    hashes = _first_present(PROMPT_HASH_KEYS)
    templates = [f"lower(hex(SHA256({e})))" for e in _first_present(PROMPT_TEMPLATE_KEYS)]
    # a template is hashed only when present: SHA256('') is not "no hash"
    pairs = [(e, e) for e in hashes] + list(zip(_first_present(PROMPT_TEMPLATE_KEYS),
                                                templates, strict=True))
    out = "''"
    for test, value in reversed(pairs):
        out = f"if({test} != '', {value}, {out})"
    return f"lower({out})"


def _sql(where: str, kinds: tuple[str, ...]) -> str:
    parts = []
    if "prompt" in kinds:
        parts.append(f"""
    SELECT org_id, trace_id, span_id, start_time, 'prompt' AS kind,
           {_coalesce(_first_present(PROMPT_NAME_KEYS))} AS name, prompt_version AS version,
           {_prompt_hash()} AS hash
    FROM spans FINAL
    WHERE {where} AND prompt_version != '' AND bitAnd(inherited, {_PROMPT_BIT}) = 0""")
    if "workflow" in kinds:
        parts.append(f"""
    SELECT org_id, trace_id, span_id, start_time, 'workflow' AS kind, workflow_id AS name,
           workflow_version AS version,
           lower({_coalesce(_first_present(WORKFLOW_HASH_KEYS))}) AS hash
    FROM spans FINAL
    WHERE {where} AND workflow_version != '' AND bitAnd(inherited, {_WORKFLOW_BIT}) = 0""")
    union = "\n    UNION ALL".join(parts)
    return f"""
SELECT org_id, kind, name, version, hash, count() AS num_spans,
       min(start_time) AS first_seen, max(start_time) AS last_seen,
       groupArraySorted({NUM_EVIDENCE})(concat(trace_id, ':', span_id)) AS evidence
FROM ({union}
)
GROUP BY org_id, kind, name, version, hash
ORDER BY org_id, kind, name, version, hash
{FINAL_SETTINGS}"""


def seen_versions(store: SpanStore, params: QueryParams, kind: str | None = None
                  ) -> list[SeenVersion]:
    """The versions the window's spans name, one row per (org, kind, name, version, hash).

    Args:
        store: the span store.
        params: the window and equality filters (the caller's scope included).
        kind: ``prompt`` or ``workflow`` only; None for both.

    Raises:
        ValidationError: an unknown ``kind``.
        QueryTimeout, StoreError: the store failed.
    """
    if kind is not None and kind not in _KINDS:
        raise ValidationError("kind", f"Expected one of {list(_KINDS)}, got {kind!r}")
    parts = build_where(params.time_range, params.filters)
    kinds = _KINDS if kind is None else (kind,)
    rows = store.query_arrow(_sql(parts.where, kinds), parts.binds).to_pylist()
    return [SeenVersion(str(r["org_id"]), str(r["kind"]), str(r["name"]), str(r["version"]),
                        str(r["hash"]), int(r["num_spans"]), r["first_seen"], r["last_seen"],
                        [str(e) for e in r["evidence"]]) for r in rows]


def flag_versions(seen: Iterable[SeenVersion],
                  registered: Mapping[tuple[str, str, str, str], str]) -> list[VersionFlag]:
    """The groups of ``seen`` that are unregistered or changed, most spans first.

    Args:
        seen: what :func:`seen_versions` found.
        registered: ``(org_id, kind, name, version)`` → the registered content hash
            (lowercase).

    Returns:
        At most :data:`MAX_FLAGS` flags, by number of spans (descending), then
        org, kind, name, version.
    """
    flags: list[VersionFlag] = []
    for group in seen:
        known = registered.get((group.org_id, group.kind, group.name, group.version))
        if known is None:
            flags.append(VersionFlag("unregistered", group, ""))
        elif group.content_hash and group.content_hash != known.lower():
            flags.append(VersionFlag("changed", group, known))
    flags.sort(key=lambda f: (-f.seen.num_spans, f.seen.org_id, f.seen.kind, f.seen.name,
                              f.seen.version, f.seen.content_hash))
    return flags[:MAX_FLAGS]
