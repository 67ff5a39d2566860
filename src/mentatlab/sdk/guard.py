"""``mentatlab.guard(...)``: ask the server's guardrail policies before an action.

MentatLab sees a span after the action ran, so a ``block`` policy needs this second half:
the agent describes what it is about to do (a tool call, a model call) and the server
evaluates it with the enforced policies and the break-glass overrides in force
(``POST /api/v1/policies/check``). A denial raises :class:`~mentatlab.errors.PolicyBlocked`.

* **Cache**: answers (allow and deny) are kept ``cache_s`` seconds (default 5) per
  identical request, so a loop calling the same tool asks once; 0 turns it off.
* **Server unreachable** (connection error, timeout, 5xx, a 401/403 for the key):
  ``fail_mode="open"`` (the default) allows the action and logs a warning — MentatLab's
  outage must not stop the agent (STYLE.md: the SDK never breaks the program);
  ``fail_mode="closed"`` raises ``PolicyBlocked`` with ``unavailable=True``, for actions
  that must never run unchecked. A bad request (422) always raises ``ValueError``.

Endpoint and key: those of :func:`mentatlab.init`, else ``MENTATLAB_ENDPOINT`` and
``MENTATLAB_API_KEY``. Settings: :func:`configure_guard` or ``MENTATLAB_GUARD_FAIL_MODE``
(``open``/``closed``), ``MENTATLAB_GUARD_CACHE_S``, ``MENTATLAB_GUARD_TIMEOUT_S``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from mentatlab.errors import PolicyBlocked

__all__ = ["GuardConfig", "GuardResult", "configure_guard", "guard"]

logger = logging.getLogger("mentatlab.sdk")

FailMode = Literal["open", "closed"]
_MAX_CACHED = 1024


@dataclass(frozen=True, slots=True)
class GuardConfig:
    """How :func:`guard` reaches the server and what it does when it cannot."""

    endpoint: str = ""
    """Base URL; empty: the SDK's (``mentatlab.init``), else ``MENTATLAB_ENDPOINT``, else
    ``http://127.0.0.1:4318``."""
    api_key: str = ""
    """Key sent as ``Authorization: Bearer``; empty: the SDK's, else ``MENTATLAB_API_KEY``."""
    fail_mode: FailMode = "open"
    """``open``: allow (and warn) when the check cannot be made; ``closed``: refuse."""
    cache_s: float = 5.0
    """Seconds an answer is reused for an identical request (0: never)."""
    timeout_s: float = 2.0
    """Time limit of one check request, in seconds."""


@dataclass(frozen=True, slots=True)
class GuardResult:
    """An allowed action: its matches and where the answer came from.

    An allowed action: the matches (none blocking, or overridden) and where the answer
    came from (``server``, ``cache``, or ``unavailable`` when failing open).
    """

    allow: bool
    decisions: tuple[dict[str, Any], ...]
    source: str


def _env_config() -> GuardConfig:
    mode = os.environ.get("MENTATLAB_GUARD_FAIL_MODE", "open").strip().lower()
    try:
        cache_s = float(os.environ.get("MENTATLAB_GUARD_CACHE_S", "5"))
        timeout_s = float(os.environ.get("MENTATLAB_GUARD_TIMEOUT_S", "2"))
    except ValueError:
        logger.warning("MENTATLAB_GUARD_CACHE_S/TIMEOUT_S are not numbers; defaults used")
        cache_s, timeout_s = 5.0, 2.0
    if mode not in ("open", "closed"):
        logger.warning("MENTATLAB_GUARD_FAIL_MODE must be open or closed; open used")
        mode = "open"
    return GuardConfig(fail_mode=mode, cache_s=max(cache_s, 0.0),  # type: ignore[arg-type]
                       timeout_s=max(timeout_s, 0.01))


_config: GuardConfig | None = None
_cache: OrderedDict[bytes, tuple[float, GuardResult | PolicyBlocked]] = OrderedDict()
_lock = threading.Lock()


def configure_guard(*, endpoint: str = "", api_key: str = "", fail_mode: FailMode = "open",
                    cache_s: float = 5.0, timeout_s: float = 2.0) -> GuardConfig:
    """Set how :func:`guard` works (replaces the environment's settings); clears the cache.

    Raises:
        ValueError: ``fail_mode`` is not ``open`` or ``closed``, or a negative time.
    """
    global _config
    if fail_mode not in ("open", "closed"):
        raise ValueError(f"Expected fail_mode 'open' or 'closed', got {fail_mode!r}")
    if cache_s < 0 or timeout_s <= 0:
        raise ValueError("Expected cache_s >= 0 and timeout_s > 0")
    with _lock:
        _config = GuardConfig(endpoint, api_key, fail_mode, cache_s, timeout_s)
        _cache.clear()
        return _config


