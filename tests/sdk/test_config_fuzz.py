"""``mentatlab.init()`` never raises over a setting: Hypothesis over every option.

Every option of :class:`~mentatlab.sdk.config.SDKConfig` is fuzzed at once, as an argument
(right type in and out of range, wrong types, odd text) and as its ``MENTATLAB_*`` and
``OTEL_*`` environment variables (any text). ``init()`` must return, every resolved value
must be one the SDK accepts (in range, else the default), and a span must still reach the
exporter. Under pytest an SDK-internal error is re-raised (``sdk/_safety.py``), so one
swallowed by the never-raise guard fails the test too.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, seed, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import mentatlab
from mentatlab.sdk.config import SDKConfig, _checked

pytestmark = pytest.mark.fuzz

FIELDS = {f.name: f for f in dataclasses.fields(SDKConfig)}
ENV_VARS = sorted(var for f in FIELDS.values() for var in (f.metadata["env"], f.metadata["otel"])
                  if var)
ODD_TEXT = ["", " ", "0", "-1", "1e309", "nan", "inf", "-inf", "99999999999999999999", "0x10",
            "true", "off", "http://", "127.0.0.1:4318", "http://[::1", "http://h:99999",
            "https://h/\u00e9", "key with space", "\u00e9t\u00e9"]
env_text = st.one_of(st.sampled_from(ODD_TEXT), st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40))
"""Anything an environment variable can hold (no NUL, no lone surrogate)."""
any_value = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-10, 10_000_000),
    st.floats(), st.floats(-1, 100_000), env_text)
"""An argument of any type init() takes, inside and outside the options' ranges."""


def _accepted(name: str, value: Any) -> bool:
    try:
        _checked(FIELDS[name], value)
    except ValueError:
        return False
    return True


@seed(14)
@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(arguments=st.fixed_dictionaries({}, optional={name: any_value for name in FIELDS}),
       environment=st.fixed_dictionaries({}, optional={var: env_text for var in ENV_VARS}))
@example(arguments={}, environment={"MENTATLAB_MAX_QUEUE_SPANS": "0"})  # issue 14
@example(arguments={"max_queue_spans": 0, "schedule_delay_ms": 0, "export_timeout_s": 1e309},
         environment={})
def test_init_never_raises_over_any_setting(arguments: dict[str, Any],
                                            environment: dict[str, str]) -> None:
    saved = {var: os.environ.get(var) for var in ENV_VARS}
    os.environ.update(environment)
    try:
        state = mentatlab.init(**arguments)  # the real OTLP exporter, built from the settings
        for name, value in dataclasses.asdict(state.config).items():
            assert value == FIELDS[name].default or _accepted(name, value), (name, value)
            given_value = arguments.get(name)
            if given_value is not None and _accepted(name, given_value):
                assert value == given_value, (name, value, given_value)
        exporter = InMemorySpanExporter()
        mentatlab.init(exporter=exporter, **arguments)
        with mentatlab.span("fuzzed settings"):
            pass
        mentatlab.shutdown(timeout_s=5)
        assert [s.name for s in exporter.get_finished_spans()] == ["fuzzed settings"]
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def test_an_out_of_range_setting_warns_and_keeps_the_default(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("MENTATLAB_MAX_QUEUE_SPANS", "0")
    monkeypatch.setenv("MENTATLAB_API_KEY", "mtl_secret with a space")
    state = mentatlab.init(schedule_delay_ms=-5, exporter=InMemorySpanExporter())
    assert state.config.max_queue_spans == 8192 and state.config.schedule_delay_ms == 1000
    assert state.config.api_key == ""
    assert "MENTATLAB_MAX_QUEUE_SPANS='0': expected 1 to 1e+06" in caplog.text
    assert "schedule_delay_ms=-5" in caplog.text and "MENTATLAB_API_KEY" in caplog.text
    assert "mtl_secret" not in caplog.text
