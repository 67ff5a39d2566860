"""MentatLab: self-hosted observability and cost metering for AI agents.

This module is the public SDK surface only. ``import mentatlab`` stays cheap: the SDK
(and the OpenTelemetry SDK under it) loads on first use of one of the names below, and
nothing server-side (chDB, FastAPI) is ever imported from here.

    import mentatlab

    mentatlab.init(service_name="support-bot", org="acme", project="helpdesk")

    @mentatlab.traced
    def answer(question: str) -> str: ...
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mentatlab.sdk import (
        baggage,
        checkpoint,
        configure_guard,
        export_stats,
        extract_headers,
        guard,
        init,
        inject_env,
        inject_headers,
        instrument,
        record_tokens,
        set_agent,
        set_attributes,
        set_model,
        set_prompt_version,
        set_tool,
        set_workflow,
        shutdown,
        span,
        traced,
        wrap_context,
    )

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "baggage",
    "checkpoint",
    "configure_guard",
    "export_stats",
    "extract_headers",
    "guard",
    "init",
    "inject_env",
    "inject_headers",
    "instrument",
    "record_tokens",
    "set_agent",
    "set_attributes",
    "set_model",
    "set_prompt_version",
    "set_tool",
    "set_workflow",
    "shutdown",
    "span",
    "traced",
    "wrap_context",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        value = getattr(importlib.import_module("mentatlab.sdk"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mentatlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
