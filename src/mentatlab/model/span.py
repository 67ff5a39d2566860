"""CanonicalSpan: the one row every span becomes, whatever convention it arrived in.

Field names follow DESIGN.md ("Canonical span") and the OTel GenAI semantic conventions.

Token meaning (one documented meaning, whatever the producer used):

* ``input_tokens`` is the TOTAL prompt count, *inclusive* of ``cache_read_tokens`` and
  ``cache_write_tokens`` (OTel GenAI semconv 1.40: "input_tokens = input + cache_read +
  cache_creation"). Producers that report cache-exclusive input (Anthropic's raw API,
  Strands, Bedrock through the Vercel AI SDK) are converted at normalization.
* ``output_tokens`` is the total completion count, *inclusive* of ``reasoning_tokens``.
* ``None`` means "not reported" and differs from ``0``.
* ``usage_is_rollup`` marks a span whose token counts sum its descendants' (an agent or
  workflow run span); its tokens are kept for display, its ``token_cost`` is 0 and
  analytics never add them to token totals, so usage is never counted twice. The part of
  its usage that no descendant carries (all of it when none does) is its
  ``unattributed_*_tokens``, priced as ``unattributed_cost``: set by the attribution
  resolver, which sees the whole trace (docs/decisions/0004-attribution-and-aggregates.md).

Attribution (``agent_id``, ``workflow_id``, ``run_id``, ``session_id``, ``user_id``,
``customer_id``, ``prompt_version`` and the versions) is the span's own (attribute, then
resource), else the nearest ancestor's in the same org; ``inherited`` records which groups
were taken from an ancestor, ``revision`` counts the rewrites of a row after ingest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

__all__ = ["INHERITED_GROUPS", "CanonicalSpan", "Operation", "SpanStatus", "ZERO_USD"]

ZERO_USD = Decimal(0)

INHERITED_GROUPS: tuple[tuple[str, ...], ...] = (
    ("agent_id", "agent_version"),
    ("workflow_id", "workflow_version"),
    ("run_id",),
    ("session_id",),
    ("user_id",),
    ("customer_id",),
    ("prompt_version",),
)
"""Attribution fields a span takes from its nearest ancestor when it has none of its own,
as groups: bit ``i`` of ``CanonicalSpan.inherited`` is set when group ``i`` was inherited.
A group is the span's own when its id (the first field) is set; a span without the id
takes the whole group, so an agent id is never paired with another agent's version."""


class SpanStatus(StrEnum):
    """Outcome of a span."""

    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"


class Operation(StrEnum):
    """Coarse kind of work a span did (DESIGN.md ``operation``)."""

    CHAT = "chat"
    COMPLETION = "completion"
    EMBEDDINGS = "embeddings"
    TOOL = "tool"
    AGENT = "agent"
    RETRIEVAL = "retrieval"
    GUARDRAIL = "guardrail"
    OTHER = "other"


