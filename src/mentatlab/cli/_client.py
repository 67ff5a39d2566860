"""The CLI's HTTP client: base URL, API key, error answers turned into clean exits."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import typer
from rich.console import Console

__all__ = [
    "DEFAULT_URL",
    "ApiClient",
    "console",
    "err_console",
    "parse_range",
    "parse_time",
]

DEFAULT_URL = "http://127.0.0.1:4318"
"""Where ``mentatctl`` finds the server unless ``--url`` or ``MENTATLAB_URL`` says otherwise."""

console = Console()
err_console = Console(stderr=True)

_RANGE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_range(text: str) -> timedelta:
    """``"7d"`` / ``"24h"`` / ``"30m"`` / ``"90s"`` / ``"2w"`` as a timedelta.

    Raises:
        typer.BadParameter: any other form.
    """
    match = _RANGE.match(text)
    if not match:
        raise typer.BadParameter(f"Expected a range like 7d, 24h or 30m, got {text!r}")
    return timedelta(seconds=int(match.group(1)) * _UNIT_S[match.group(2)])


def parse_time(text: str) -> datetime:
    """An ISO-8601 time (UTC when no offset is given) or a range back from now (``2h``).

    Raises:
        typer.BadParameter: neither form.
    """
    if _RANGE.match(text):
        return datetime.now(UTC) - parse_range(text)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"Expected an ISO-8601 time or a range like 2h, got {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def resolve_url(url: str | None) -> str:
    """``--url``, else ``MENTATLAB_URL``, else the default."""
    return (url or os.environ.get("MENTATLAB_URL") or DEFAULT_URL).rstrip("/")


class ApiClient:
    """A thin synchronous client of the MentatLab REST API."""

    def __init__(self, url: str | None = None, api_key: str | None = None,
                 timeout_s: float = 30.0) -> None:
        self.base_url = resolve_url(url)
        key = api_key or os.environ.get("MENTATLAB_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.api_key = key
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request; on an error answer print it and exit with code 1.

        Raises:
            typer.Exit: the server answered an error or could not be reached.
        """
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            err_console.print(f"[red]Cannot reach MentatLab at {self.base_url}: {exc}[/red]")
            raise typer.Exit(1) from None
        if response.status_code >= 400:
            _print_error(response)
            raise typer.Exit(1)
        return response

    def get_json(self, path: str, **params: Any) -> Any:
        """GET ``path`` with query ``params`` (None values dropped) and decode the JSON."""
        clean = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", path, params=clean).json()

    def try_get_json(self, path: str, **params: Any) -> Any:
        """Like :meth:`get_json`, but None (nothing printed) when the answer is not a 2xx.

        For optional extras of a command (footnotes), so an older server without the
        route, or a key without access, never fails the command itself.
        """
        clean = {k: v for k, v in params.items() if v is not None}
        try:
            response = self._http.request("GET", path, params=clean)
        except httpx.HTTPError:
            return None
        if response.status_code >= 300:
            return None
        try:
            return response.json()
        except ValueError:
            return None

    def get_answer(self, path: str, **params: Any) -> tuple[int, Any]:
        """GET ``path``: the status and the decoded JSON (None if not JSON), never exiting.

        An error answer is returned, not printed, so a report can show a missing route
        (404) in place.

        Raises:
            typer.Exit: the server could not be reached.
        """
        clean = {k: v for k, v in params.items() if v is not None}
        response = self.request_raw("GET", path, params=clean)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, None

    def request_raw(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request and return any answer; exit with code 1 only when unreachable.

        Raises:
            typer.Exit: the server could not be reached.
        """
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            err_console.print(f"[red]Cannot reach MentatLab at {self.base_url}: {exc}[/red]")
            raise typer.Exit(1) from None

    def post_json(self, path: str, body: Any = None, **params: Any) -> Any:
        """POST a JSON ``body`` and decode the JSON answer."""
        clean = {k: v for k, v in params.items() if v is not None}
        return self.request("POST", path, json=body, params=clean).json()

    def ws_url(self, path: str) -> str:
        """The ``ws://`` (or ``wss://``) URL of a WebSocket route."""
        return "ws" + self.base_url.removeprefix("http") + path


def _print_error(response: httpx.Response) -> None:
    try:
        body = response.json()
    except ValueError:
        err_console.print(f"[red]HTTP {response.status_code}: {response.text[:500]}[/red]")
        return
    err_console.print(f"[red]HTTP {response.status_code}: {body.get('error', body)}[/red]")
    for item in body.get("errors", []) or []:
        err_console.print(f"  [red]{item.get('field')}: {item.get('reason')}[/red]")
