"""A test-only ClickHouse HTTP interface that executes on chDB.

No modern ClickHouse server can be installed on the build machines (ENVIRONMENT.md), so
the ClickHouse backend is tested against this endpoint: a threaded stdlib HTTP server on
127.0.0.1 that speaks enough of the ClickHouse HTTP interface for ``clickhouse-connect``
(with ``compress=False``) and runs every statement on one chDB session in a folder.

Spoken: ``/ping``; the query in the ``query=`` URL parameter, in the body, or both (the
body is appended, as ClickHouse does); ``INSERT … FORMAT <fmt>`` with the data in the
body (fed to chDB's streaming ``send_insert``); ``param_<name>`` server-side parameters;
``database``, ``default_format`` and any other URL parameter as a query setting;
``X-ClickHouse-*`` response headers; exceptions as status 500 with
``X-ClickHouse-Exception-Code`` and ClickHouse's ``Code: N. DB::Exception: …`` body.

chDB allows one store folder per process, so tests that also open a chDB span store run
the endpoint in its own process: :class:`EndpointProcess` (``python
tests/clickhouse_endpoint.py <folder>``), which is also the more honest setup, a server
in another process.

Requests run one at a time under a lock: per-request settings and the current database
are session state in chDB, so they are set before and reset after each request.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import logging
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from chdb import session as chdb_session

__all__ = ["ChdbClickHouseEndpoint", "EndpointProcess"]

logger = logging.getLogger(__name__)

DISPLAY_NAME = "mentatlab-chdb-endpoint"
_NOT_SETTINGS = frozenset({
    "query", "database", "default_format", "query_id", "session_id", "session_timeout",
    "session_check", "compress", "decompress", "enable_http_compression", "user", "password",
    "quota_key", "buffer_size", "wait_end_of_query", "role", "client_protocol_version",
    "http_headers_progress_interval_ms", "send_progress_in_http_headers",
})
_INSERT_FORMAT = re.compile(r"^\s*(INSERT\s+INTO\s.*?)\s+FORMAT\s+(\w+)\s*$", re.I | re.S)
_TRAILING_FORMAT = re.compile(r"\sFORMAT\s+(\w+)\s*;?\s*$", re.I)
_ERROR_CODE = re.compile(r"Code:\s*(\d+)")
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class _Failure(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class ChdbClickHouseEndpoint:
    """A ClickHouse HTTP endpoint on ``127.0.0.1:<free port>`` backed by chDB in ``path``.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, path: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._session = chdb_session.Session(str(self.path))
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        version = self._session.query("SELECT version()", "TabSeparated").bytes()
        self.version = version.decode().strip()
        self._connections: set[socket.socket] = set()
        self.requests: list[dict[str, str]] = []
        """Every request's URL parameters (newest last), for tests that check what was sent."""
        endpoint = self

        class Handler(_Handler):
            owner = endpoint

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The TCP port the endpoint listens on."""
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        """The address the endpoint listens on."""
        return str(self._server.server_address[0])

    @property
    def url(self) -> str:
        """``http://host:port`` of the endpoint."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> ChdbClickHouseEndpoint:
        """Serve in a background thread; returns self."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"ch-endpoint-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open keep-alive connections, close the chDB session."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
        for connection in list(self._connections):
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the client
        with self._lock:
            self._session.close()

    def __enter__(self) -> ChdbClickHouseEndpoint:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- execution -------------------------------------------------------------------------

    def execute(self, params: Mapping[str, str], body: bytes) -> tuple[bytes, dict[str, str]]:
        """Run one HTTP request's statement; return (response body, extra headers).

        Raises:
            _Failure: the statement failed (carries the ClickHouse error code).
        """
        query = params.get("query", "")
        query_params = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        settings = {k: v for k, v in params.items()
                    if k not in _NOT_SETTINGS and not k.startswith("param_")}
        fmt = params.get("default_format") or "TabSeparated"
        with self._lock:
            try:
                self._session.query("USE " + _backquote(params.get("database") or "default"))
            except Exception as exc:
                raise _failure(exc) from exc
            applied = self._apply_settings(settings)
            try:
                insert = _INSERT_FORMAT.match(query) if query and body else None
                if insert is not None:
                    return self._insert(insert.group(1), insert.group(2), body)
                sql = f"{query}\n{body.decode()}" if query and body else (query or body.decode())
                match = _TRAILING_FORMAT.search(sql)
                if match is not None:
                    fmt = match.group(1)
                try:
                    result = self._session.query(sql, fmt, params=query_params or None)
                except Exception as exc:  # chDB raises several types; all carry "Code: N"
                    raise _failure(exc) from exc
                summary = {"read_rows": str(result.rows_read()),
                           "read_bytes": str(result.bytes_read()),
                           "written_rows": "0", "written_bytes": "0",
                           "result_rows": str(result.rows_read()),
                           "elapsed_ns": str(int(result.elapsed() * 1e9))}
                return result.bytes() or b"", {"X-ClickHouse-Format": fmt,
                                                "X-ClickHouse-Summary": json.dumps(summary)}
            finally:
                for name in applied:
                    self._session.query(f"SET {name} = DEFAULT")

    def _insert(self, statement: str, fmt: str, data: bytes) -> tuple[bytes, dict[str, str]]:
        try:
            inserter = self._session.send_insert(statement, fmt)
            inserter.append(data)
            result = inserter.finish()
        except Exception as exc:
            raise _failure(exc) from exc
        rows = getattr(result, "rows_written", 0)
        summary = {"read_rows": "0", "read_bytes": "0", "written_rows": str(rows),
                   "written_bytes": str(len(data)), "result_rows": str(rows),
                   "elapsed_ns": "0"}
        return b"", {"X-ClickHouse-Summary": json.dumps(summary)}

    def _apply_settings(self, settings: Mapping[str, str]) -> list[str]:
        applied: list[str] = []
        try:
            for name, value in settings.items():
                if not _SETTING_NAME.match(name):
                    raise _Failure(115, f"Unknown setting {name!r}")
                self._session.query(f"SET {name} = {_quote(value)}")
                applied.append(name)
        except _Failure:
            raise
        except Exception as exc:
            for name in applied:
                self._session.query(f"SET {name} = DEFAULT")
            raise _failure(exc) from exc
        return applied


def _backquote(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _failure(exc: BaseException) -> _Failure:
    text = str(exc).strip()
    match = _ERROR_CODE.search(text)
    return _Failure(int(match.group(1)) if match else 1001, text)


def _form_fields(content_type: str, body: bytes) -> dict[str, str]:
    """The fields of a ``multipart/form-data`` body, by name (text values)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            payload = part.get_payload(decode=True)
            fields[name] = payload.decode() if isinstance(payload, bytes) else ""
    return fields


