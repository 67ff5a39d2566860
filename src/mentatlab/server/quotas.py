"""Quotas and rate limits per API key (or person) and per org: token buckets in memory.

Three kinds, each with a limit per key (or signed-in person) and per org (0 = unlimited):

* ``ingest_requests`` — ingest requests per second (OTLP/HTTP, OTLP/gRPC, the event API);
* ``ingest_spans`` — spans per minute, counted once a request is decoded (its batch size):
  a batch over the remaining budget is refused whole, before anything of it is stored or
  acknowledged, so nothing acknowledged is ever dropped;
* ``queries`` — read requests per minute (analytics and trace reads, alert reads, the audit
  log, each live-stream connect, exports): every route needing a read permission.

Callers without a credential on an installation with auth off are not limited: there is
no key to count against, and that is a developer's own machine.

An org may have its own limits (for itself and each of its keys) in the control store
(:class:`~mentatlab.storage.control.quotas.QuotaOverrides`, ``mentatctl quotas``); every
server reads them every ``quota_refresh_s`` (:func:`refresh_overrides`), never per request.

A refusal raises :class:`~mentatlab.errors.RateLimited` with ``retry_after_s``, the whole
seconds (at least 1) until the request would fit; the routes answer 429 with
``Retry-After`` (OTLP/gRPC: RESOURCE_EXHAUSTED with RetryInfo), and
``mentatlab_rate_limited_total{kind, scope}`` counts it.

Each bucket holds up to one period of its limit (1 s of requests, 1 min of spans or queries)
and refills continuously. A batch larger than a whole period's budget passes when the
bucket is full and leaves it in debt, so an oversized batch is slowed, never refused
forever. Each server process keeps its own buckets (no control-store round trip per
request): with N processes behind a balancer a caller may get up to N times the limit
(docs/security.md, "Quotas and rate limits").

Why home-made rather than the ``limits`` package: its strategies are windows (fixed,
moving, sliding counter) that read the wall clock, with no clock to inject in tests; the
token bucket here is a few float operations per check, checks the key and the org before
taking from either, and gives ``Retry-After`` directly (it is the product's own metering).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import anyio.to_thread

from mentatlab.access.principal import Principal
from mentatlab.access.roles import Permission
from mentatlab.errors import ConfigError, RateLimited, StoreError
from mentatlab.server.metrics import ServerMetrics
from mentatlab.settings import Settings

if TYPE_CHECKING:
    from mentatlab.storage.control import ControlStore

__all__ = ["QUERY_PERMISSIONS", "QuotaKind", "QuotaLimits", "Quotas", "TokenBucket",
           "refresh_overrides"]

_log = logging.getLogger(__name__)

QUERY_PERMISSIONS = frozenset({Permission.READ_USAGE, Permission.READ_SPANS,
                               Permission.READ_ALERTS, Permission.READ_AUDIT})
"""Routes needing one of these count as queries."""
_MAX_BUCKETS = 100_000
"""Buckets kept per kind and scope before they are all forgotten (full again)."""


class QuotaKind(StrEnum):
    """What a limit counts (the ``kind`` label of ``mentatlab_rate_limited_total``)."""

    INGEST_REQUESTS = "ingest_requests"
    INGEST_SPANS = "ingest_spans"
    QUERIES = "queries"


_PERIOD_S = {QuotaKind.INGEST_REQUESTS: 1.0, QuotaKind.INGEST_SPANS: 60.0,
             QuotaKind.QUERIES: 60.0}
"""Seconds over which each kind's limit is counted."""
_FIELDS = {QuotaKind.INGEST_REQUESTS: "ingest_requests_per_s",
           QuotaKind.INGEST_SPANS: "ingest_spans_per_min", QuotaKind.QUERIES: "queries_per_min"}
"""The :class:`QuotaLimits` field of each kind, after ``key_`` or ``org_``."""
_UNITS = {QuotaKind.INGEST_REQUESTS: "ingest requests per second",
          QuotaKind.INGEST_SPANS: "spans per minute", QuotaKind.QUERIES: "queries per minute"}


