"""The one JSON error shape of the REST API and the exception → response mapping.

Every non-OTLP route answers an error with::

    {"ok": false, "status": 422, "error": "…", "errors": [{"field": "…", "reason": "…"}]}

Bad input is always a 4xx; a full ingest buffer is 503 with ``Retry-After``; a store
that cannot answer is 503. Nothing a client sends yields a 500. The mapping is one table,
:data:`ERROR_STATUSES`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from mentatlab.errors import (
    Backpressure,
    ConfigError,
    DecodeError,
    FieldError,
    Forbidden,
    MentatLabError,
    PayloadTooLarge,
    PricingError,
    QueryTimeout,
    RateLimited,
    StoreError,
    StoreUnavailable,
    Unauthenticated,
    UnsupportedMediaType,
    ValidationError,
)

__all__ = [
    "ApiError",
    "ErrorBody",
    "FieldErrorBody",
    "ERROR_STATUSES",
    "count_unhandled",
    "count_unmapped",
    "error_response",
    "error_responses",
    "field_errors",
    "install_error_handlers",
    "is_mapped",
    "status_for",
]

_log = logging.getLogger(__name__)


class FieldErrorBody(BaseModel):
    """One field/reason pair."""

    field: str
    reason: str


class ErrorBody(BaseModel):
    """The JSON error body of every REST route."""

    ok: bool = False
    status: int
    error: str
    errors: list[FieldErrorBody] = []


class ApiError(MentatLabError):
    """An error answer with an explicit HTTP status and field errors."""

    def __init__(self, status: int, error: str, errors: Sequence[FieldError] = (),
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.errors = list(errors)
        self.headers = headers or {}


STORE_RETRY_AFTER_S = 1
"""``Retry-After`` (s) of a 503 for an unavailable store, where no setting says otherwise."""


ERROR_STATUSES: tuple[tuple[type[BaseException], int], ...] = (
    (UnsupportedMediaType, 415),
    (PayloadTooLarge, 413),
    (DecodeError, 400),
    (ValidationError, 422),
    (ConfigError, 400),
    (PricingError, 422),
    (Unauthenticated, 401),
    (Forbidden, 403),
    (RateLimited, 429),
    (Backpressure, 503),
    (QueryTimeout, 504),
    (StoreUnavailable, 503),
    (StoreError, 503),
)
"""The error table: exception type → HTTP status, first match wins (subclasses first).

Store errors mean the same on both backends (:mod:`mentatlab.storage.store_errors`).
An exception not in this table is a bug: answered 500, logged with its traceback and
counted in ``mentatlab_unhandled_errors_total`` (:func:`count_unmapped`).
"""


def is_mapped(exc: BaseException) -> bool:
    """Whether the error table (or an explicit :class:`ApiError`) gives ``exc`` a status.

    An exception that is not mapped is a bug, whatever a handler turned it into.
    """
    return isinstance(exc, ApiError) or any(isinstance(exc, kind) for kind, _ in ERROR_STATUSES)


def count_unmapped(request: Request, exc: BaseException) -> None:
    """Count ``exc`` in ``mentatlab_unhandled_errors_total`` when the error table lacks it.

    The fuzzing suite asserts this counter stays at zero, so a catch-all cannot hide a bug.
    """
    if not is_mapped(exc):
        count_unhandled(request, exc)


def count_unhandled(request: Request, exc: BaseException) -> None:
    """Count ``exc`` in ``mentatlab_unhandled_errors_total``: it was answered as a bug (500)."""
    state = getattr(request.app.state, "mentat", None)
    if state is not None:
        state.metrics.unhandled_errors.labels(type(exc).__name__).inc()


def status_for(exc: BaseException) -> int:
    """The HTTP status for an exception raised while handling a request.

    Args:
        exc: the exception.

    Returns:
        An HTTP status code from :data:`ERROR_STATUSES` (500 only for a bug).
    """
    if isinstance(exc, ApiError):
        return exc.status
    for kind, status in ERROR_STATUSES:
        if isinstance(exc, kind):
            return status
    return 500


def field_errors(exc: BaseException) -> list[FieldError]:
    """The field/reason pairs an exception carries (empty when it names no field)."""
    if isinstance(exc, ApiError):
        return exc.errors
    if isinstance(exc, UnsupportedMediaType):
        return [FieldError(exc.header, str(exc))]
    errors: Any = getattr(exc, "errors", None)
    if isinstance(errors, list) and all(isinstance(e, FieldError) for e in errors):
        return list(errors)
    return []


def error_response(status: int, error: str, errors: Iterable[FieldError] = (),
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """Build the one JSON error shape.

    Args:
        status: HTTP status code.
        error: a one-line human message.
        errors: field/reason pairs.
        headers: extra response headers (``Retry-After``...).
    """
    body = {"ok": False, "status": status, "error": error,
            "errors": [{"field": e.field, "reason": e.reason} for e in errors]}
    return JSONResponse(body, status_code=status, headers=headers)


def exception_response(exc: BaseException) -> JSONResponse:
    """Map any exception to the JSON error shape (logging real bugs)."""
    status = status_for(exc)
    headers: dict[str, str] = dict(getattr(exc, "headers", None) or {})
    if isinstance(exc, (Backpressure, RateLimited)):
        headers["Retry-After"] = str(exc.retry_after_s)
    elif isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    elif status == 503:
        headers.setdefault("Retry-After", str(STORE_RETRY_AFTER_S))
    if status >= 500 and not isinstance(exc, (StoreError, Backpressure)):
        _log.exception("Unhandled error while serving a request", exc_info=exc)
        return error_response(500, "Internal server error")
    message = exc.error if isinstance(exc, ApiError) else str(exc)
    return error_response(status, message, field_errors(exc), headers)


def _loc_to_field(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("query", "path", "body", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "request"


async def _on_mentat_error(request: Request, exc: Exception) -> Response:
    count_unmapped(request, exc)
    return exception_response(exc)


async def _on_request_validation(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [FieldError(_loc_to_field(e.get("loc", ())), str(e.get("msg", "invalid")))
              for e in exc.errors()]
    return error_response(422, "Invalid request", errors)


async def _on_http_exception(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(exc.status_code, str(exc.detail), (), dict(exc.headers or {}))


async def _on_any(request: Request, exc: Exception) -> Response:
    count_unmapped(request, exc)
    return exception_response(exc)


def install_error_handlers(app: FastAPI) -> None:
    """Register the exception handlers that produce the one JSON error shape."""
    app.add_exception_handler(MentatLabError, _on_mentat_error)
    app.add_exception_handler(RequestValidationError, _on_request_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(Exception, _on_any)


_REASONS = {
    400: "Bad request: a parameter or body that cannot be read",
    401: "Missing, unknown, revoked or expired credential",
    403: "The caller's role or scope does not allow this",
    404: "Not found",
    413: "Body larger than the limit",
    415: "Unsupported Content-Type or Content-Encoding",
    422: "A value that breaks a rule",
    429: "Over a quota or rate limit; retry after `Retry-After` seconds",
    503: "Ingest buffer full or store unavailable; retry after `Retry-After` seconds",
    504: "Query ran past its time limit",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting each error status with ErrorBody."""
    return {s: {"model": ErrorBody, "description": _REASONS.get(s, "Error")} for s in statuses}
