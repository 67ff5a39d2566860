"""Context propagation: W3C ``traceparent``/``tracestate`` and ``baggage``.

MentatLab uses the OpenTelemetry global propagator (W3C Trace Context + W3C Baggage by
default; ``OTEL_PROPAGATORS`` changes it) for every carrier:

* HTTP headers — :func:`inject_headers` / :func:`extract_headers` (a ``dict``);
* message-queue headers — :func:`inject_message_headers` /
  :func:`extract_message_headers` (a list of ``(key, bytes)`` pairs, as Kafka clients use);
* a child process's environment — :func:`inject_env` sets ``TRACEPARENT``,
  ``TRACESTATE`` and ``BAGGAGE`` (the OTel spec's environment-variable carrier); the
  child's :func:`mentatlab.init` picks them up and continues the trace;
* threads — :func:`wrap_context` binds a callable to the caller's context (OTel context
  is a ``contextvars`` value; ``threading.Thread`` and executors do not copy it).
  asyncio tasks copy it by themselves.

Tenancy and flow identity travel as baggage entries named ``mentat.<canonical field>``
(``mentat.org_id``, ``mentat.project_id``, ``mentat.flow_id``, ``mentat.run_id``, ...);
:func:`baggage` sets them and every span started under them carries them as attributes.
"""

from __future__ import annotations

import contextvars
import functools
import os
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.context import Context

__all__ = [
    "BAGGAGE_PREFIX",
    "baggage",
    "extract_env",
    "extract_headers",
    "extract_message_headers",
    "inject_env",
    "inject_headers",
    "inject_message_headers",
    "wrap_context",
]

P = ParamSpec("P")
R = TypeVar("R")

BAGGAGE_PREFIX = "mentat."
_ALIASES = {"org": "org_id", "project": "project_id", "workspace": "workspace_id",
            "user": "user_id", "customer": "customer_id", "agent": "agent_id",
            "workflow": "workflow_id", "flow": "flow_id", "run": "run_id",
            "session": "session_id"}
_ENV_KEYS = {"traceparent": "TRACEPARENT", "tracestate": "TRACESTATE", "baggage": "BAGGAGE"}


def inject_headers(headers: MutableMapping[str, str] | None = None,
                   context: Context | None = None) -> MutableMapping[str, str]:
    """Write ``traceparent``, ``tracestate`` and ``baggage`` for the current context.

    Args:
        headers: HTTP headers to add to; a new dict when None.
        context: context to propagate; the current one when None.

    Returns:
        The headers (the same object when one was given).
    """
    carrier: MutableMapping[str, str] = {} if headers is None else headers
    propagate.inject(carrier, context=context)
    return carrier


def extract_headers(headers: Mapping[str, str], context: Context | None = None) -> Context:
    """Return a context continuing the trace and baggage named by HTTP ``headers``.

    Attach it with ``opentelemetry.context.attach`` or pass it as ``context=`` to
    :func:`mentatlab.span`. Header names are matched case-insensitively.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    return propagate.extract(lowered, context=context)


def inject_message_headers(headers: list[tuple[str, bytes]] | None = None,
                           context: Context | None = None) -> list[tuple[str, bytes]]:
    """Append propagation headers to message-queue headers (``(key, UTF-8 bytes)`` pairs)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    result = [] if headers is None else headers
    result.extend((key, value.encode()) for key, value in carrier.items())
    return result


def extract_message_headers(headers: list[tuple[str, bytes]] | None,
                            context: Context | None = None) -> Context:
    """Return a context continuing the trace named by message-queue headers."""
    carrier = {key.lower(): value.decode("utf-8", "replace") for key, value in headers or []}
    return propagate.extract(carrier, context=context)


def inject_env(env: MutableMapping[str, str] | None = None,
               context: Context | None = None) -> MutableMapping[str, str]:
    """Set ``TRACEPARENT``, ``TRACESTATE`` and ``BAGGAGE`` for a child process.

    Args:
        env: environment to add to; a copy of ``os.environ`` when None.
        context: context to propagate; the current one when None.

    Returns:
        The environment, ready for ``subprocess.run(..., env=...)``.
    """
    result: MutableMapping[str, str] = dict(os.environ) if env is None else env
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    for key, env_key in _ENV_KEYS.items():
        result.pop(env_key, None)
        if key in carrier:
            result[env_key] = carrier[key]
    return result


def extract_env(env: Mapping[str, str] | None = None) -> Context | None:
    """Return the context named by ``TRACEPARENT``/``BAGGAGE`` in the environment.

    Args:
        env: the environment to read; ``os.environ`` when None.

    Returns:
        The context, or None when neither variable is set.
    """
    source = os.environ if env is None else env
    carrier = {key: source[env_key] for key, env_key in _ENV_KEYS.items() if env_key in source}
    if not carrier:
        return None
    return propagate.extract(carrier)


@contextmanager
def baggage(**fields: str | int | None) -> Iterator[Context]:
    """Set MentatLab baggage (tenancy, flow identity) for the block and its descendants.

    Keyword names are canonical fields (``org_id``, ``project_id``, ``flow_id``,
    ``run_id``, ``agent_id``, ``workflow_id``, ``session_id``, ``user_id``, ...) or the
    short aliases ``org``, ``project``, ``flow``, ``run``, ``agent``, ``workflow``,
    ``session``, ``user``, ``customer``, ``workspace``. ``None`` values are skipped. Every
    span started inside carries them as ``mentat.<field>`` attributes, and
    :func:`inject_headers`/:func:`inject_env` carry them to other services and processes.

    Yields:
        The attached context.
    """
    ctx = otel_context.get_current()
    for name, value in fields.items():
        if value is not None:
            ctx = otel_baggage.set_baggage(
                BAGGAGE_PREFIX + _ALIASES.get(name, name), str(value), context=ctx)
    token = otel_context.attach(ctx)
    try:
        yield ctx
    finally:
        otel_context.detach(token)


def wrap_context(func: Callable[P, R]) -> Callable[P, R]:
    """Bind ``func`` to the caller's context, for ``Thread(target=...)`` or executors.

    ``executor.submit(wrap_context(work), item)`` runs ``work`` inside the caller's
    current span and baggage, so spans it starts join the caller's trace.
    """
    captured = contextvars.copy_context()

    @functools.wraps(func)
    def run_in_context(*args: P.args, **kwargs: P.kwargs) -> R:
        return captured.copy().run(func, *args, **kwargs)

    return run_in_context
