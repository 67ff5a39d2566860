"""Attributes of human oversight that are read at query time, not mapped at ingest.

Approval waits and prompt/workflow content hashes are not canonical span columns: a store
keeps them in the span's ``attributes`` JSON as they arrived, and the governance analytics
(:mod:`mentatlab.analytics.approvals`, :mod:`mentatlab.analytics.versions`) read them
there. This module is the one list of the keys they read, in precedence order (the first
key present wins), so docs/conventions.md prints the same table (:func:`render_markdown`).

The OpenTelemetry GenAI semantic conventions (through v1.38) define no attribute for a
human approval and none for a prompt's content hash; no published instrumentation we know
of records approval waits on spans. Approvals therefore use MentatLab's own ``mentat.*``
namespace (docs/decisions/0001-contracts.md); content hashes and prompt names also accept
what OpenLLMetry/Traceloop, OpenInference and Langfuse record.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "APPROVAL_ID_KEY",
    "APPROVAL_REVIEWER_KEY",
    "APPROVAL_STATES",
    "APPROVAL_STATE_KEY",
    "DECIDED_STATES",
    "PROMPT_HASH_KEYS",
    "PROMPT_NAME_KEYS",
    "PROMPT_TEMPLATE_KEYS",
    "WORKFLOW_HASH_KEYS",
    "render_markdown",
]

APPROVAL_STATE_KEY: Final = "mentat.approval.state"
"""``requested``, ``approved``, ``rejected`` or ``expired`` (case-insensitive); a span
carrying it is an approval sighting."""
APPROVAL_ID_KEY: Final = "mentat.approval.id"
"""Ties the sightings of one approval together (a request span and a later decision
span); unique within an org. Absent: the span is the whole approval (its start is the
request, its end the decision)."""
APPROVAL_REVIEWER_KEY: Final = "mentat.approval.reviewer"
"""Who decided: an id (``user:42``, a team handle), on the deciding span; never a name or
an email (PII redaction would replace it)."""
APPROVAL_STATES: Final = ("requested", "approved", "rejected", "expired")
"""Every state value; any other value counts as ``requested`` (a sighting, no decision)."""
DECIDED_STATES: Final = ("approved", "rejected", "expired")
"""States that end an approval's wait."""

PROMPT_NAME_KEYS: Final = ("mentat.prompt_name", "traceloop.prompt.key",
                           "langfuse.observation.prompt.name")
"""The name of the prompt whose version the span's ``prompt_version`` names."""
PROMPT_HASH_KEYS: Final = ("mentat.prompt_hash", "traceloop.prompt.version_hash")
"""The content hash of the prompt version the span used, compared with the registered one
as text (case-insensitive)."""
PROMPT_TEMPLATE_KEYS: Final = ("traceloop.prompt.template", "llm.prompt_template.template")
"""The prompt template text; when no hash key is present, its SHA-256 (lowercase hex of
the UTF-8 text) is the span's content hash."""
WORKFLOW_HASH_KEYS: Final = ("mentat.workflow_hash",)
"""The content hash of the workflow version (``workflow_id`` @ ``workflow_version``)."""

_TABLE: Final = (
    (APPROVAL_STATE_KEY, "approval state", "; ".join(APPROVAL_STATES)),
    (APPROVAL_ID_KEY, "approval id", "default: the span itself (trace id:span id)"),
    (APPROVAL_REVIEWER_KEY, "approval reviewer", "an id, on the deciding span"),
    *((key, "prompt name", "MentatLab" if key.startswith("mentat.") else "OpenLLMetry"
       if key.startswith("traceloop.") else "Langfuse") for key in PROMPT_NAME_KEYS),
    *((key, "prompt content hash", "MentatLab" if key.startswith("mentat.")
       else "OpenLLMetry") for key in PROMPT_HASH_KEYS),
    *((key, "prompt template (hashed: SHA-256 hex)", "OpenLLMetry"
       if key.startswith("traceloop.") else "OpenInference") for key in PROMPT_TEMPLATE_KEYS),
    *((key, "workflow content hash", "MentatLab") for key in WORKFLOW_HASH_KEYS),
)


def render_markdown() -> str:
    """The table of oversight attributes for docs/conventions.md (Markdown text)."""
    rows = "\n".join(f"| `{key}` | {meaning} | {note} |" for key, meaning, note in _TABLE)
    return ("| attribute (first present wins, in this order) | read as | source / values |\n"
            "| --- | --- | --- |\n" + rows + "\n")
