from __future__ import annotations

import dataclasses
from pathlib import Path

from mentatlab.conventions import CONVENTIONS, render_markdown
from mentatlab.model.span import CanonicalSpan

DOC = Path(__file__).resolve().parents[2] / "docs" / "conventions.md"
WORKING_FIELDS = {"input_cache_excluded_tokens", "error_hint", "status"}


def test_documented_order() -> None:
    assert [c.name for c in CONVENTIONS] == [
        "mentat", "langfuse", "openinference", "genai", "openllmetry", "vercel_ai", "logfire",
        "other"]


def test_every_rule_yields_known_fields() -> None:
    known = {f.name for f in dataclasses.fields(CanonicalSpan)} | WORKING_FIELDS
    for convention in CONVENTIONS:
        for rule in convention.rules:
            assert set(rule.fields) <= known, (convention.name, rule.key)


def test_docs_hold_the_generated_tables() -> None:
    assert render_markdown() in DOC.read_text()
