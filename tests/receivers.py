"""Real loopback receivers for tests: an HTTP webhook endpoint and an SMTP server.

Both listen on 127.0.0.1 on a free port, run in daemon threads, record what arrives and
stop cleanly when their ``with`` block ends::

    with WebhookReceiver() as hook, SmtpReceiver() as smtp:
        ...  # point the code under test at hook.url and (smtp.host, smtp.port)
        (request,) = hook.wait_for(1, timeout_s=5)
        (mail,) = smtp.wait_for(1, timeout_s=5)
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, TypeVar

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

_POLL_INTERVAL_S = 0.02
_T = TypeVar("_T")


def _wait_for(what: str, snapshot: Callable[[], list[_T]], count: int,
              timeout_s: float) -> list[_T]:
    deadline_s = time.monotonic() + timeout_s
    while True:
        items = snapshot()
        if len(items) >= count:
            return items
        if time.monotonic() >= deadline_s:
            raise AssertionError(f"Expected at least {count} {what} within {timeout_s} s, "
                                 f"got {len(items)}")
        time.sleep(_POLL_INTERVAL_S)


# --- HTTP ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Received:
    """One HTTP request the webhook receiver got."""

    path: str
    """The request target, query included, e.g. ``/hook?x=1``."""
    headers: dict[str, str]
    """Request headers, keys lower-case."""
    body: bytes
    """The exact body bytes."""
    method: str = "POST"

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 answering every request ``200 {"ok": true}``.

    Records every request, including those answered with a failure from :meth:`fail_next`.

    Args:
        path: the path of :attr:`url` (any path is accepted and recorded).
    """

    def __init__(self, path: str = "/hook") -> None:
        self._path = path
        self._lock = threading.Lock()
        self._requests: list[Received] = []
        self._failures: deque[tuple[int, str | None]] = deque()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="webhook-receiver", daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port><path>``."""
        return f"http://127.0.0.1:{self.port}{self._path}"

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self._server.server_address[1])

    @property
    def requests(self) -> list[Received]:
        """A copy of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def fail_next(self, n: int, status: int = 503, retry_after: str | None = None) -> None:
        """Answer the next ``n`` requests with ``status`` (and ``Retry-After`` if given)."""
        with self._lock:
            self._failures.extend([(status, retry_after)] * n)

    def wait_for(self, count: int, timeout_s: float) -> list[Received]:
        """Wait until at least ``count`` requests arrived; returns them all.

        Raises:
            AssertionError: fewer arrived within ``timeout_s`` seconds.
        """
        return _wait_for("webhook requests", lambda: self.requests, count, timeout_s)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _record(self, request: Received) -> tuple[int, str | None]:
        with self._lock:
            self._requests.append(request)
            return self._failures.popleft() if self._failures else (200, None)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {key.lower(): value for key, value in self.headers.items()}
                status, retry_after = receiver._record(
                    Received(self.path, headers, body, self.command))
                answer = b'{"ok": true}' if status < 400 else (
                    b'{"ok": false, "error": "failing on purpose"}')
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.end_headers()
                self.wfile.write(answer)

            do_POST = do_PUT = do_GET = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        return Handler


# --- SMTP ----------------------------------------------------------------------------


def envelope_recipients(message: EmailMessage) -> list[str]:
    """The envelope recipients (``RCPT TO``) the SMTP receiver recorded for ``message``."""
    return [address.strip() for address in str(message["X-RcptTo"]).split(",")]


class _Handler:
    def __init__(self, receiver: SmtpReceiver) -> None:
        self._receiver = receiver

    async def handle_DATA(self, server: SMTP, session: Session,
                          envelope: Envelope) -> str:
        if self._receiver.login is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode()
        message = BytesParser(policy=policy.default).parsebytes(data)
        # The envelope, as aiosmtpd.handlers.Message records it.
        message["X-MailFrom"] = envelope.mail_from or ""
        message["X-RcptTo"] = ", ".join(envelope.rcpt_tos)
        self._receiver._record(message)
        return "250 OK"


class _PortZeroController(Controller):
    """aiosmtpd's Controller bound to port 0 (a free port, no probe-then-bind race)."""

    def _trigger_server(self) -> None:
        # aiosmtpd connects to (hostname, self.port) once to start the SMTP protocol;
        # with port 0 it must first learn the port the server got. (aiosmtpd 1.4.)
        assert isinstance(self.server, asyncio.Server)
        self.port = int(self.server.sockets[0].getsockname()[1])
        super()._trigger_server()  # type: ignore[no-untyped-call]


class SmtpReceiver:
    """An SMTP server (aiosmtpd) on 127.0.0.1 that accepts and records every message.

    Args:
        login: when set, ``(user, password)`` the server accepts with AUTH PLAIN or LOGIN
            (offered without TLS), and ``DATA`` is refused ``530`` unless logged in.
    """

    def __init__(self, login: tuple[str, str] | None = None) -> None:
        self.login = login
        self._lock = threading.Lock()
        self._messages: list[EmailMessage] = []
        kwargs: dict[str, Any] = {}
        if login is not None:
            kwargs = {"authenticator": self._authenticate, "auth_require_tls": False}
        self._controller = _PortZeroController(_Handler(self), hostname="127.0.0.1", port=0,
                                               server_hostname="localhost", **kwargs)

    @property
    def host(self) -> str:
        """``127.0.0.1``."""
        return "127.0.0.1"

    @property
    def port(self) -> int:
        """The port the server listens on (known once started)."""
        return int(self._controller.port)

    @property
    def messages(self) -> list[EmailMessage]:
        """A copy of the messages received, oldest first.

        Each is parsed with ``email.policy.default``, plus ``X-MailFrom`` and ``X-RcptTo``
        headers holding the envelope (see :func:`envelope_recipients`).
        """
        with self._lock:
            return list(self._messages)

    def wait_for(self, count: int, timeout_s: float) -> list[EmailMessage]:
        """Wait until at least ``count`` messages arrived; returns them all.

        Raises:
            AssertionError: fewer arrived within ``timeout_s`` seconds.
        """
        return _wait_for("SMTP messages", lambda: self.messages, count, timeout_s)

    def __enter__(self) -> Self:
        self._controller.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._controller.stop()

    def _record(self, message: EmailMessage) -> None:
        with self._lock:
            self._messages.append(message)

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and self.login is not None
              and (auth_data.login.decode(), auth_data.password.decode()) == self.login)
        return AuthResult(success=ok, handled=False)
