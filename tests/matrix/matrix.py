"""The real-client matrix as data: groups (environments), producers, their modes, known gaps.

A *group* is one environment: a Python venv built from ``requirements/<group>.txt`` (or the
node project in ``js/``) by ``scripts/matrix-envs.sh`` under ``.matrix/``. A *producer* is
one instrumentation run by ``drivers/drive.py`` (or ``js/drive.mjs``) inside its group; a
*mode* is one case it runs (see ``drivers/clients.py`` for what each mode calls).

:data:`GAPS` lists what a producer does not report although the fake answered it, with
the producer's own code as evidence; the tests assert the degraded value exactly, so a
producer release that closes a gap fails the matrix until its row is removed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MATRIX_DIR = Path(os.environ.get("MENTATLAB_MATRIX_DIR", REPO / ".matrix"))
"""Where ``scripts/matrix-envs.sh`` builds the group venvs (git-ignored)."""
DRIVERS = Path(__file__).resolve().parent / "drivers"
JS_DIR = Path(__file__).resolve().parent / "js"

OPENAI_CHAT = ("chat", "chat-stream", "chat-cache-read", "chat-reasoning",
               "chat-stream-reasoning-cache-read", "chat-tool-call", "chat-retry", "chat-error")
OPENAI_RESPONSES = ("responses", "responses-stream", "responses-reasoning-cache-read",
                    "responses-tool-call")
ANTHROPIC = ("messages", "messages-stream", "messages-cache-write", "messages-cache-read",
             "messages-stream-cache", "messages-tool-call", "messages-retry", "messages-error")
BEDROCK = ("converse", "converse-stream", "converse-cache", "converse-stream-cache",
           "converse-tool-call", "converse-retry", "converse-error", "invoke-model",
           "invoke-model-cache")
LANGCHAIN = ("lc-chat", "lc-chat-stream", "lc-chat-cache-read", "lc-chat-reasoning",
             "lc-chat-tool-call", "lc-responses-reasoning-cache-read", "lc-messages",
             "lc-messages-stream-cache", "lc-messages-cache-write", "lc-messages-tool-call")
OPENAI_AGENTS = ("agents-responses-tool-call", "agents-responses-stream-tool-call",
                 "agents-responses-reasoning-cache-read-tool-call", "agents-chat-tool-call")
PYDANTIC_AI = ("pai-chat-tool-call", "pai-chat-reasoning-cache-read-tool-call",
               "pai-responses-tool-call", "pai-messages-tool-call",
               "pai-messages-cache-tool-call", "pai-messages-stream-tool-call")
VERCEL_AI = ("ai-chat", "ai-chat-stream", "ai-chat-cache-read", "ai-chat-reasoning",
             "ai-responses-reasoning-cache-read", "ai-responses-stream", "ai-chat-tool-call",
             "ai-messages", "ai-messages-stream-cache", "ai-messages-cache-write",
             "ai-messages-tool-call", "ai-converse", "ai-converse-stream-cache",
             "ai-converse-cache")
TRACELOOP_JS = ("chat", "chat-stream", "chat-cache-read", "chat-reasoning", "chat-tool-call",
                "messages", "messages-stream-cache", "messages-cache-write")


@dataclass(frozen=True)
class Producer:
    """One instrumentation run as one driver process."""

    name: str
    group: str
    """Environment: a ``requirements/<group>.txt`` venv, or ``js`` (node)."""
    modes: tuple[str, ...]
    framework_agent: bool = False
    """The framework's own agent span names the agent (no driver wrapper span)."""

    def command(self, endpoints: list[str]) -> list[str]:
        """The driver command line (``endpoints``: ``--openai URL ...`` arguments)."""
        if self.group == "js":
            return ["node", str(JS_DIR / "drive.mjs"), self.name, *endpoints]
        python = MATRIX_DIR / "venvs" / self.group / "bin" / "python"
        return [str(python), str(DRIVERS / "drive.py"), self.name, *endpoints]


PRODUCERS: tuple[Producer, ...] = (
    Producer("otel-openai-v2", "openinference", OPENAI_CHAT + OPENAI_RESPONSES),
    Producer("openinference", "openinference", OPENAI_CHAT + OPENAI_RESPONSES + ANTHROPIC),
    Producer("oi-langchain", "openinference", LANGCHAIN),
    Producer("oi-openai-agents", "openinference", OPENAI_AGENTS, framework_agent=True),
    Producer("openllmetry", "openllmetry", OPENAI_CHAT + OPENAI_RESPONSES + ANTHROPIC + BEDROCK),
    Producer("openlit", "openlit", OPENAI_CHAT + OPENAI_RESPONSES + ANTHROPIC + BEDROCK),
    Producer("logfire", "logfire", OPENAI_CHAT + OPENAI_RESPONSES + ANTHROPIC),
    Producer("pydantic-ai", "logfire", PYDANTIC_AI, framework_agent=True),
    Producer("vercel-ai", "js", VERCEL_AI),
    Producer("vercel-ai-v6", "js", VERCEL_AI),
    Producer("traceloop-js", "js", TRACELOOP_JS),
)
"""Every producer of the matrix, with the modes its driver runs."""

