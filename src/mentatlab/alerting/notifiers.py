"""Notifiers: deliver one alert notification to a webhook, a Slack incoming webhook or email.

A rule names its destinations as channel strings (:func:`parse_channel`)::

    webhook:https://ops.example.org/hooks/mentatlab
    slack:https://hooks.slack.com/services/T0001/B0001/your-webhook-token
    email:ops@example.org,finance@example.org

:func:`deliver` sends one :class:`Notification` to one :class:`Channel` and blocks until
the receiver answered (the evaluator calls it from its worker thread and owns retries).
Every failure is a :class:`DeliveryError` saying whether a retry may succeed.

Webhook requests carry ``Idempotency-Key: <alert_id>``: a retry after a lost answer sends
the same key and the same body, so a receiver can drop the redelivery. With
``NotifierConfig.webhook_secret`` set they are also signed (webhook only; a Slack URL is
its own secret)::

    X-MentatLab-Timestamp: <unix seconds when the request was sent>
    X-MentatLab-Signature: sha256=<hex HMAC-SHA256(key=secret, msg=b"<timestamp>." + body)>

A receiver verifies a request over the raw body bytes, before parsing them, compares in
constant time, and refuses stale timestamps (a replayed request)::

    signed = timestamp.encode() + b"." + body
    expected = "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    ok = hmac.compare_digest(expected, request.headers["X-MentatLab-Signature"])
    ok = ok and abs(time.time() - int(timestamp)) <= 300

The scheme is Stripe's and Slack's (timestamp, a dot, the body); within the allowed age
a redelivery is dropped by its ``Idempotency-Key``.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import smtplib
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.message import EmailMessage
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

import httpx
import orjson

from mentatlab.errors import MentatLabError, ValidationError
from mentatlab.retry_after import parse_retry_after_s

__all__ = [
    "Channel",
    "ChannelKind",
    "DeliveryError",
    "Notification",
    "NotifierConfig",
    "deliver",
    "parse_channel",
    "redact_channel",
]

ChannelKind = Literal["webhook", "slack", "email"]
"""Where a notification goes: an HTTP webhook, a Slack incoming webhook, or email."""

USER_AGENT = "mentatlab-alerts/0.1"
"""``User-Agent`` of webhook and Slack requests."""
SIGNATURE_HEADER = "X-MentatLab-Signature"
"""``sha256=<hex HMAC-SHA256 of "<timestamp>." + body>``, sent when ``webhook_secret`` is set."""
TIMESTAMP_HEADER = "X-MentatLab-Timestamp"
"""Unix seconds when a signed webhook request was sent."""

_KINDS: tuple[str, ...] = get_args(ChannelKind)
_RETRYABLE_HTTP = frozenset({408, 429})
_SLACK_MAX_FIELD_CHARS = 2000  # Block Kit: a section field holds at most 2000 characters
_SLACK_MAX_TEXT_CHARS = 3000  # Block Kit: a section text holds at most 3000 characters
_ANSWER_EXCERPT_CHARS = 200


@dataclass(frozen=True, slots=True)
class Channel:
    """One destination of a rule's notifications (build it with :func:`parse_channel`)."""

    kind: ChannelKind
    """``webhook``, ``slack`` or ``email``."""
    target: str
    """webhook and slack: an http(s) URL; email: comma-separated addresses."""

    def __str__(self) -> str:
        """The channel string, e.g. ``email:a@x.org,b@y.org`` (parses back to ``self``)."""
        return f"{self.kind}:{self.target}"

    def redacted(self) -> str:
        """The channel as shown to people: a URL cut to ``scheme://host[:port]``.

        Slack and many webhook URLs carry a secret in the path or query; email addresses
        are shown unchanged.
        """
        return str(self) if self.kind == "email" else f"{self.kind}:{_redacted(self.target)}"