@dataclass(slots=True)
class TokenBucket:
    """``capacity`` tokens refilled at ``rate_per_s``; starts full.

    Args:
        capacity: most tokens held (the burst), e.g. one period of the limit.
        rate_per_s: tokens added per second.
        tokens: tokens held at ``updated_s``.
        updated_s: clock reading (s) of the last refill.
    """

    capacity: float
    rate_per_s: float
    tokens: float
    updated_s: float

    def take(self, cost: float, now_s: float) -> float:
        """Take ``cost`` tokens if they are there; return the wait.

        A cost above ``capacity`` is taken from a full bucket (leaving it in debt).

        Returns:
            0.0 when taken; else the seconds until the cost would be taken (nothing taken).
        """
        wait_s = self.wait_s(cost, now_s)
        if wait_s == 0.0:
            self.tokens -= cost
        return wait_s

    def wait_s(self, cost: float, now_s: float) -> float:
        """Seconds until ``cost`` tokens can be taken (0.0: now); refills, takes nothing."""
        elapsed_s = now_s - self.updated_s
        if elapsed_s > 0:
            self.tokens = min(self.capacity, self.tokens + elapsed_s * self.rate_per_s)
            self.updated_s = now_s
        missing = min(cost, self.capacity) - self.tokens
        return 0.0 if missing <= 0 else missing / self.rate_per_s


@dataclass(frozen=True, slots=True)
class QuotaLimits:
    """The limits, each per period of its kind (:class:`QuotaKind`); 0 = unlimited."""

    key_ingest_requests_per_s: int = 0
    org_ingest_requests_per_s: int = 0
    key_ingest_spans_per_min: int = 0
    org_ingest_spans_per_min: int = 0
    key_queries_per_min: int = 0
    org_queries_per_min: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> QuotaLimits:
        """The ``quota_*`` settings.

        Raises:
            ConfigError: a limit is negative.
        """
        limits = cls(**{name: getattr(settings, f"quota_{name}")
                        for name in cls.__dataclass_fields__})
        for name in cls.__dataclass_fields__:
            if getattr(limits, name) < 0:
                raise ConfigError(f"Expected quota_{name} >= 0 (0 = unlimited), "
                                  f"got {getattr(limits, name)}")
        return limits

    def of(self, kind: QuotaKind, scope: str) -> int:
        """The limit of ``kind`` for ``scope`` (``key`` or ``org``); 0 = unlimited."""
        limit: int = getattr(self, f"{scope}_{_FIELDS[kind]}")
        return limit


@dataclass(slots=True)
class _Meter:
    """The buckets of one kind and scope: the setting's limit, and orgs' overrides of it."""

    kind: QuotaKind
    scope: str
    """``key`` or ``org``."""
    limit: int
    by_org: dict[str, int]
    """Org id → the limit its override sets, for the org and each of its keys."""
    buckets: dict[str, TokenBucket]

    def bucket(self, who: str, limit: int, now_s: float) -> TokenBucket:
        bucket = self.buckets.get(who)
        if bucket is None:
            if len(self.buckets) >= _MAX_BUCKETS:
                self.buckets.clear()  # bounded memory; forgotten callers start full again
            bucket = self.buckets[who] = TokenBucket(
                limit, limit / _PERIOD_S[self.kind], limit, now_s)
        return bucket


