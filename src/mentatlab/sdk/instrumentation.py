"""``mentatlab.instrument()``: turn on the published OpenTelemetry GenAI instrumentations.

MentatLab does not re-implement client instrumentation. For each library in
:data:`INSTRUMENTATIONS` it enables the first installed instrumentor of its ordered
candidate list (the OTel GenAI ``opentelemetry-instrumentation-*`` package first, then
OpenInference, then OpenLLMetry), so a call yields one LLM span, not two. The spans go
through the provider :func:`mentatlab.init` set up, whose processor adds MentatLab's
tenancy (``mentat.org_id``, ``mentat.project_id``), every ``mentat.*`` baggage entry
(agent, workflow, flow, run) and the attribution of the span the call is made under
(``set_agent`` on the calling function's span reaches the LLM span:
:mod:`mentatlab.sdk.attribution`).

Each library is a small record with an identifier and a once-only setup (STYLE.md 11.5):
missing libraries are skipped quietly when instrumenting "everything installed", and
raise :class:`~mentatlab.errors.PluginDidNotLoad` when asked for by name.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
from dataclasses import dataclass

from mentatlab.errors import PluginDidNotLoad

__all__ = ["INSTRUMENTATIONS", "Instrumentation", "instrument"]

logger = logging.getLogger("mentatlab.sdk")


@dataclass(frozen=True, slots=True)
class Instrumentation:
    """One instrumentable client library."""

    identifier: str
    """Name used in ``instrument("openai")``."""
    library: str
    """Import name of the client library."""
    candidates: tuple[tuple[str, str], ...]
    """(module, instrumentor class) pairs, best first."""
    env_defaults: tuple[tuple[str, str], ...] = ()
    """Environment defaults set (if unset) before instrumenting, e.g. to turn off a client's
    own tracing that would duplicate the instrumentation's spans."""


INSTRUMENTATIONS: tuple[Instrumentation, ...] = (
    Instrumentation("openai", "openai", (
        ("opentelemetry.instrumentation.openai_v2", "OpenAIInstrumentor"),
        ("openinference.instrumentation.openai", "OpenAIInstrumentor"),
        ("opentelemetry.instrumentation.openai", "OpenAIInstrumentor"))),
    Instrumentation("anthropic", "anthropic", (
        ("opentelemetry.instrumentation.anthropic", "AnthropicInstrumentor"),
        ("openinference.instrumentation.anthropic", "AnthropicInstrumentor")),
        # anthropic 2.x traces every call itself, in traces unrelated to the caller's:
        # with an instrumentation on top each call would yield two LLM spans.
        env_defaults=(("ANTHROPIC_OPEN_TELEMETRY", "false"),)),
    Instrumentation("google_genai", "google.genai", (
        ("opentelemetry.instrumentation.google_genai", "GoogleGenAiSdkInstrumentor"),
        ("openinference.instrumentation.google_genai", "GoogleGenAIInstrumentor"))),
    Instrumentation("bedrock", "botocore", (
        ("opentelemetry.instrumentation.botocore", "BotocoreInstrumentor"),
        ("openinference.instrumentation.bedrock", "BedrockInstrumentor"))),
    Instrumentation("mistralai", "mistralai", (
        ("openinference.instrumentation.mistralai", "MistralAIInstrumentor"),)),
    Instrumentation("langchain", "langchain_core", (
        ("openinference.instrumentation.langchain", "LangChainInstrumentor"),)),
)

_enabled: dict[str, str] = {}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _enable(item: Instrumentation) -> str:
    if not _installed(item.library):
        raise PluginDidNotLoad(f"{item.identifier}: the {item.library!r} library is not installed")
    for module_name, class_name in item.candidates:
        if not _installed(module_name):
            continue
        for name, value in item.env_defaults:
            os.environ.setdefault(name, value)
        instrumentor = getattr(importlib.import_module(module_name), class_name)()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()
        return f"{module_name}.{class_name}"
    raise PluginDidNotLoad(
        f"{item.identifier}: no instrumentation installed; "
        f"pip install {item.candidates[0][0].replace('.', '-').replace('_', '-')}")


def instrument(*names: str) -> dict[str, str]:
    """Enable the installed GenAI instrumentations (all known ones, or those named).

    Call after :func:`mentatlab.init`. Enabling twice is a no-op.

    Args:
        names: identifiers from :data:`INSTRUMENTATIONS` (``openai``, ``anthropic``,
            ``google_genai``, ``bedrock``, ``mistralai``, ``langchain``); none means every
            library that is installed together with an instrumentation.

    Returns:
        Identifier → instrumentor enabled (``module.Class``), for all enabled so far.

    Raises:
        PluginDidNotLoad: a library named explicitly is unknown, not installed, or has
            no instrumentation installed, or its instrumentor failed to start.
    """
    by_id = {item.identifier: item for item in INSTRUMENTATIONS}
    unknown = [name for name in names if name not in by_id]
    if unknown:
        raise PluginDidNotLoad(f"Expected instrumentations among {sorted(by_id)}, got {unknown}")
    for item in [by_id[name] for name in names] if names else INSTRUMENTATIONS:
        if item.identifier in _enabled:
            continue
        if names:
            try:
                _enabled[item.identifier] = _enable(item)
            except PluginDidNotLoad:
                raise
            except Exception as exc:
                raise PluginDidNotLoad(f"{item.identifier}: instrumentor failed: {exc}") from exc
            continue
        try:
            _enabled[item.identifier] = _enable(item)
        except PluginDidNotLoad as exc:
            logger.debug("Not instrumenting %s: %s", item.identifier, exc)
        except Exception:  # a third-party instrumentor failing must not stop the program
            logger.warning("Instrumentation %s failed to start", item.identifier, exc_info=True)
    return dict(_enabled)