def parse_channel(text: str, field: str = "channels") -> Channel:
    """Parse a channel string ``kind:target``; surrounding whitespace is ignored.

    Forms: ``webhook:<http(s) URL>``, ``slack:<http(s) URL>`` and
    ``email:<address>[,<address>...]`` (bare addresses, no display names).

    Args:
        text: the channel string.
        field: the field named in a :class:`ValidationError`, e.g. ``channels[2]``.

    Returns:
        The channel, its target stripped (email: addresses joined by ``,``).

    Raises:
        ValidationError: unknown kind, missing target, a URL that is not http or https
            with a host, or an address without exactly one ``@`` and a dot in its domain.
    """
    stripped = text.strip()
    kind, sep, target = stripped.partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in _KINDS:
        raise ValidationError(field, f"Expected a channel 'kind:target' with kind one of "
                                     f"{', '.join(_KINDS)}, got {text!r}")
    target = target.strip()
    if not target:
        raise ValidationError(field, f"Expected a target after '{kind}:', got {text!r}")
    if kind == "email":
        return Channel("email", ",".join(_check_addresses(target, field)))
    _check_url(target, field)
    return Channel("webhook" if kind == "webhook" else "slack", target)


def _check_url(url: str, field: str) -> None:
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise ValidationError(field, f"Expected an http or https URL, got {url!r} "
                                     f"({exc})") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname or any(
            char.isspace() for char in url):
        raise ValidationError(field, f"Expected an http or https URL with a host, got {url!r}")


def _check_addresses(target: str, field: str) -> list[str]:
    addresses = [address.strip() for address in target.split(",")]
    for address in addresses:
        _name, parsed = email.utils.parseaddr(address)
        local, _, domain = parsed.rpartition("@")
        if (parsed != address or parsed.count("@") != 1 or not local or "." not in domain
                or domain.startswith(".") or domain.endswith(".")):
            raise ValidationError(field, f"Expected an email address like ops@example.org, "
                                         f"got {address!r} in {target!r}")
    return addresses


@dataclass(frozen=True, slots=True)
class Notification:
    """One alert state change to announce (built by the evaluator from a stored alert)."""

    alert_id: str
    """The alert's id; webhooks send it as ``Idempotency-Key``."""
    rule_id: str
    rule_name: str
    org_id: str
    """The rule's organisation; ``""`` for a global rule."""
    rule_kind: str
    """``budget``, ``threshold`` or ``security_signal``."""
    state: str
    """``firing`` or ``resolved``."""
    metric: str
    """What was measured, e.g. ``cost``, ``error_rate``, ``latency_p95_ms``; for a
    ``security_signal`` rule the finding's kind (``new_tool``...), its count as ``value``
    and the rule's lowest severity (1 low, 2 medium, 3 high) as ``threshold``."""
    value: Decimal
    """The measured value, in the metric's unit (USD for ``cost``)."""
    threshold: Decimal
    """The value it was compared to, in the same unit."""
    filters: dict[str, str]
    """The rule's scope, e.g. ``{"project_id": "p1"}``; empty for everything."""
    window_start: datetime
    """Start of the evaluated range, UTC (a naive value is read as UTC)."""
    window_end: datetime
    """End of the evaluated range, UTC."""
    message: str
    """One human line, made by the evaluator."""
    created_at: datetime
    """When the alert was raised, UTC."""

    def to_json(self) -> dict[str, Any]:
        """The notification as a JSON-ready dict (the webhook body).

        Returns:
            The fields above plus ``"source": "mentatlab"``; ``value`` and ``threshold`` as
            exact decimal strings as given, scale kept (``"12.345678901"``, ``"10.00"``;
            never floats or exponents) and
            datetimes as ISO-8601 UTC ending in ``Z``.
        """
        return {
            "source": "mentatlab",
            "alert_id": self.alert_id,
            "rule_id": self.rule_id,
            "rule_name": self.rule_name,
            "org_id": self.org_id,
            "rule_kind": self.rule_kind,
            "state": self.state,
            "metric": self.metric,
            "value": _decimal_text(self.value),
            "threshold": _decimal_text(self.threshold),
            "filters": dict(self.filters),
            "window_start": _iso_utc(self.window_start),
            "window_end": _iso_utc(self.window_end),
            "message": self.message,
            "created_at": _iso_utc(self.created_at),
        }