def _target(config: GuardConfig) -> tuple[str, str]:
    endpoint, key = config.endpoint, config.api_key
    if not endpoint or not key:
        from mentatlab.sdk.configure import get_state

        state = get_state()
        if state is not None:
            endpoint = endpoint or state.config.endpoint
            key = key or state.config.api_key
    endpoint = endpoint or os.environ.get("MENTATLAB_ENDPOINT", "http://127.0.0.1:4318")
    key = key or os.environ.get("MENTATLAB_API_KEY", "")
    return endpoint.rstrip("/"), key


def guard(name: str = "", *, operation: str = "tool", tool_name: str = "",
          agent_id: str = "", workflow_id: str = "", project_id: str = "",
          request_model: str = "", provider: str = "", input_tokens: int | None = None,
          user_id: str = "", customer_id: str = "", session_id: str = "",
          attributes: dict[str, Any] | None = None,
          fail_mode: FailMode | None = None) -> GuardResult:
    """Ask whether an action may go ahead; raise when a policy blocks it.

    Args:
        name: the would-be span's name (e.g. ``execute_tool shell``).
        operation: ``tool``, ``chat``, ``agent``... (the span's ``operation``).
        tool_name: the tool about to be called.
        agent_id: the agent acting.
        workflow_id: the workflow it runs in.
        project_id: the project (a project-scoped key's own wins on the server).
        request_model: the model about to be called.
        provider: its provider.
        user_id: the end user acted for.
        customer_id: the customer acted for.
        session_id: the session.
        input_tokens: tokens about to be sent, when known.
        attributes: the would-be span's attributes (e.g. ``gen_ai.tool.call.arguments``).
        fail_mode: overrides the configured ``open``/``closed`` for this call.

    Returns:
        The answer when allowed (``decisions`` lists non-blocking or overridden matches).

    Raises:
        PolicyBlocked: a ``block`` policy matched and no break-glass override covers it;
            or the server could not answer and the guard fails closed
            (``unavailable=True``).
        ValueError: the server refused the request as invalid (422), naming the field.
    """
    config = _config or _env_config()
    mode = fail_mode or config.fail_mode
    body: dict[str, Any] = {
        "name": name, "operation": operation, "tool_name": tool_name, "agent_id": agent_id,
        "workflow_id": workflow_id, "project_id": project_id, "request_model": request_model,
        "provider": provider, "user_id": user_id, "customer_id": customer_id,
        "session_id": session_id, "attributes": attributes or {}}
    if input_tokens is not None:
        body["input_tokens"] = input_tokens
    key = orjson.dumps(body, option=orjson.OPT_SORT_KEYS, default=str)
    now = time.monotonic()
    if config.cache_s > 0:
        with _lock:
            cached = _cache.get(key)
        if cached is not None and cached[0] > now:
            answer = cached[1]
            if isinstance(answer, PolicyBlocked):
                raise answer
            return GuardResult(answer.allow, answer.decisions, "cache")
    asked = _ask(config, key, mode)
    if asked is None:  # unreachable, not cached: the next call asks again
        if mode == "closed":
            raise PolicyBlocked("Policy check unavailable; failing closed", unavailable=True)
        return GuardResult(True, (), "unavailable")
    if config.cache_s > 0:
        with _lock:
            _cache[key] = (now + config.cache_s, asked)
            while len(_cache) > _MAX_CACHED:
                _cache.popitem(last=False)
    if isinstance(asked, PolicyBlocked):
        raise asked
    return asked


def _ask(config: GuardConfig, body: bytes, mode: str) -> GuardResult | PolicyBlocked | None:
    """The server's answer, or None when it could not be had (logged)."""
    import httpx

    endpoint, key = _target(config)
    headers = {"content-type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        response = httpx.post(f"{endpoint}/api/v1/policies/check", content=body,
                              headers=headers, timeout=config.timeout_s)
    except httpx.HTTPError as exc:
        logger.warning("mentatlab.guard: policy check failed (%s); failing %s",
                       type(exc).__name__, mode)
        return None
    if response.status_code == 422:
        errors = response.json().get("errors", [])
        first = errors[0] if errors else {"field": "", "reason": response.text}
        raise ValueError(f"{first['field']}: {first['reason']}")
    if response.status_code != 200:
        logger.warning("mentatlab.guard: policy check answered %s; failing %s",
                       response.status_code, mode)
        return None
    data = response.json()
    decisions = tuple(data.get("decisions", ()))
    if data.get("allow"):
        return GuardResult(True, decisions, "server")
    blocking = [d for d in decisions if d["action"] == "block" and not d["overridden"]]
    names = ", ".join(f"{d['policy_id']} ({d['name']})" for d in blocking)
    return PolicyBlocked(f"Blocked by policy {names}", decisions)
