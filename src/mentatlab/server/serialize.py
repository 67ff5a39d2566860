"""Span rows → JSON with canonical field names; money as strings so decimals stay exact."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import orjson
import pyarrow as pa

__all__ = ["jsonable", "span_to_json", "table_to_json_rows"]

_JSON_TEXT_FIELDS = ("attributes", "events", "resource", "pii_findings")


def jsonable(value: Any) -> Any:
    """One value made JSON-safe: Decimal → str, datetime → ISO-8601 UTC, enum → value."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral_value() \
            else format(value, "f").rstrip("0")
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, bytes):
        return value.hex()
    return value


def span_to_json(row: Mapping[str, Any] | Any) -> dict[str, Any]:
    """A span (CanonicalSpan or a row dict) as a JSON object with canonical names.

    The JSON-text columns (``attributes``, ``events``, ``resource``, ``pii_findings``)
    are parsed so clients get objects, not strings. With the policy arrays present,
    ``policy_decisions`` zips them: ``[{"policy_id", "version", "action"}]``.
    """
    data: dict[str, Any]
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        data = {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}
    else:
        data = dict(row)  # type: ignore[arg-type]
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in _JSON_TEXT_FIELDS and isinstance(value, str):
            try:
                out[key] = orjson.loads(value) if value else None
            except orjson.JSONDecodeError:
                out[key] = value
        else:
            out[key] = jsonable(value)
    if "policy_ids" in data:  # the parallel arrays, zipped (docs/decisions/0018)
        out["policy_decisions"] = [
            {"policy_id": pid, "version": int(version), "action": action}
            for pid, version, action in zip(data["policy_ids"] or (),
                                            data["policy_versions"] or (),
                                            data["policy_actions"] or (), strict=False)]
    return out


def table_to_json_rows(table: pa.Table | Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every row of an Arrow table (or row dicts) as JSON span objects."""
    rows = table.to_pylist() if isinstance(table, pa.Table) else list(table)
    return [span_to_json(r) for r in rows]
