"""``mentatlab.checkpoint(state)``: record an agent's state on the current span, for replay.

Each call adds a span event ``mentat.checkpoint`` to the current span (the innermost
``@traced`` or ``span()``) with attributes:

* ``mentat.checkpoint.patch``: the JSON text of the change since the previous checkpoint
  this process recorded in the same trace, as a JSON Merge Patch (RFC 7386,
  :mod:`mentatlab.merge_patch`): removed top-level or nested keys map to ``null``,
  added or changed ones to their new value (objects as a nested patch);
* ``mentat.checkpoint.replace``: ``true`` when the patch is the whole state and replaces
  what replay accumulated so far (the first checkpoint of the trace in this process, or
  the first after the trace was forgotten, below), else ``false``;
* ``mentat.checkpoint.seq``: 1, 2, ... per trace in this process.

They are event attributes, so every processor that rewrites attributes at ingest (a
redaction stage) applies to them. ``state`` must be a mapping; it is encoded with
``json.dumps(default=str)`` (values JSON cannot hold become their ``str``), and ``null``
members are dropped (a merge patch reads ``null`` as "remove"). The last state of the
:data:`MAX_TRACES` most recently checkpointed traces is remembered; an older trace's
next checkpoint replaces. Replay: ``GET /api/v1/traces/{trace_id}/replay``
(:mod:`mentatlab.analytics.replay`). Without a recording span it does nothing.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Final

from opentelemetry import trace

from mentatlab.merge_patch import drop_nulls, make_merge_patch
from mentatlab.sdk._safety import handle_internal_errors

__all__ = ["CHECKPOINT_EVENT", "MAX_TRACES", "PATCH_ATTRIBUTE", "REPLACE_ATTRIBUTE",
           "SEQ_ATTRIBUTE", "checkpoint"]

CHECKPOINT_EVENT: Final = "mentat.checkpoint"
PATCH_ATTRIBUTE: Final = "mentat.checkpoint.patch"
REPLACE_ATTRIBUTE: Final = "mentat.checkpoint.replace"
SEQ_ATTRIBUTE: Final = "mentat.checkpoint.seq"
MAX_TRACES: Final = 1024
"""Traces whose last state this process remembers (least recently checkpointed dropped)."""

logger = logging.getLogger("mentatlab.sdk")
_lock = threading.Lock()
_last: OrderedDict[int, tuple[int, dict[str, Any]]] = OrderedDict()
"""trace id → (seq, state) of its last checkpoint in this process."""


def checkpoint(state: Mapping[str, Any]) -> None:
    """Record ``state`` on the current span as a delta from the trace's previous checkpoint.

    Args:
        state: the agent's state, a JSON-encodable mapping (see the module doc).
    """
    with handle_internal_errors():
        span = trace.get_current_span()
        if not span.is_recording():
            return
        if not isinstance(state, Mapping):
            logger.warning("mentatlab.checkpoint expects a mapping, got %s; not recorded",
                           type(state).__name__)
            return
        new = drop_nulls(json.loads(json.dumps(dict(state), default=str)))
        trace_id = span.get_span_context().trace_id
        with _lock:
            seq, old = _last.pop(trace_id, (0, None))
            _last[trace_id] = (seq + 1, new)
            while len(_last) > MAX_TRACES:
                _last.popitem(last=False)
        patch = new if old is None else make_merge_patch(old, new)
        span.add_event(CHECKPOINT_EVENT, {
            PATCH_ATTRIBUTE: json.dumps(patch, separators=(",", ":"), ensure_ascii=False),
            REPLACE_ATTRIBUTE: old is None, SEQ_ATTRIBUTE: seq + 1})