class _Handler(BaseHTTPRequestHandler):
    owner: ChdbClickHouseEndpoint
    protocol_version = "HTTP/1.1"
    server_version = "ClickHouse"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle's algorithm holds the
        # body until the client's delayed ACK (~40 ms per request on Linux).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.owner._connections.add(self.connection)

    def finish(self) -> None:
        self.owner._connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        logger.debug("clickhouse endpoint: %s", format % args)

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib name
        self._reply(200, b"", {})

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._handle()

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        self._handle()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        body = self._read_body()
        if parts.path in ("/ping", "/replicas_status"):
            self._reply(200, b"Ok.\n", {})
            return
        if self.headers.get("Content-Encoding"):
            self._reply(500, b"Code: 1001. DB::Exception: compressed requests are not "
                             b"supported by this test endpoint; use compress=False\n",
                        {"X-ClickHouse-Exception-Code": "1001"})
            return
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):
            # Large bind parameters (and then the query) come as form fields, as ClickHouse's
            # HTTP interface accepts them (clickhouse-connect does so past 4 KiB of params).
            params.update(_form_fields(content_type, body))
            body = b""
        self.owner.requests.append(params)
        query_id = params.get("query_id") or str(uuid.uuid4())
        headers = {"X-ClickHouse-Query-Id": query_id,
                   "X-ClickHouse-Timezone": "UTC",
                   "X-ClickHouse-Server-Display-Name": DISPLAY_NAME}
        if params.get("session_id"):
            headers["X-ClickHouse-Session-Id"] = params["session_id"]
        try:
            payload, extra = self.owner.execute(params, body)
        except Exception as exc:  # every failure is answered, as ClickHouse does
            failure = exc if isinstance(exc, _Failure) else _failure(exc)
            message = str(failure)
            if "DB::Exception" not in message:
                message = f"Code: {failure.code}. DB::Exception: {message}"
            headers["X-ClickHouse-Exception-Code"] = str(failure.code)
            self._reply(500, f"{message} (version {self.owner.version})\n".encode(), headers)
            return
        headers.update(extra)
        self._reply(200, payload, headers)

    def _reply(self, status: int, payload: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


class EndpointProcess:
    """The endpoint in a child process of its own (it owns the chDB folder ``path``).

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, path: Path, port: int = 0) -> None:
        self.path = Path(path)
        self.host = "127.0.0.1"
        self.port = port
        self._process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` of the endpoint."""
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        """Process id of the child (0 when not started)."""
        return self._process.pid if self._process else 0

    def start(self, timeout_s: float = 60.0) -> EndpointProcess:
        """Start the child and wait (at most ``timeout_s`` s) until it listens.

        Starting again after :meth:`stop` serves the same folder on the same port.

        Raises:
            RuntimeError: the child did not report its port in time.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        log = (self.path / "endpoint.log").open("w")
        self._process = subprocess.Popen(
            [sys.executable, __file__, str(self.path / "chdb"), str(self.port)],
            stdout=subprocess.PIPE,
            stderr=log, text=True)
        log.close()
        assert self._process.stdout is not None
        deadline = time.monotonic() + timeout_s
        line = self._process.stdout.readline()  # "listening <host> <port>"
        if not line.startswith("listening ") or time.monotonic() > deadline:
            self.stop()
            raise RuntimeError(f"ClickHouse test endpoint did not start: {line!r}, see "
                               f"{self.path / 'endpoint.log'}")
        _, self.host, port = line.split()
        self.port = int(port)
        return self

    def stop(self) -> None:
        """Stop the child (SIGTERM, then SIGKILL after 10 s); idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> EndpointProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def main(argv: list[str]) -> None:
    """Serve the folder ``argv[0]`` (on port ``argv[1]``, default a free one) until
    SIGTERM/SIGINT; prints ``listening HOST PORT``."""
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    port = int(argv[1]) if len(argv) > 1 else 0
    endpoint = ChdbClickHouseEndpoint(Path(argv[0]), port=port).start()
    print(f"listening {endpoint.host} {endpoint.port}", flush=True)
    done.wait()
    endpoint.stop()


if __name__ == "__main__":
    main(sys.argv[1:])

