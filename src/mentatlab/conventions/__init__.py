"""Attribute conventions: one mapping table per convention, applied in a documented order.

See :mod:`mentatlab.conventions.registry` for the precedence and docs/conventions.md
for the tables.
"""

from __future__ import annotations

from mentatlab.conventions.base import BadValue, Convention, Rule
from mentatlab.conventions.registry import (
    CONVENTIONS,
    extract_fields,
    extract_resource_fields,
    render_markdown,
)

__all__ = [
    "CONVENTIONS",
    "BadValue",
    "Convention",
    "Rule",
    "extract_fields",
    "extract_resource_fields",
    "render_markdown",
]
