"""SDK options: every option declared once, with its env var, type, default and unit.

Precedence: explicit argument to :func:`mentatlab.init`, then the ``MENTATLAB_*``
environment variable, then the matching standard ``OTEL_*`` variable where the meaning is
the same, then the default. A bad value never stops the host program: the SDK logs a
warning and falls back to the default (STYLE.md section 7). ``docs/sdk.md`` lists every
option.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SDKConfig", "resolve_config"]

logger = logging.getLogger("mentatlab.sdk")


def _env(name: str, otel: str = "") -> dict[str, str]:
    return {"env": name, "otel": otel}


@dataclass(frozen=True, slots=True)
class SDKConfig:
    """Resolved SDK configuration. Field metadata names the environment variables."""

    endpoint: str = field(default="http://127.0.0.1:4318",
                          metadata=_env("MENTATLAB_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"))
    """Base URL of the MentatLab server; spans go to ``<endpoint>/v1/traces`` (OTLP/HTTP
    protobuf). ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, when set, is used verbatim instead."""
    api_key: str = field(default="", metadata=_env("MENTATLAB_API_KEY"))
    """API key sent as ``Authorization: Bearer <key>``; empty sends none."""
    service_name: str = field(default="",
                              metadata=_env("MENTATLAB_SERVICE_NAME", "OTEL_SERVICE_NAME"))
    """``service.name`` resource attribute; empty lets OTel pick (``OTEL_SERVICE_NAME``,
    ``OTEL_RESOURCE_ATTRIBUTES``, else ``unknown_service``)."""
    org: str = field(default="", metadata=_env("MENTATLAB_ORG"))
    """Organisation id put on every span as ``mentat.org_id``."""
    project: str = field(default="", metadata=_env("MENTATLAB_PROJECT"))
    """Project id put on every span as ``mentat.project_id``."""
    environment: str = field(default="", metadata=_env("MENTATLAB_ENVIRONMENT"))
    """``deployment.environment.name`` resource attribute (e.g. ``prod``); empty sends none."""
    resource_metering: bool = field(default=True, metadata=_env("MENTATLAB_RESOURCE_METERING"))
    """Attach ``mentat.resource.*`` meters (CPU, memory, GPU, network, storage) to SDK spans."""
    memory_sample_period_ms: float = field(
        default=50.0, metadata=_env("MENTATLAB_MEMORY_SAMPLE_PERIOD_MS"))
    """Period of the shared background sampler of resident memory, network and storage
    counters, in ms. Bounds the metering error; see ``docs/sdk.md``."""
    export_timeout_s: float = field(default=5.0, metadata=_env("MENTATLAB_EXPORT_TIMEOUT_S"))
    """Time limit of one export request to the server, in s."""
    shutdown_timeout_s: float = field(default=5.0, metadata=_env("MENTATLAB_SHUTDOWN_TIMEOUT_S"))
    """Longest :func:`mentatlab.shutdown` (and the exit hook) waits to flush spans, in s."""
    max_queue_spans: int = field(
        default=8192, metadata=_env("MENTATLAB_MAX_QUEUE_SPANS", "OTEL_BSP_MAX_QUEUE_SIZE"))
    """Spans waiting for export; beyond it new spans are dropped and counted."""
    schedule_delay_ms: int = field(
        default=1000, metadata=_env("MENTATLAB_SCHEDULE_DELAY_MS", "OTEL_BSP_SCHEDULE_DELAY"))
    """Longest time a finished span waits before it is exported, in ms."""
    capture_env_context: bool = field(default=True, metadata=_env("MENTATLAB_CAPTURE_ENV_CONTEXT"))
    """Continue the trace named by the ``TRACEPARENT``/``BAGGAGE`` environment variables
    (set by :func:`mentatlab.sdk.propagation.inject_env` in a parent process)."""


def _coerce(raw: str, default: Any) -> Any:
    text = raw.strip()
    if isinstance(default, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(text)
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    return text


def resolve_config(**arguments: Any) -> SDKConfig:
    """Resolve the SDK configuration: arguments > ``MENTATLAB_*`` > ``OTEL_*`` > defaults.

    Arguments that are ``None`` are treated as not given. A bad environment value logs a
    warning and keeps the default.

    Raises:
        TypeError: an argument name that is not an :class:`SDKConfig` field.
    """
    values: dict[str, Any] = {}
    for f in dataclasses.fields(SDKConfig):
        if arguments.get(f.name) is not None:
            values[f.name] = arguments.pop(f.name)
            continue
        arguments.pop(f.name, None)
        for var in (f.metadata["env"], f.metadata["otel"]):
            if var and var in os.environ:
                try:
                    values[f.name] = _coerce(os.environ[var], f.default)
                except ValueError:
                    logger.warning("Ignoring %s=%r: expected %s; using the default %r",
                                   var, os.environ[var], type(f.default).__name__, f.default)
                    continue
                break
    if arguments:
        raise TypeError(f"Unknown MentatLab SDK options: {sorted(arguments)}")
    return SDKConfig(**values)
