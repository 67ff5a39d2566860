"""Settings: arguments > MENTATLAB_* > OTEL_* > defaults; bad values warn, never raise."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import mentatlab
from mentatlab.sdk.config import resolve_config


def test_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-otel")
    assert resolve_config().service_name == "from-otel"
    monkeypatch.setenv("MENTATLAB_SERVICE_NAME", "from-mentatlab")
    assert resolve_config().service_name == "from-mentatlab"
    assert resolve_config(service_name="from-argument").service_name == "from-argument"
    monkeypatch.setenv("MENTATLAB_RESOURCE_METERING", "off")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "250")
    config = resolve_config()
    assert config.resource_metering is False and config.schedule_delay_ms == 250


def test_bad_env_value_warns_and_keeps_default(monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("MENTATLAB_EXPORT_TIMEOUT_S", "soon")
    with caplog.at_level(logging.WARNING, logger="mentatlab.sdk"):
        assert resolve_config().export_timeout_s == 5.0
    assert "MENTATLAB_EXPORT_TIMEOUT_S" in caplog.text


def test_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="colour"):
        resolve_config(colour="blue")


def test_env_configures_export_tenancy_and_api_key(monkeypatch: pytest.MonkeyPatch,
                                                   otlp_receiver: Any) -> None:
    monkeypatch.setenv("MENTATLAB_ENDPOINT", otlp_receiver.endpoint)
    monkeypatch.setenv("MENTATLAB_API_KEY", "mk_test_123")
    monkeypatch.setenv("MENTATLAB_ORG", "initech")
    monkeypatch.setenv("MENTATLAB_PROJECT", "tps")
    mentatlab.init(schedule_delay_ms=10)
    with mentatlab.span("configured-by-env"):
        pass
    assert mentatlab.shutdown().num_exported_spans == 1
    [span] = otlp_receiver.wait_for(1)
    assert span.attributes["mentat.org_id"] == "initech"
    assert span.attributes["mentat.project_id"] == "tps"
    assert otlp_receiver.authorizations == ["Bearer mk_test_123"]