def _decimal_text(value: Decimal) -> str:
    """Exact positional form, scale kept: ``1E+3`` is ``"1000"``, ``0.5500`` ``"0.5500"``."""
    return format(value, "f")


def _as_utc(moment: datetime) -> datetime:
    # The control store may hand back naive datetimes (SQLite); they are UTC by convention.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso_utc(moment: datetime) -> str:
    return _as_utc(moment).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class NotifierConfig:
    """SMTP, signing and timeout settings of the notifiers (from ``Settings``)."""

    smtp_host: str = "127.0.0.1"
    """SMTP server host of email channels."""
    smtp_port: int = 25
    """SMTP server port."""
    smtp_from: str = "mentatlab@localhost"
    """``From`` of alert mail (an address, or ``Name <address>``); also the envelope sender."""
    smtp_username: str = ""
    """SMTP login user; empty: no login."""
    smtp_password: str = ""
    """SMTP login password."""
    smtp_starttls: bool = False
    """Upgrade the SMTP connection with STARTTLS (certificate verified) before login."""
    webhook_secret: str = ""
    """HMAC-SHA256 key signing webhook bodies (see the module docstring); empty: unsigned."""
    timeout_s: float = 10.0
    """Timeout of one delivery step (connect, each read or write), in seconds."""


class DeliveryError(MentatLabError):
    """Raised when a notification could not be delivered.

    Attributes:
        retryable: True when a later attempt may succeed: connection errors, timeouts,
            HTTP 408, 429 and 5xx, SMTP 4xx. False for other HTTP 4xx, SMTP 5xx and
            invalid channels.
        retry_after_s: the delay the receiver asked for (``Retry-After``), in seconds.
    """

    def __init__(self, message: str, *, retryable: bool,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


def deliver(channel: Channel, notification: Notification, config: NotifierConfig) -> None:
    """Send one notification to one channel; blocks until the receiver answered.

    webhook: ``POST`` of :meth:`Notification.to_json` as JSON, with ``Idempotency-Key``
    and, when ``config.webhook_secret`` is set, the signature headers. slack: ``POST`` of
    a Slack incoming-webhook message (``text`` plus a Block Kit section). email: one
    plain-text message to all the channel's addresses over SMTP. Any 2xx answer (HTTP)
    or an accepted ``DATA`` (SMTP) counts as delivered; redirects are not followed.

    Args:
        channel: where to send (re-checked as by :func:`parse_channel`).
        notification: what to send.
        config: SMTP server, webhook secret and timeout (``timeout_s``, seconds).

    Raises:
        DeliveryError: for every failure, never another exception; ``retryable`` says
            whether to try again, ``retry_after_s`` when the receiver said when.
    """
    try:
        checked = parse_channel(str(channel))
        if checked.kind == "email":
            recipients = [address.strip() for address in checked.target.split(",")]
            _send_email(recipients, notification, config)
        elif checked.kind == "slack":
            _post(checked.target, orjson.dumps(_slack_message(notification)),
                  {"Content-Type": "application/json", "User-Agent": USER_AGENT}, config)
        else:
            body = orjson.dumps(notification.to_json())
            _post(checked.target, body, _webhook_headers(body, notification, config), config)
    except DeliveryError:
        raise
    except ValidationError as exc:
        raise DeliveryError(f"Invalid channel {channel.kind!r}: {exc.reason}",
                            retryable=False) from exc
    except Exception as exc:  # noqa: BLE001 — the contract: only DeliveryError leaves here
        raise DeliveryError(f"Delivery to a {channel.kind} channel failed: {exc!r}",
                            retryable=False) from exc


# --- HTTP: webhook and Slack ---------------------------------------------------------


def _webhook_headers(body: bytes, notification: Notification,
                     config: NotifierConfig) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               "Idempotency-Key": notification.alert_id}
    if config.webhook_secret:
        timestamp = str(int(time.time()))
        signed = timestamp.encode() + b"." + body
        digest = hmac.new(config.webhook_secret.encode(), signed, hashlib.sha256).hexdigest()
        headers[SIGNATURE_HEADER] = f"sha256={digest}"
        headers[TIMESTAMP_HEADER] = timestamp
    return headers