PRODUCER_BY_NAME = {p.name: p for p in PRODUCERS}


@dataclass(frozen=True)
class Gap:
    """What a producer's spans lack for one mode, and the evidence.

    ``lost`` names token details (``cache_read``, ``cache_write``, ``reasoning``) the span
    does not carry although the fake reported them; ``over`` adds tokens a producer counts
    twice (``{"output": 1}``); ``estimated`` means the span's counts are the producer's own
    tokenizer estimate, not the provider's usage; ``missing`` means the producer emits no
    LLM span at all for the mode.
    """

    reason: str
    lost: frozenset[str] = field(default_factory=frozenset)
    over: tuple[tuple[str, int], ...] = ()
    estimated: bool = False
    missing: bool = False


def _lost(*fields: str, reason: str) -> Gap:
    return Gap(reason, frozenset(fields))


_V2_NO_DETAILS = ("opentelemetry-instrumentation-openai-v2 2.4b0 sets only "
                  "gen_ai.usage.input_tokens/output_tokens (no cache or reasoning details)")
_V2_NO_RESPONSES = ("opentelemetry-instrumentation-openai-v2 2.4b0 wraps only "
                    "chat.completions and embeddings, not the Responses API")
_OPENLIT_NO_REASONING = ("OpenLIT's chat-completions path records no reasoning tokens "
                         "(openlit/instrumentation/openai/utils.py)")

GAPS: dict[tuple[str, str], Gap] = {
    ("otel-openai-v2", "chat-cache-read"): _lost("cache_read", reason=_V2_NO_DETAILS),
    ("otel-openai-v2", "chat-reasoning"): _lost("reasoning", reason=_V2_NO_DETAILS),
    ("otel-openai-v2", "chat-stream-reasoning-cache-read"): _lost(
        "cache_read", "reasoning", reason=_V2_NO_DETAILS),
    **{("otel-openai-v2", mode): Gap(_V2_NO_RESPONSES, missing=True)
       for mode in OPENAI_RESPONSES},
    ("openllmetry", "chat-stream-reasoning-cache-read"): _lost(
        "reasoning", reason="OpenLLMetry's streaming chat wrapper copies prompt/completion/"
        "cached counts but not completion_tokens_details.reasoning_tokens"),
    ("openlit", "chat-reasoning"): _lost("reasoning", reason=_OPENLIT_NO_REASONING),
    ("openlit", "chat-stream-reasoning-cache-read"): _lost(
        "reasoning", reason=_OPENLIT_NO_REASONING),
    **{("openllmetry", mode): Gap(
        "opentelemetry-instrumentation-anthropic 0.62 streaming.py adds message_delta's "
        "output_tokens to message_start's, but message_delta's usage is cumulative "
        "(Anthropic MessageDeltaUsage): message_start's output_tokens (1) is counted twice",
        over=(("output", 1),)) for mode in ("messages-stream", "messages-stream-cache")},
    **{("vercel-ai", mode): _lost(
        "reasoning", reason="@ai-sdk/otel 1.0 sets gen_ai.usage.input/output/cache_* on the "
        "model-call span but no reasoning count (only the ai.* roll-up attributes have it)")
       for mode in ("ai-chat-reasoning", "ai-responses-reasoning-cache-read")},
    ("traceloop-js", "chat-stream"): Gap(
        "@traceloop/instrumentation-openai 0.27 counts streamed chat tokens itself with "
        "js-tiktoken (enrichTokens, on by default) and ignores the stream's usage chunk",
        estimated=True),
    ("traceloop-js", "chat-cache-read"): _lost(
        "cache_read", reason="@traceloop/instrumentation-openai 0.27 sets only "
        "gen_ai.usage.input_tokens/output_tokens/total_tokens"),
    ("traceloop-js", "chat-reasoning"): _lost(
        "reasoning", reason="@traceloop/instrumentation-openai 0.27 sets only "
        "gen_ai.usage.input_tokens/output_tokens/total_tokens"),
    ("openlit", "converse-stream"): Gap("OpenLIT wraps only Converse, not ConverseStream",
                                        missing=True),
    ("openlit", "converse-stream-cache"): Gap(
        "OpenLIT wraps only Converse, not ConverseStream", missing=True),
    ("openlit", "invoke-model"): Gap("OpenLIT wraps only Converse, not InvokeModel",
                                     missing=True),
    ("openlit", "invoke-model-cache"): Gap("OpenLIT wraps only Converse, not InvokeModel",
                                           missing=True),
}
"""(producer, mode) → what the producer loses; every other pair must be exact."""