class Quotas:
    """Checks callers against :class:`QuotaLimits` (see the module docstring).

    Runs on the server's event loop (HTTP routes and the gRPC receiver share it): no lock.

    Args:
        limits: the limits (the ``quota_*`` settings).
        metrics: counts refusals in ``mentatlab_rate_limited_total`` (None: not counted).
        clock: monotonic seconds (tests inject a fake one).
    """

    def __init__(self, limits: QuotaLimits, metrics: ServerMetrics | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._metrics = metrics
        self.clock = clock
        """Monotonic seconds; replaceable (tests freeze or advance it)."""
        self.overrides: Mapping[str, Mapping[str, int]] = {}
        """The per-org overrides in force (:meth:`apply_overrides`)."""
        self._meters = self._build_meters()

    @classmethod
    def unlimited(cls) -> Quotas:
        """Quotas that admit everything (every limit 0)."""
        return cls(QuotaLimits())

    def apply_overrides(self, overrides: Mapping[str, Mapping[str, int]]) -> None:
        """Put per-org overrides in force (org id → ``QuotaLimits`` field → limit).

        A change empties every bucket's history (callers start with full buckets); the
        same overrides again change nothing.
        """
        if overrides == self.overrides:
            return
        self.overrides = {org: dict(limits) for org, limits in overrides.items()}
        self._meters = self._build_meters()

    def _build_meters(self) -> dict[QuotaKind, tuple[_Meter, ...]]:
        meters: dict[QuotaKind, tuple[_Meter, ...]] = {}
        for kind in QuotaKind:
            built = []
            for scope in ("key", "org"):
                name = f"{scope}_{_FIELDS[kind]}"
                by_org = {org: limits[name] for org, limits in self.overrides.items()
                          if name in limits}
                limit = self.limits.of(kind, scope)
                if limit > 0 or any(v > 0 for v in by_org.values()):
                    built.append(_Meter(kind, scope, limit, by_org, {}))
            meters[kind] = tuple(built)
        return meters

    def admit_request(self, principal: Principal, permission: Permission) -> None:
        """Count one request to a route needing ``permission`` (ingest or a read).

        Other permissions (administration) are not limited.

        Raises:
            RateLimited: the caller's key or org is over its request or query limit.
        """
        if permission is Permission.INGEST:
            self._admit(QuotaKind.INGEST_REQUESTS, principal, 1)
        elif permission in QUERY_PERMISSIONS:
            self._admit(QuotaKind.QUERIES, principal, 1)

    def admit_spans(self, principal: Principal, num_spans: int) -> None:
        """Count a decoded batch of ``num_spans`` spans; refuse it whole when over.

        Call it before anything of the batch is stored.

        Raises:
            RateLimited: the caller's key or org has less than ``num_spans`` left this
                minute; nothing was counted.
        """
        if num_spans > 0:
            self._admit(QuotaKind.INGEST_SPANS, principal, num_spans)

    def _admit(self, kind: QuotaKind, principal: Principal, cost: int) -> None:
        meters = self._meters[kind]
        if not meters or principal.kind == "anonymous":
            return  # auth off, no credential: a developer's own machine, nothing to key on
        now_s = self.clock()
        org_id = principal.org_id
        taken: list[TokenBucket] = []
        for meter in meters:
            limit = meter.limit if org_id is None else meter.by_org.get(org_id, meter.limit)
            if meter.scope == "key":
                who = f"{principal.kind}:{principal.id}"
            elif org_id is not None:
                who = org_id
            else:
                continue  # an installation-wide key has no org
            if limit <= 0:
                continue
            bucket = meter.bucket(who, limit, now_s)
            wait_s = bucket.wait_s(cost, now_s)
            if wait_s > 0:  # nothing taken from any bucket
                if self._metrics is not None:
                    self._metrics.rate_limited.labels(kind.value, meter.scope).inc()
                raise RateLimited(f"{limit} {_UNITS[kind]} per {meter.scope}",
                                  max(1, math.ceil(wait_s)))
            taken.append(bucket)
        for bucket in taken:
            bucket.tokens -= cost


async def refresh_overrides(quotas: Quotas, control: ControlStore | None,
                            interval_s: float) -> None:
    """Read the per-org overrides from ``control`` every ``interval_s`` s, until cancelled.

    Returns at once when there is no control store or ``interval_s`` is 0 (overrides off).
    A failed read is logged and the overrides in force are kept.
    """
    if control is None or interval_s <= 0:
        return
    while True:
        try:
            quotas.apply_overrides(await anyio.to_thread.run_sync(control.quotas.all))
        except StoreError as exc:
            _log.warning("Could not read quota overrides (keeping the ones in force): %s", exc)
        await asyncio.sleep(interval_s)
