"""Operation vocabulary: ``gen_ai.operation.name`` values and their coarse class.

``OPERATION_CLASS`` maps the producer's operation name (OTel GenAI vocabulary, which the
conventions translate into) to :class:`~mentatlab.model.span.Operation`.
``ROLLUP_OPERATIONS`` are operations whose usage sums their children's (agent runs).
"""

from __future__ import annotations

from mentatlab.model.span import Operation

__all__ = ["OPERATION_CLASS", "ROLLUP_OPERATIONS"]

OPERATION_CLASS: dict[str, Operation] = {
    "chat": Operation.CHAT,
    "generate_content": Operation.CHAT,
    "text_completion": Operation.COMPLETION,
    "completion": Operation.COMPLETION,
    "embeddings": Operation.EMBEDDINGS,
    "execute_tool": Operation.TOOL,
    "invoke_agent": Operation.AGENT,
    "create_agent": Operation.AGENT,
    "invoke_workflow": Operation.AGENT,
    "retrieval": Operation.RETRIEVAL,
    "guardrail": Operation.GUARDRAIL,
}
"""Operation name → coarse operation (anything else is ``other``)."""

ROLLUP_OPERATIONS: frozenset[str] = frozenset({"invoke_agent", "invoke_workflow"})
"""Operations whose token usage, on a non-CLIENT span, is the sum of their child model
calls (Pydantic AI's agent run, ``invoke_agent`` INTERNAL spans, Vercel's outer
``ai.generateText``); their tokens are flagged ``usage_is_rollup``. A CLIENT
``invoke_agent`` span (a remote agent) has no child model spans and is not a roll-up."""