def _post(url: str, body: bytes, headers: dict[str, str], config: NotifierConfig) -> None:
    """POST ``body``; return on 2xx, raise :class:`DeliveryError` otherwise."""
    where = _redacted(url)
    # A bare transport, not an httpx.Client: the client logs every request's full URL at
    # INFO ("HTTP Request: POST ..."), and the URL carries the channel's secret.
    request = httpx.Request("POST", url, content=body, headers=headers, extensions={
        "timeout": httpx.Timeout(config.timeout_s).as_dict()})
    try:
        with httpx.HTTPTransport() as transport:
            response = transport.handle_request(request)
            response.read()
    except httpx.UnsupportedProtocol as exc:
        raise DeliveryError(f"Cannot POST to {where}: {exc}", retryable=False) from exc
    except httpx.TransportError as exc:  # connect, read, write, timeouts, broken answers
        raise DeliveryError(f"POST to {where} failed: {type(exc).__name__}: {exc}",
                            retryable=True) from exc
    status = response.status_code
    if 200 <= status < 300:
        return
    excerpt = " ".join(response.text[:_ANSWER_EXCERPT_CHARS].split())
    raise DeliveryError(
        f"Expected a 2xx answer from {where}, got HTTP {status}"
        + (f": {excerpt}" if excerpt else ""),
        retryable=status in _RETRYABLE_HTTP or status >= 500,
        retry_after_s=parse_retry_after_s(response.headers.get("Retry-After")))


def redact_channel(text: str, message: str | None = None) -> str:
    """A channel string, or a ``message`` about it, with the channel's URL cut to its origin.

    Works on any stored channel string, parseable or not: for webhook and Slack channels
    every occurrence of the target URL (which may carry a secret token in its path or
    query) becomes ``scheme://host[:port]``; email channels are left unchanged.

    Args:
        text: the channel string, ``kind:target``.
        message: a text that may quote the target (an error message); default ``text``.

    Returns:
        ``message`` (or ``text``) without the secret part of the channel's URL.
    """
    out = text if message is None else message
    kind, _, target = text.strip().partition(":")
    target = target.strip()
    if kind.strip().lower() == "email" or not target:
        return out
    return out.replace(target, _redacted(target))


