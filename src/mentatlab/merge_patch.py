"""JSON Merge Patch (RFC 7386, https://www.rfc-editor.org/rfc/rfc7386): make one, apply one.

The format of the state deltas ``mentatlab.checkpoint`` records and replay applies. A
patch is a JSON object: a key with ``null`` removes that key, a key with an object
patches the object under it recursively, any other value replaces. Two consequences of
the format: ``null`` cannot be a value (it means "remove"), so :func:`drop_nulls` takes
nulls out of a state before it is compared; and an array is always replaced whole.

Pure and dependency-free, so the SDK and the server share it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["apply_merge_patch", "drop_nulls", "make_merge_patch"]


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """``target`` with ``patch`` applied (RFC 7386 §2 ``MergePatch``); inputs unchanged."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = apply_merge_patch(out.get(key), value)
    return out


def make_merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The smallest merge patch turning ``old`` into ``new`` (both without nulls).

    Removed keys map to ``None``; added and changed keys to their new value, or to a
    nested patch when both the old and new values are objects. Equal states give ``{}``.
    """
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            before = old[key]
            patch[key] = (make_merge_patch(before, value)
                          if isinstance(before, dict) and isinstance(value, dict) else value)
    return patch


def drop_nulls(value: Any) -> Any:
    """``value`` with every object member whose value is ``null`` removed, recursively.

    Nulls inside arrays stay: an array is replaced whole, so they survive a patch.
    """
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) if isinstance(v, dict | list) else v for v in value]
    return value