@dataclass(slots=True)
class CanonicalSpan:
    """One normalized, priced span: one row of the span store.

    Times are timezone-aware UTC; ids are lowercase hex; money is ``Decimal`` in
    ``currency`` (USD unless the pricing file says otherwise).

    Mutable on purpose (docs/decisions/0002-mutable-canonical-span.md): building a frozen
    dataclass of ~75 fields costs ~10x more, and ingest builds one per span. A pipeline
    stage owns the spans handed to it and may set fields in place; code that keeps a span
    beyond the call that produced it must not rely on it staying unchanged unless it owns it.
    """

    # identity
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    start_time: datetime
    end_time: datetime
    duration_ms: float
    status: SpanStatus
    status_message: str = ""
    # tenancy
    org_id: str = ""
    workspace_id: str = ""
    project_id: str = ""
    user_id: str = ""
    customer_id: str = ""
    department: str = ""
    # agent
    service_name: str = ""
    agent_id: str = ""
    agent_version: str = ""
    runtime: str = ""
    workflow_id: str = ""
    workflow_version: str = ""
    flow_id: str = ""
    run_id: str = ""
    session_id: str = ""
    step: str = ""
    prompt_version: str = ""
    inherited: int = 0
    """Bit mask over ``INHERITED_GROUPS``: the groups whose values came from an ancestor."""
    # operation
    operation: Operation = Operation.OTHER
    operation_name: str = ""
    """The producer's own operation name (``gen_ai.operation.name`` vocabulary:
    ``chat``, ``text_completion``, ``execute_tool``, ``invoke_agent``...), ``""`` if none."""
    tool_name: str = ""
    tool_args_hash: str = ""
    """Hash of a tool-execution span's call arguments (16 hex chars of SHA-256 of the
    argument text as stored in ``attributes``; :mod:`mentatlab.pipeline.tool_args`), so
    repeated identical calls can be found without keeping the text twice; ``""`` when the
    span is no tool execution or records no arguments."""
    attempt: int = 1
    is_retry: bool = False
    is_fallback: bool = False
    is_streaming: bool | None = None
    # model
    provider: str = ""
    request_model: str = ""
    response_model: str = ""
    # tokens (see module docstring for their meaning)
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    total_tokens: int | None = None
    usage_is_rollup: bool = False
    unattributed_input_tokens: int = 0
    """On a roll-up span: input tokens (inclusive of cache) no descendant accounts for."""
    unattributed_output_tokens: int = 0
    """On a roll-up span: output tokens no descendant accounts for."""
    unattributed_cache_read_tokens: int = 0
    """On a roll-up span: cache-read tokens no descendant accounts for."""
    unattributed_cache_write_tokens: int = 0
    """On a roll-up span: cache-write tokens no descendant accounts for."""
    # resources
    cpu_core_seconds: float = 0.0
    memory_gb_seconds: float = 0.0
    gpu_seconds: float = 0.0
    network_bytes_in: int = 0
    network_bytes_out: int = 0
    storage_bytes: int = 0
    # cost
    token_cost: Decimal = ZERO_USD
    cpu_cost: Decimal = ZERO_USD
    memory_cost: Decimal = ZERO_USD
    gpu_cost: Decimal = ZERO_USD
    network_cost: Decimal = ZERO_USD
    storage_cost: Decimal = ZERO_USD
    unattributed_cost: Decimal = ZERO_USD
    """Price of the ``unattributed_*_tokens`` (a roll-up span's usage no descendant carries)."""
    discount: Decimal = ZERO_USD
    total_cost: Decimal = ZERO_USD
    currency: str = "USD"
    price_source: str = ""
    """Where the prices came from: ``genai-prices@<version>:<provider>/<model>``,
    ``pricing.toml:<provider>/<model>``, ``unpriced`` (a model we have no price for),
    or ``""`` (nothing to price)."""
    # outcome
    error_type: str = ""
    """The producer's failure type: ``error.type``, else the exception class name (module
    stripped), else ``error_category`` when only a status or HTTP code says what failed,
    else ``unknown``; ``""`` when the span did not fail."""
    error_category: str = ""
    """Failure taxonomy value (``rate_limit``, ``context_length_exceeded``, ...;
    docs/decisions/0009), ``unknown`` when no rule matched, ``""`` when the span did not
    fail."""
    error_class: str = ""
    """Class of ``error_category``: ``provider``, ``model``, ``tooling``, ``workflow``,
    ``governance``, ``unknown`` (no rule matched); ``""`` when the span did not fail."""
    error_message_hash: str = ""
    policy_id: str = ""
    """Deprecated (span-store migration 9): a producer's decision is recorded in
    ``policy_ids``/``policy_actions``; always ``""`` on new rows."""
    policy_result: str = ""
    """Deprecated with ``policy_id``; always ``""`` on new rows."""
    pii_findings: str = ""
    """JSON array of findings (empty string when none)."""
    # everything else (JSON text)
    attributes: str = "{}"
    events: str = "[]"
    resource: str = "{}"
    scope_name: str = ""
    # prompt prefix (pipeline/prompt_prefix.py): a hash and lengths, never the text
    prompt_prefix_hash: int = 0
    """64-bit BLAKE2b of the first ``prompt_prefix_chars`` characters of the call's input
    messages (system instructions first); 0 when the input is shorter or not recorded."""
    prompt_prefix_chars: int = 0
    """Characters hashed into ``prompt_prefix_hash`` (0 when there is no hash)."""
    prompt_chars: int = 0
    """Characters of the call's whole input text as recorded (0 when none recorded)."""
    revision: int = 0
    """0 for a row as received; each rewrite after ingest (attribution, reprice) adds 1."""
    ingested_at_ns: int = 0
    """When this version of the row was written; the ``ReplacingMergeTree`` version."""
    # token cost by kind (docs/decisions/0012-token-kind-costs.md): the first six add up
    # to token_cost exactly
    input_cost: Decimal = ZERO_USD
    """Price of the uncached input tokens (input minus cache reads and writes)."""
    cache_read_cost: Decimal = ZERO_USD
    """Price of the cache-read tokens (at the input rate when the model has no cache price)."""
    cache_write_cost: Decimal = ZERO_USD
    """Price of the cache-write tokens (5-minute and 1-hour writes together)."""
    output_cost: Decimal = ZERO_USD
    """Price of the output tokens other than reasoning (citations included)."""
    reasoning_cost: Decimal = ZERO_USD
    """Price of the reasoning tokens (at the output rate when they have no price of their own)."""
    request_cost: Decimal = ZERO_USD
    """Per-request fees, and what genai-prices priced outside the token kinds above."""
    cache_savings: Decimal = ZERO_USD
    """Cache-read tokens at the uncached input price minus ``cache_read_cost``."""
    # guardrail policy decisions (docs/decisions/0018-guardrail-policies.md): parallel
    # arrays, one entry per matched policy; "blocked" = "block" in policy_actions
    policy_ids: tuple[str, ...] = ()
    """Ids of the policies that matched (``builtin.*`` or a stored policy's id; a
    producer's own decision keeps its own id)."""
    policy_versions: tuple[int, ...] = ()
    """The matched version of each policy (0 for a producer's own decision)."""
    policy_actions: tuple[str, ...] = ()
    """What each match did: ``block``, ``alert``, ``redact`` or ``log``."""

    @property
    def model(self) -> str:
        """The model to price: the response model when present, else the request model."""
        return self.response_model or self.request_model
