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
from urllib.parse import urlsplit

__all__ = ["SDKConfig", "resolve_config"]

logger = logging.getLogger("mentatlab.sdk")


def _env(name: str, otel: str = "", low: float | None = None,
         high: float | None = None) -> dict[str, Any]:
    """Field metadata: the environment variables, and the range of a number (inclusive)."""
    return {"env": name, "otel": otel, "low": low, "high": high}


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
        default=50.0, metadata=_env("MENTATLAB_MEMORY_SAMPLE_PERIOD_MS", low=1, high=60_000))
    """Period of the shared background sampler of resident memory, network and storage
    counters, in ms. Bounds the metering error; see ``docs/sdk.md``."""
    export_timeout_s: float = field(
        default=5.0, metadata=_env("MENTATLAB_EXPORT_TIMEOUT_S", low=0.001, high=3600))
    """Time limit of one export request to the server, in s."""
    shutdown_timeout_s: float = field(
        default=5.0, metadata=_env("MENTATLAB_SHUTDOWN_TIMEOUT_S", low=0, high=3600))
    """Longest :func:`mentatlab.shutdown` (and the exit hook) waits to flush spans, in s."""
    max_queue_spans: int = field(
        default=8192, metadata=_env("MENTATLAB_MAX_QUEUE_SPANS", "OTEL_BSP_MAX_QUEUE_SIZE",
                                    low=1, high=1_000_000))
    """Spans waiting for export; beyond it new spans are dropped and counted."""
    schedule_delay_ms: int = field(
        default=1000, metadata=_env("MENTATLAB_SCHEDULE_DELAY_MS", "OTEL_BSP_SCHEDULE_DELAY",
                                    low=1, high=3_600_000))
    """Longest time a finished span waits before it is exported, in ms."""
    capture_env_context: bool = field(default=True, metadata=_env("MENTATLAB_CAPTURE_ENV_CONTEXT"))
    """Continue the trace named by the ``TRACEPARENT``/``BAGGAGE`` environment variables
    (set by :func:`mentatlab.sdk.propagation.inject_env` in a parent process)."""


def _coerce(raw: str, default: Any) -> Any:
    """An environment variable's text as the type of ``default``.

    Raises:
        ValueError: the text does not read as that type.
    """
    text = raw.strip()
    if isinstance(default, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true or false, got {raw!r}")
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    return text


def _checked(f: dataclasses.Field[Any], value: Any) -> Any:
    """``value`` for option ``f`` if it has the option's type and lies in its range.

    Raises:
        ValueError: why the value does not fit (a wrong type, a number out of range, an
            endpoint that is not an http(s) URL, text that cannot be sent).
    """
    default = f.default
    low, high = f.metadata["low"], f.metadata["high"]
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value
    if isinstance(default, int | float):
        numeric = int if isinstance(default, int) else (int, float)
        if isinstance(value, bool) or not isinstance(value, numeric):
            raise ValueError(f"expected {type(default).__name__}, got {value!r}")
        if not low <= value <= high:  # NaN and infinities fail too
            raise ValueError(f"expected {low:g} to {high:g}, got {value!r}")
        return type(default)(value)
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {value!r}")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError("expected text that encodes as UTF-8") from None
    if f.name == "api_key" and not all(" " < c < "\x7f" for c in value):
        raise ValueError("expected visible ASCII characters (it is sent in a header)")
    if f.name == "endpoint":
        try:
            parts = urlsplit(value)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname) and (
                parts.port is None or parts.port > 0)
        except ValueError:
            valid = False
        if not valid or not value.isprintable():
            raise ValueError("expected an http(s) URL with a host")
    return value


def _shown(name: str, value: Any) -> str:
    """A value as quoted in a warning; never the key, nor the endpoint (it may hold a token)."""
    return "<hidden>" if name in ("api_key", "endpoint") else repr(value)


def resolve_config(**arguments: Any) -> SDKConfig:
    """Resolve the SDK configuration: arguments > ``MENTATLAB_*`` > ``OTEL_*`` > defaults.

    Arguments that are ``None`` are treated as not given. A value of the wrong type or out
    of its option's range, from an argument or an environment variable, logs a warning and
    is skipped (the next source, finally the default, applies): ``init()`` never raises
    over a value.

    Raises:
        TypeError: an argument name that is not an :class:`SDKConfig` field.
    """
    values: dict[str, Any] = {}
    unknown = set(arguments) - {f.name for f in dataclasses.fields(SDKConfig)}
    if unknown:
        raise TypeError(f"Unknown MentatLab SDK options: {sorted(unknown)}")
    for f in dataclasses.fields(SDKConfig):
        candidates: list[tuple[str, Any, bool]] = []
        if arguments.get(f.name) is not None:
            candidates.append((f"{f.name}=", arguments[f.name], False))
        candidates += [(f"{var}=", os.environ[var], True)
                       for var in (f.metadata["env"], f.metadata["otel"])
                       if var and var in os.environ]
        for source, raw, from_env in candidates:
            try:
                values[f.name] = _checked(f, _coerce(raw, f.default) if from_env else raw)
            except ValueError as exc:
                logger.warning("Ignoring %s%s: %s; using the next setting or the default %s",
                               source, _shown(f.name, raw), exc, _shown(f.name, f.default))
                continue
            break
    return SDKConfig(**values)
