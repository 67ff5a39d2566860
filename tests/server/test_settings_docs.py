from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mentatlab.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


@pytest.mark.parametrize("field", dataclasses.fields(Settings), ids=lambda f: f.name)
def test_every_setting_is_documented(field: dataclasses.Field[object]) -> None:
    text = DOC.read_text()
    assert f"| `{field.name}` |" in text, f"{field.name} missing from docs/settings.md"
    assert f"`{field.metadata['env']}`" in text, f"{field.metadata['env']} missing"


def test_docs_list_no_unknown_setting() -> None:
    names = {f.name for f in dataclasses.fields(Settings)}
    rows = [line.split("|")[1].strip().strip("`") for line in DOC.read_text().splitlines()
            if line.startswith("| `") and "MENTATLAB_" in line.split("|")[2]]
    assert set(rows) <= names, f"documented but not a setting: {set(rows) - names}"
