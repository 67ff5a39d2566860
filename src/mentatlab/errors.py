"""MentatLab's exception tree.

Every error MentatLab raises on purpose derives from :class:`MentatLabError`::

    MentatLabError
    ├── ConfigError (ValueError)        bad setting, pricing file or CLI option
    ├── DecodeError                     a body that cannot be decoded (OTLP, JSON, gzip)
    │   ├── PayloadTooLarge             body or decompressed body over the size limit
    │   ├── UnsupportedMediaType        a Content-Type or Content-Encoding we do not read
    │   └── FilterError                 a filter expression that cannot be read (HTTP 400)
    ├── Unauthenticated                 credentials missing, unknown, revoked or expired (401)
    ├── Forbidden                       a known caller asking for more than it holds (403)
    ├── RateLimited                     a quota or rate limit exceeded (429, Retry-After)
    ├── ValidationError                 a decoded value that breaks a rule; carries field, reason
    │   └── InvalidBatch                several refused values of one request (HTTP 422)
    ├── PricingError
    │   └── PriceNotFound (LookupError) no price for a (provider, model)
    ├── StoreError
    │   ├── StoreUnavailable            the span or control store cannot take a write now
    │   └── QueryTimeout                a query ran past its time limit
    ├── Backpressure                    the ingest buffer is full; retry after a delay
    ├── BudgetExceeded
    ├── PolicyBlocked
    └── PluginDidNotLoad
"""

from __future__ import annotations

__all__ = [
    "Backpressure",
    "BudgetExceeded",
    "ConfigError",
    "DecodeError",
    "FieldError",
    "FilterError",
    "Forbidden",
    "InvalidBatch",
    "MentatLabError",
    "PayloadTooLarge",
    "PluginDidNotLoad",
    "PolicyBlocked",
    "PriceNotFound",
    "PricingError",
    "QueryTimeout",
    "RateLimited",
    "StoreError",
    "StoreUnavailable",
    "Unauthenticated",
    "UnsupportedMediaType",
    "ValidationError",
]

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    """One field/reason pair of an error answer."""

    field: str
    """Dotted path of the offending field, e.g. ``resourceSpans[0].spans[3].traceId``."""
    reason: str
    """Why the value was refused, naming the value where that helps."""


class MentatLabError(Exception):
    """Root of every error MentatLab raises on purpose."""


class ConfigError(MentatLabError, ValueError):
    """Raised when a setting, the pricing file or a CLI option has a bad value."""


class DecodeError(MentatLabError):
    """Raised when a request body cannot be decoded at all (HTTP 400)."""


class PayloadTooLarge(DecodeError):
    """Raised when a body, or its decompressed form, exceeds the size limit (HTTP 413)."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(f"Expected a body of at most {limit_bytes} bytes, got more")
        self.limit_bytes = limit_bytes


class UnsupportedMediaType(DecodeError):
    """Raised for a Content-Type or Content-Encoding the receiver cannot read (HTTP 415)."""

    def __init__(self, header: str, value: str | None, supported: str) -> None:
        super().__init__(f"Expected {header} to be one of {supported}, got {value!r}")
        self.header = header
        self.value = value


class ValidationError(MentatLabError):
    """Raised when decoded input breaks a rule; carries the field and the reason."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    @property
    def errors(self) -> list[FieldError]:
        """The error as a list of one field/reason pair."""
        return [FieldError(self.field, self.reason)]


class InvalidBatch(ValidationError):
    """Raised when a request is refused as a whole because some of its items are invalid.

    Carries every offending field (HTTP 422 listing them all).
    """

    def __init__(self, errors: list[FieldError]) -> None:
        first = errors[0] if errors else FieldError("", "invalid")
        super().__init__(first.field, f"{first.reason} ({len(errors)} errors in all)")
        self._errors = list(errors)

    @property
    def errors(self) -> list[FieldError]:
        """Every field/reason pair."""
        return list(self._errors)


class FilterError(DecodeError):
    """Raised when a filter expression cannot be read or names an unknown field (HTTP 400).

    Carries one field/reason pair per bad condition (``filter.<name>``).
    """

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.reason}" for e in errors))
        self.errors = list(errors)


class Unauthenticated(MentatLabError):
    """Raised when a route needs a caller and the credentials are missing or invalid (401)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.errors = [FieldError("authorization", reason)]


class Forbidden(MentatLabError):
    """Raised when the caller is known but may not do this (HTTP 403).

    Carries the field that asks for more than the caller holds (``org_id``, ``role``,
    ``filter.org_id``, ``authorization``...) and why.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.errors = [FieldError(field, reason)]


class RateLimited(MentatLabError):
    """Raised when a quota or rate limit is exceeded (HTTP 429 with ``Retry-After``)."""

    def __init__(self, limit: str, retry_after_s: int) -> None:
        super().__init__(f"Rate limit {limit} exceeded; retry after {retry_after_s} s")
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.errors = [FieldError("rate_limit", f"{limit} exceeded")]


class PricingError(MentatLabError):
    """Raised when a cost cannot be computed."""


class PriceNotFound(PricingError, LookupError):
    """Raised when no price is known for a (provider, model)."""

    def __init__(self, provider: str | None, model: str) -> None:
        super().__init__(f"No price for provider={provider!r} model={model!r}")
        self.provider = provider
        self.model = model


class StoreError(MentatLabError):
    """Raised when the span store or control store fails."""


class StoreUnavailable(StoreError):
    """Raised when a store cannot take a write now (HTTP 503)."""


class QueryTimeout(StoreError):
    """Raised when a query exceeds its time limit."""


class Backpressure(MentatLabError):
    """Raised when the ingest buffer is full (HTTP 429/503 with ``Retry-After``)."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"Ingest buffer full; retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


class BudgetExceeded(MentatLabError):
    """Raised when an operation would exceed a budget."""


class PolicyBlocked(MentatLabError):
    """Raised when a guardrail policy blocks an operation (``mentatlab.guard``).

    ``decisions`` lists the matches the server answered (dicts with ``policy_id``,
    ``version``, ``action``, ``name``, ``severity``, ``overridden``); empty when the
    check could not be made and the guard fails closed (``unavailable`` True).
    """

    def __init__(self, message: str, decisions: tuple[dict[str, object], ...] = (),
                 *, unavailable: bool = False) -> None:
        super().__init__(message)
        self.decisions = decisions
        self.unavailable = unavailable


class PluginDidNotLoad(MentatLabError):
    """Raised when an entry-point plugin fails to load."""