def _redacted(url: str) -> str:
    """``scheme://host[:port]``: Slack and many webhook URLs carry a secret in the path."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port
    except ValueError:  # not a URL (an invalid port, an unclosed IPv6 bracket)
        return "<invalid URL>"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def _display(notification: Notification, value: Decimal) -> str:
    """A value for humans: exact, with ``USD`` for money."""
    return f"{_decimal_text(value)} USD" if notification.metric == "cost" else _decimal_text(
        value)


def _scope_text(filters: dict[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted(filters.items())) or "everything"


def _window_text(notification: Notification) -> str:
    return f"{_iso_utc(notification.window_start)} to {_iso_utc(notification.window_end)}"


def _slack_escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_message(notification: Notification) -> dict[str, Any]:
    """A Slack incoming-webhook message: fallback ``text`` plus one Block Kit section.

    Format: https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks
    and https://docs.slack.dev/reference/block-kit/blocks/section-block (``text`` at most
    3000 characters; at most 10 ``fields`` of at most 2000 characters each).
    """
    n = notification
    state = n.state.upper()
    value, threshold = _display(n, n.value), _display(n, n.threshold)
    text = _slack_escape(f"MentatLab {state}: {n.rule_name}: {n.metric} = {value} "
                         f"(threshold {threshold})")
    fields = [("Metric", n.metric), ("Value", value), ("Threshold", threshold),
              ("Scope", _scope_text(n.filters)), ("Window (UTC)", _window_text(n)),
              ("Alert", n.alert_id)]
    if n.org_id:
        fields.append(("Organisation", n.org_id))
    section = {
        "type": "section",
        "text": {"type": "mrkdwn",
                 "text": _clip(f"*{state}* · *{_slack_escape(n.rule_name)}*\n"
                               f"{_slack_escape(n.message)}", _SLACK_MAX_TEXT_CHARS)},
        "fields": [{"type": "mrkdwn",
                    "text": _clip(f"*{label}*\n{_slack_escape(body)}", _SLACK_MAX_FIELD_CHARS)}
                   for label, body in fields],
    }
    return {"text": text, "blocks": [section]}


def _clip(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[:max_chars - 1] + "…"


# --- email ---------------------------------------------------------------------------


def _email_message(recipients: list[str], notification: Notification,
                   config: NotifierConfig) -> EmailMessage:
    n = notification
    _name, sender = email.utils.parseaddr(config.smtp_from)
    domain = sender.rpartition("@")[2] or "mentatlab"
    # Stable across retries, so mail clients can fold a redelivery into the first copy.
    local = "".join(c if c.isalnum() or c in "-._" else "-" for c in n.alert_id) or "alert"
    message = EmailMessage()
    message["Subject"] = f"[MentatLab] {n.state.upper()}: {n.rule_name}"
    message["From"] = config.smtp_from
    message["To"] = ", ".join(recipients)
    message["Date"] = email.utils.format_datetime(_as_utc(n.created_at))
    message["Message-ID"] = f"<alert-{local}@{domain}>"
    message["X-MentatLab-Alert-Id"] = n.alert_id
    lines = [
        n.message,
        "",
        f"State:      {n.state}",
        f"Rule:       {n.rule_name} ({n.rule_kind}, id {n.rule_id})",
        f"Org:        {n.org_id or '(global rule)'}",
        f"Metric:     {n.metric}",
        f"Value:      {_display(n, n.value)}",
        f"Threshold:  {_display(n, n.threshold)}",
        f"Scope:      {_scope_text(n.filters)}",
        f"Window:     {_window_text(n)} (UTC)",
        f"Alert id:   {n.alert_id}",
        f"Raised at:  {_iso_utc(n.created_at)}",
        "",
        "-- ",
        "Sent by MentatLab alerting.",
    ]
    message.set_content("\n".join(lines) + "\n")
    return message


def _send_email(recipients: list[str], notification: Notification,
                config: NotifierConfig) -> None:
    """Send one message to all ``recipients`` through ``config.smtp_host``."""
    message = _email_message(recipients, notification, config)
    sender = email.utils.parseaddr(config.smtp_from)[1] or config.smtp_from
    where = f"SMTP {config.smtp_host}:{config.smtp_port}"
    try:
        with smtplib.SMTP(config.smtp_host, config.smtp_port,
                          timeout=config.timeout_s) as smtp:
            if config.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if config.smtp_username:
                smtp.login(config.smtp_username, config.smtp_password)
            refused = smtp.send_message(message, from_addr=sender, to_addrs=recipients)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        raise DeliveryError(f"{where} refused every recipient: {_refusals(exc.recipients)}",
                            retryable=all(400 <= code < 500 for code in codes)) from exc
    except smtplib.SMTPResponseException as exc:  # sender refused, DATA refused, login
        reply = exc.smtp_error.decode(errors="replace") if isinstance(
            exc.smtp_error, bytes) else str(exc.smtp_error)
        raise DeliveryError(f"{where} answered {exc.smtp_code} {reply}",
                            retryable=400 <= exc.smtp_code < 500) from exc
    except smtplib.SMTPNotSupportedError as exc:  # no STARTTLS or AUTH: a setup problem
        raise DeliveryError(f"{where}: {exc}", retryable=False) from exc
    except ssl.SSLCertVerificationError as exc:
        raise DeliveryError(f"{where}: TLS certificate not trusted: {exc}",
                            retryable=False) from exc
    except (smtplib.SMTPException, OSError) as exc:  # disconnects, refused, timeouts
        raise DeliveryError(f"{where} failed: {type(exc).__name__}: {exc}",
                            retryable=True) from exc
    if refused:
        # The others accepted it: a retry would send them a second copy.
        raise DeliveryError(f"{where} refused some recipients (the others got the "
                            f"message): {_refusals(refused)}", retryable=False)


def _refusals(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{address}: {code} {reply.decode(errors='replace')}"
                     for address, (code, reply) in refused.items())
