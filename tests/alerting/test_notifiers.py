"""Notifiers against real loopback HTTP and SMTP receivers (no mocks)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from email.utils import format_datetime

import pytest

from mentatlab.alerting.notifiers import (
    Channel,
    DeliveryError,
    Notification,
    NotifierConfig,
    deliver,
    parse_channel,
)
from mentatlab.errors import ValidationError
from receivers import SmtpReceiver, WebhookReceiver, envelope_recipients
from serve_process import free_port

WAIT_S = 5.0


def make_notification(**changes: object) -> Notification:
    base = Notification(
        alert_id="al_0123456789abcdef", rule_id="ru_42", rule_name="Monthly budget p1",
        org_id="acme", rule_kind="budget", state="firing", metric="cost",
        value=Decimal("12.345678901"), threshold=Decimal("10.00"),
        filters={"project_id": "p1"},
        window_start=datetime(2025, 3, 1, tzinfo=UTC),
        window_end=datetime(2025, 3, 18, 12, 30, tzinfo=UTC),
        message="Monthly budget p1: cost = 12.345678901 over the last 25170 min >= 10.00",
        created_at=datetime(2025, 3, 18, 12, 30, 5, 250000, tzinfo=UTC))
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as receiver:
        yield receiver


def smtp_config(receiver: SmtpReceiver, **changes: object) -> NotifierConfig:
    config = NotifierConfig(smtp_host=receiver.host, smtp_port=receiver.port,
                            smtp_from="MentatLab <alerts@mentat.example>", timeout_s=5.0)
    return replace(config, **changes)  # type: ignore[arg-type]


# --- JSON form -----------------------------------------------------------------------


def test_to_json_is_exact_and_utc() -> None:
    notification = make_notification(
        value=Decimal("1E+3"), threshold=Decimal("0.000000001000"),
        window_start=datetime(2025, 3, 1, 2, 0, tzinfo=timezone(timedelta(hours=2))),
        window_end=datetime(2025, 3, 2),  # naive: read as UTC  # noqa: DTZ001
    )
    body = notification.to_json()
    assert body["source"] == "mentatlab"
    assert body["value"] == "1000"
    assert body["threshold"] == "0.000000001000"
    assert body["window_start"] == "2025-03-01T00:00:00Z"
    assert body["window_end"] == "2025-03-02T00:00:00Z"
    assert body["created_at"] == "2025-03-18T12:30:05.250000Z"
    assert body["filters"] == {"project_id": "p1"}
    digits = Decimal("1234567890123456789012345.123456789012")  # 37 digits: above 28
    assert make_notification(value=digits).to_json()["value"] == str(digits)
    assert body["filters"] is not notification.filters


# --- webhook -------------------------------------------------------------------------


def test_webhook_body_is_to_json_without_signature(webhook: WebhookReceiver) -> None:
    notification = make_notification()
    deliver(parse_channel(f"webhook:{webhook.url}"), notification, NotifierConfig())
    (received,) = webhook.wait_for(1, WAIT_S)
    assert received.method == "POST"
    assert received.path == "/hook"
    assert received.json() == notification.to_json()
    assert received.json()["value"] == "12.345678901"
    assert received.json()["threshold"] == "10.00"
    assert received.headers["content-type"] == "application/json"
    assert received.headers["user-agent"] == "mentatlab-alerts/0.1"
    assert received.headers["idempotency-key"] == "al_0123456789abcdef"
    assert "x-mentatlab-signature" not in received.headers
    assert "x-mentatlab-timestamp" not in received.headers


def test_webhook_signature_verifies_over_the_received_body(webhook: WebhookReceiver) -> None:
    secret = "s3cret-key"
    before_s = int(time.time())
    deliver(parse_channel(f"webhook:{webhook.url}"), make_notification(),
            NotifierConfig(webhook_secret=secret))
    (received,) = webhook.wait_for(1, WAIT_S)
    signed = received.headers["x-mentatlab-timestamp"].encode() + b"." + received.body
    expected = "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, received.headers["x-mentatlab-signature"])
    wrong = "sha256=" + hmac.new(b"other", signed, hashlib.sha256).hexdigest()
    assert not hmac.compare_digest(wrong, received.headers["x-mentatlab-signature"])
    unstamped = "sha256=" + hmac.new(secret.encode(), received.body, hashlib.sha256).hexdigest()
    assert not hmac.compare_digest(unstamped, received.headers["x-mentatlab-signature"])
    assert before_s <= int(received.headers["x-mentatlab-timestamp"]) <= int(time.time())


def test_webhook_redelivery_sends_the_same_key_and_body(webhook: WebhookReceiver) -> None:
    channel = parse_channel(f"webhook:{webhook.url}")
    notification = make_notification()
    deliver(channel, notification, NotifierConfig())
    deliver(channel, notification, NotifierConfig())
    first, second = webhook.wait_for(2, WAIT_S)
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert first.body == second.body


# --- slack ---------------------------------------------------------------------------


def test_slack_payload_is_an_incoming_webhook_message(webhook: WebhookReceiver) -> None:
    notification = make_notification(rule_name="Spend <p1> & co", filters={})
    deliver(parse_channel(f"slack:{webhook.url}"), notification,
            NotifierConfig(webhook_secret="not-for-slack"))
    (received,) = webhook.wait_for(1, WAIT_S)
    payload = received.json()
    assert received.headers["content-type"] == "application/json"
    assert "x-mentatlab-signature" not in received.headers
    assert "Spend &lt;p1&gt; &amp; co" in payload["text"]
    assert "12.345678901 USD" in payload["text"]
    assert "FIRING" in payload["text"]
    (section,) = payload["blocks"]
    assert section["type"] == "section"
    assert section["text"]["type"] == "mrkdwn"
    assert "Spend &lt;p1&gt; &amp; co" in section["text"]["text"]
    fields = {f["text"].split("\n", 1)[0]: f["text"].split("\n", 1)[1]
              for f in section["fields"]}
    assert all(f["type"] == "mrkdwn" for f in section["fields"])
    assert 1 <= len(section["fields"]) <= 10
    assert fields["*Value*"] == "12.345678901 USD"
    assert fields["*Threshold*"] == "10.00 USD"
    assert fields["*Scope*"] == "everything"
    assert fields["*Alert*"] == "al_0123456789abcdef"


# --- email ---------------------------------------------------------------------------


def test_email_to_two_recipients(smtp: SmtpReceiver) -> None:
    deliver(parse_channel("email: ops@x.org , fin@y.org "), make_notification(),
            smtp_config(smtp))
    (message,) = smtp.wait_for(1, WAIT_S)
    assert message["Subject"] == "[MentatLab] FIRING: Monthly budget p1"
    assert message["From"] == "MentatLab <alerts@mentat.example>"
    assert [a.addr_spec for a in message["To"].addresses] == ["ops@x.org", "fin@y.org"]
    assert envelope_recipients(message) == ["ops@x.org", "fin@y.org"]
    assert message["X-MailFrom"] == "alerts@mentat.example"
    assert message["Message-ID"] == "<alert-al_0123456789abcdef@mentat.example>"
    assert message["Date"] == format_datetime(datetime(2025, 3, 18, 12, 30, 5, 250000,
                                                       tzinfo=UTC))
    body = message.get_content().replace("\r\n", "\n")
    for line in ("Monthly budget p1 (budget, id ru_42)", "Metric:     cost",
                 "Value:      12.345678901 USD", "Threshold:  10.00 USD",
                 "Scope:      project_id=p1",
                 "Window:     2025-03-01T00:00:00Z to 2025-03-18T12:30:00Z (UTC)",
                 "Alert id:   al_0123456789abcdef", "Org:        acme"):
        assert line in body


def test_email_resolved_subject(smtp: SmtpReceiver) -> None:
    deliver(parse_channel("email:ops@x.org"),
            make_notification(state="resolved", metric="error_rate",
                              value=Decimal("0.01"), threshold=Decimal("0.05")),
            smtp_config(smtp))
    (message,) = smtp.wait_for(1, WAIT_S)
    assert message["Subject"] == "[MentatLab] RESOLVED: Monthly budget p1"
    assert "Value:      0.01\r\n" in message.get_content()


def test_email_login() -> None:
    with SmtpReceiver(login=("alerts", "pw")) as receiver:
        deliver(parse_channel("email:ops@x.org"), make_notification(),
                smtp_config(receiver, smtp_username="alerts", smtp_password="pw"))
        assert len(receiver.wait_for(1, WAIT_S)) == 1
        with pytest.raises(DeliveryError) as wrong:
            deliver(parse_channel("email:ops@x.org"), make_notification(),
                    smtp_config(receiver, smtp_username="alerts", smtp_password="nope"))
        assert wrong.value.retryable is False
        assert "535" in str(wrong.value)
        with pytest.raises(DeliveryError) as anonymous:
            deliver(parse_channel("email:ops@x.org"), make_notification(),
                    smtp_config(receiver))
        assert anonymous.value.retryable is False
        assert len(receiver.messages) == 1


# --- failures ------------------------------------------------------------------------


def test_webhook_503_with_retry_after_is_retryable(webhook: WebhookReceiver) -> None:
    webhook.fail_next(1, 503, retry_after="7")
    with pytest.raises(DeliveryError) as caught:
        deliver(parse_channel(f"webhook:{webhook.url}"), make_notification(), NotifierConfig())
    assert caught.value.retryable is True
    assert caught.value.retry_after_s == 7
    assert "HTTP 503" in str(caught.value)
    deliver(parse_channel(f"webhook:{webhook.url}"), make_notification(), NotifierConfig())
    assert len(webhook.wait_for(2, WAIT_S)) == 2


def test_retry_after_as_http_date(webhook: WebhookReceiver) -> None:
    later = datetime.now(UTC) + timedelta(seconds=120)
    webhook.fail_next(1, 429, retry_after=format_datetime(later, usegmt=True))
    with pytest.raises(DeliveryError) as caught:
        deliver(parse_channel(f"slack:{webhook.url}"), make_notification(), NotifierConfig())
    assert caught.value.retryable is True
    assert caught.value.retry_after_s is not None
    assert 100 < caught.value.retry_after_s <= 120


@pytest.mark.parametrize(("status", "retryable"),
                         [(400, False), (401, False), (404, False), (408, True), (429, True),
                          (500, True), (502, True), (302, False)])
def test_webhook_status_decides_retry(webhook: WebhookReceiver, status: int,
                                      retryable: bool) -> None:
    webhook.fail_next(1, status)
    with pytest.raises(DeliveryError) as caught:
        deliver(parse_channel(f"webhook:{webhook.url}"), make_notification(), NotifierConfig())
    assert caught.value.retryable is retryable
    assert caught.value.retry_after_s is None
    assert f"HTTP {status}" in str(caught.value)


def test_error_message_hides_the_url_path(webhook: WebhookReceiver) -> None:
    webhook.fail_next(1, 403)
    url = webhook.url.replace("/hook", "/services/T000/B000/SECRET")
    with pytest.raises(DeliveryError) as caught:
        deliver(parse_channel(f"slack:{url}"), make_notification(), NotifierConfig())
    assert "SECRET" not in str(caught.value)
    assert f"http://127.0.0.1:{webhook.port}" in str(caught.value)


def test_webhook_connection_refused_is_retryable() -> None:
    channel = parse_channel(f"webhook:http://127.0.0.1:{free_port()}/hook")
    with pytest.raises(DeliveryError) as caught:
        deliver(channel, make_notification(), NotifierConfig(timeout_s=2.0))
    assert caught.value.retryable is True


def test_smtp_connection_refused_is_retryable() -> None:
    config = NotifierConfig(smtp_host="127.0.0.1", smtp_port=free_port(), timeout_s=2.0)
    with pytest.raises(DeliveryError) as caught:
        deliver(parse_channel("email:ops@x.org"), make_notification(), config)
    assert caught.value.retryable is True


def test_invalid_channel_is_a_delivery_error() -> None:
    with pytest.raises(DeliveryError) as caught:
        deliver(Channel("webhook", "ftp://x.org/"), make_notification(), NotifierConfig())
    assert caught.value.retryable is False
    assert "ftp://x.org/" in str(caught.value)


# --- parse_channel -------------------------------------------------------------------


@pytest.mark.parametrize(("text", "kind", "target"), [
    ("webhook:https://ops.example.org/hooks/ml?x=1", "webhook", "https://ops.example.org/hooks/ml?x=1"),
    ("  webhook: http://127.0.0.1:8080/hook  ", "webhook", "http://127.0.0.1:8080/hook"),
    ("slack:https://hooks.slack.com/services/T0/B0/XX", "slack",
     "https://hooks.slack.com/services/T0/B0/XX"),
    ("email:ops@x.org", "email", "ops@x.org"),
    ("email:ops@x.org, fin@y.co.uk", "email", "ops@x.org,fin@y.co.uk"),
])
def test_parse_channel_round_trips(text: str, kind: str, target: str) -> None:
    channel = parse_channel(text)
    assert (channel.kind, channel.target) == (kind, target)
    assert str(channel) == f"{kind}:{target}"
    assert parse_channel(str(channel)) == channel


@pytest.mark.parametrize(("text", "named"), [
    ("pager:https://x.org/", "pager:https://x.org/"),
    ("https://x.org/hook", "https://x.org/hook"),
    ("", "''"),
    ("webhook:", "webhook:"),
    ("email:   ", "email:"),
    ("webhook:ftp://x.org/file", "ftp://x.org/file"),
    ("webhook:x.org/hook", "x.org/hook"),
    ("slack:https:///no-host", "https:///no-host"),
    ("webhook:http://x.org:99999/", "http://x.org:99999/"),
    ("webhook:http://x .org/", "http://x .org/"),
    ("email:ops.x.org", "ops.x.org"),
    ("email:ops@x@y.org", "ops@x@y.org"),
    ("email:ops@localhost", "ops@localhost"),
    ("email:@x.org", "@x.org"),
    ("email:ops@x.org,", "''"),
    ("email:Ops <ops@x.org>", "Ops <ops@x.org>"),
])
def test_parse_channel_refuses(text: str, named: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_channel(text, "channels[3]")
    assert caught.value.field == "channels[3]"
    assert named in caught.value.reason
