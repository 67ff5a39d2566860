"""The redact stage's modes, overrides, JSON handling, hash key and settings (real Presidio)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pii_modes_helpers import CARD, EMAIL, HASH_KEY, KEY, MESSAGES, make_span

from mentatlab.errors import ConfigError
from mentatlab.governance.pii_config import (
    HASH_KEY_FILE,
    PiiConfig,
    PiiMode,
    load_hash_key,
    parse_mode_overrides,
)
from mentatlab.model.span import CanonicalSpan
from mentatlab.pipeline.redact import Redact
from mentatlab.settings import load_settings


def run(mode: PiiMode, *spans: CanonicalSpan, **config: Any) -> list[CanonicalSpan]:
    return Redact(PiiConfig(mode, **config), HASH_KEY)(list(spans))


def test_off_scans_nothing_and_changes_nothing() -> None:
    span = make_span()
    before = (span.attributes, span.events, span.status_message)
    stage = Redact(PiiConfig(PiiMode.OFF))
    stage([span])
    assert (span.attributes, span.events, span.status_message) == before
    assert span.pii_findings == ""


def test_detect_records_findings_with_offsets_into_the_original_values() -> None:
    span = make_span()
    original_attrs, original_events = json.loads(span.attributes), json.loads(span.events)
    status = span.status_message
    run(PiiMode.DETECT, span)
    findings = json.loads(span.pii_findings)
    assert json.loads(span.attributes) == original_attrs  # values unchanged
    got = set()
    for f in findings:
        assert set(f) == {"category", "key", "offset", "length", "confidence"}
        assert 0 < f["confidence"] <= 1
        if f["key"].startswith("event:"):
            _, index, key = f["key"].split(":", 2)
            value = original_events[int(index)]["attributes"][key]
        elif f["key"] == "status_message":
            value = status
        else:
            value = original_attrs[f["key"]]
        got.add((f["category"], f["key"], value[f["offset"]:f["offset"] + f["length"]]))
    assert got == {
        ("EMAIL_ADDRESS", "gen_ai.input.messages", EMAIL),
        ("CREDIT_CARD", "gen_ai.input.messages", CARD),
        ("EMAIL_ADDRESS", "gen_ai.tool.call.arguments", EMAIL),
        ("SECRET", "event:0:exception.message", KEY),
        ("EMAIL_ADDRESS", "status_message", EMAIL),
    }
    assert EMAIL not in span.pii_findings and KEY not in span.pii_findings


def test_offsets_count_json_escapes_as_written() -> None:
    value = json.dumps([{"content": "\u00e9\u00e9 \"quoted\" then " + EMAIL}])  # ensure_ascii
    span = make_span(**{"gen_ai.output.messages": value})
    run(PiiMode.DETECT, span)
    finding = next(f for f in json.loads(span.pii_findings)
                   if f["key"] == "gen_ai.output.messages")
    assert value[finding["offset"]:finding["offset"] + finding["length"]] == EMAIL


def _strings_replaced_only(before: Any, after: Any) -> None:
    """Same JSON shape, keys and non-string values; strings may differ."""
    assert type(before) is type(after)
    if isinstance(before, dict):
        assert list(before) == list(after)
        for key in before:
            _strings_replaced_only(before[key], after[key])
    elif isinstance(before, list):
        assert len(before) == len(after)
        for b, a in zip(before, after, strict=True):
            _strings_replaced_only(b, a)
    elif not isinstance(before, str):
        assert before == after


def test_redact_puts_placeholders_and_keeps_the_json_valid() -> None:
    span = make_span()
    run(PiiMode.REDACT, span)
    attrs = json.loads(span.attributes)
    messages = json.loads(attrs["gen_ai.input.messages"])  # still valid JSON
    _strings_replaced_only(json.loads(MESSAGES), messages)
    assert messages[1]["parts"][0]["content"] == \
        "Café order: mail <EMAIL_ADDRESS>, card <CREDIT_CARD>"
    assert messages[0]["parts"][0]["content"] == "You are a \"careful\" agent."
    assert json.loads(attrs["gen_ai.tool.call.arguments"]) == {
        "to": "<EMAIL_ADDRESS>", "body": "see attachment", "retries": 3}
    # structural fields and numbers untouched, though they look like a card number
    assert attrs["mentat.parent_span_id"] == "4111111111111111"
    assert attrs["gen_ai.request.model"] == "gpt-4o-2024-08-06"
    assert attrs["gen_ai.usage.input_tokens"] == 1234
    assert json.loads(span.events)[0]["attributes"]["exception.message"] == \
        "key <SECRET> was revoked"
    assert span.status_message == "failed for <EMAIL_ADDRESS>"
    assert EMAIL not in span.attributes + span.events + span.status_message
    assert len(json.loads(span.pii_findings)) == 5


def _placeholders(span: CanonicalSpan) -> list[str]:
    messages = json.loads(json.loads(span.attributes)["gen_ai.input.messages"])
    text = messages[1]["parts"][0]["content"]
    return [part.split(">")[0] for part in text.split("<")[1:]]


def test_hash_is_stable_within_an_org_and_differs_across_orgs() -> None:
    a1, a2, b = make_span("acme"), make_span("acme"), make_span("globex")
    run(PiiMode.HASH, a1, a2, b)
    email_a, card_a = _placeholders(a1)
    assert email_a.startswith("EMAIL_ADDRESS:") and len(email_a.split(":")[1]) == 16
    assert card_a.startswith("CREDIT_CARD:")
    assert _placeholders(a2) == [email_a, card_a]  # equal values still group
    assert _placeholders(b)[0] != email_a  # another org cannot join on it
    tool_args = json.loads(json.loads(a1.attributes)["gen_ai.tool.call.arguments"])
    assert tool_args["to"] == f"<{email_a}>"  # same value, other attribute: same hash
    # a new stage with the same key (another worker, a restart) hashes alike
    again = make_span("acme")
    Redact(PiiConfig(PiiMode.HASH), HASH_KEY)([again])
    assert _placeholders(again) == [email_a, card_a]


def test_drop_removes_the_attributes_holding_pii_only() -> None:
    span = make_span()
    run(PiiMode.DROP, span)
    attrs = json.loads(span.attributes)
    assert "gen_ai.input.messages" not in attrs and "gen_ai.tool.call.arguments" not in attrs
    assert attrs["note"] == "nothing here" and attrs["gen_ai.usage.input_tokens"] == 1234
    assert json.loads(span.events)[0]["attributes"] == {"exception.type": "AuthError"}
    assert span.status_message == ""
    assert {f["key"] for f in json.loads(span.pii_findings)} == {
        "gen_ai.input.messages", "gen_ai.tool.call.arguments", "event:0:exception.message",
        "status_message"}


def test_project_override_wins_over_org_which_wins_over_default() -> None:
    overrides = parse_mode_overrides("acme=hash,acme/billing=drop,globex=off")
    spans = [make_span("acme", "web"), make_span("acme", "billing"), make_span("globex", "web"),
             make_span("initech", "web")]
    run(PiiMode.REDACT, *spans, overrides=overrides)
    web, billing, globex, initech = spans
    assert _placeholders(web)[0].startswith("EMAIL_ADDRESS:")
    assert "gen_ai.input.messages" not in json.loads(billing.attributes)
    assert globex.pii_findings == "" and EMAIL in globex.attributes
    assert _placeholders(initech) == ["EMAIL_ADDRESS", "CREDIT_CARD"]


def test_look_alikes_are_left_alone() -> None:
    text = ("Order #4532-1190-88 for trace 4bf92f3577b34da6a3ce929d0e0e4736, span 00f067aa0ba902b7,"
            " run 550e8400-e29b-41d4-a716-446655440000, v2.14.3, 2024-06-01T12:30:45Z, $1,299.99,"
            " 154321 tokens, numpy==1.26.4, version 1.2.3.4, icon@2x.png, task-runner")
    span = make_span(**{"output.value": text})
    run(PiiMode.REDACT, span)
    assert json.loads(span.attributes)["output.value"] == text
    assert "output.value" not in span.pii_findings


def test_custom_entities_are_found() -> None:
    span = make_span(note="escalate to EMP-123456 today")
    run(PiiMode.REDACT, span, custom_entities={"EMPLOYEE_ID": r"\bEMP-\d{6}\b"})
    assert json.loads(span.attributes)["note"] == "escalate to <EMPLOYEE_ID> today"


def test_settings_parse_env_and_toml_tables(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mentatlab.toml").write_text(
        '[server]\npii_mode = "detect"\n'
        '[server.pii_mode_overrides]\nacme = "hash"\n"acme/billing" = "drop"\n'
        '[server.pii_custom_entities]\nEMPLOYEE_ID = \'\\bEMP-\\d{6}\\b\'\n')
    settings = load_settings(data_dir=tmp_path)
    config = PiiConfig.from_settings(settings)
    assert config.mode is PiiMode.DETECT
    assert config.mode_for("acme", "billing") is PiiMode.DROP
    assert config.mode_for("acme", "web") is PiiMode.HASH
    assert config.custom_entities == {"EMPLOYEE_ID": r"\bEMP-\d{6}\b"}
    monkeypatch.setenv("MENTATLAB_PII_MODE", "off")
    monkeypatch.setenv("MENTATLAB_PII_MODE_OVERRIDES", "globex=redact")
    config = PiiConfig.from_settings(load_settings(data_dir=tmp_path))
    assert config.mode is PiiMode.OFF and config.mode_for("globex", "") is PiiMode.REDACT


@pytest.mark.parametrize(("override", "message"), [
    ({"pii_mode": "mask"}, "pii_mode"),
    ({"pii_mode_overrides": "acme:hash"}, "org[/project]=mode"),
    ({"pii_mode_overrides": "acme=scramble"}, "pii_mode_overrides[acme]"),
    ({"pii_custom_entities": '{"EMPLOYEE_ID": "EMP-(\\\\d"}'}, "pii_custom_entities[EMPLOYEE_ID]"),
    ({"pii_custom_entities": '{"email": "x"}'}, "EMPLOYEE_ID"),
    ({"pii_custom_entities": '{"SECRET": "x"}'}, "built-in"),
    ({"pii_custom_entities": "[1]"}, "object"),
])
def test_bad_pii_settings_fail_fast(tmp_path: Path, override: dict[str, str],
                                    message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_settings(data_dir=tmp_path, **override)


def test_hash_key_file_is_generated_once_private_and_reused(tmp_path: Path) -> None:
    first = load_hash_key("", tmp_path)
    path = tmp_path / HASH_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_hash_key("", tmp_path) == first and len(first) == 64
    assert [p.name for p in tmp_path.iterdir()] == [HASH_KEY_FILE]  # no temporary left
    assert load_hash_key("a configured key!", tmp_path) == b"a configured key!"
    with pytest.raises(ConfigError, match="at least 16"):
        load_hash_key("short", tmp_path)


def test_stage_from_settings_loads_the_key_only_for_hash(tmp_path: Path) -> None:
    Redact.from_settings(load_settings(data_dir=tmp_path))  # redact: no key needed
    assert not (tmp_path / HASH_KEY_FILE).exists()
    Redact.from_settings(load_settings(data_dir=tmp_path, pii_mode_overrides="acme=hash"))
    assert (tmp_path / HASH_KEY_FILE).exists()


def test_presidio_is_not_imported_when_pii_mode_is_off(tmp_path: Path) -> None:
    code = ("import sys; from mentatlab.settings import load_settings; "
            "from mentatlab.pipeline.workers import build_pipeline; "
            f"build_pipeline(load_settings(data_dir={str(tmp_path)!r}, pii_mode=sys.argv[1]));"
            "print('presidio_analyzer' in sys.modules, 'spacy' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    # redact: Presidio (and the spaCy it imports) loads on the first detection, not with
    # the pipeline (tests/footprint/test_footprint.py checks it loads then)
    for mode, expected in (("off", "False False"), ("redact", "False False")):
        out = subprocess.run([sys.executable, "-c", code, mode], env=env,
                             capture_output=True, text=True, check=True).stdout.strip()
        assert out == expected, mode
