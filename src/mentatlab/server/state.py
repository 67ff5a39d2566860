"""The running server's state: what the lifespan opens and the routes use, typed.

Routes reach it through :func:`server_state`. Nothing here imports a route module, so
routes, the live hub and the auth layer can all depend on it without cycles.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa
from starlette.requests import HTTPConnection

from mentatlab.errors import StoreUnavailable
from mentatlab.pipeline.processor import Pipeline
from mentatlab.server.ingest import Ingestor
from mentatlab.server.metrics import ServerMetrics
from mentatlab.server.quotas import Quotas
from mentatlab.settings import Settings
from mentatlab.storage.base import SpanStore
from mentatlab.storage.writer import InsertHealth

if TYPE_CHECKING:
    from mentatlab.receivers.events import EventPairer
    from mentatlab.server.auth import Authenticator
    from mentatlab.server.ingest_health import IngestRates
    from mentatlab.server.live import LiveHub
    from mentatlab.server.live_stats import StatsHub
    from mentatlab.server.policies import PolicyService
    from mentatlab.server.resolving import ResolverService
    from mentatlab.server.settling import SettleService
    from mentatlab.storage.control import ControlStore

__all__ = ["ServerState", "SpanSink", "control_store", "server_state"]


class SpanSink(Protocol):
    """What the server needs of the span writer (:class:`~mentatlab.storage.writer.SpanWriter`)."""

    async def submit(self, table: pa.Table, *, dedup: bool = True) -> int:
        """Queue an Arrow batch and return once committed (rows written).

        Raises:
            Backpressure: the buffer is full.
            StoreUnavailable: the writer is closed or the store refuses writes.
        """

    def subscribe(self, callback: Callable[[pa.Table], None]) -> Callable[[], None]:
        """Call ``callback(table)`` after each commit; returns the unsubscribe function."""

    @property
    def buffer_depth(self) -> int:
        """Spans waiting to be committed."""

    def is_alive(self) -> bool:
        """Whether the writer can still commit (its thread runs)."""

    def insert_health(self) -> InsertHealth | None:
        """How the write-ahead log's inserter fares; None without a log."""

    def close(self, wait_s: float | None = 30.0) -> None:
        """Commit what is queued, then stop."""


@dataclass
class ServerState:
    """Everything the lifespan opens and the routes use."""

    settings: Settings
    store: SpanStore
    writer: SpanSink
    pipeline: Pipeline
    ingestor: Ingestor
    metrics: ServerMetrics
    live: LiveHub
    auth: Authenticator
    pairer: EventPairer
    control: ControlStore | None = None
    """Orgs, projects, keys, people, alerting; None only in tests that build no server."""
    resolver: ResolverService | None = None
    settle: SettleService | None = None
    grpc_port: int | None = None
    """The OTLP/gRPC port actually bound, once the gRPC server runs."""
    quotas: Quotas = field(default_factory=Quotas.unlimited)
    """Rate limits per key and org (:mod:`mentatlab.server.quotas`)."""
    policies: PolicyService | None = None
    """The enforced guardrail policies (:mod:`mentatlab.server.policies`)."""
    live_stats: StatsHub | None = None
    """The live stats stream's shared computations; made by its first subscriber."""
    started_s: float = field(default_factory=time.monotonic)
    """``time.monotonic()`` when the state (and its zeroed metrics) was made."""
    ingest_rates: IngestRates | None = None
    """Readings of the ingest counters for ``GET /api/v1/system/ingest``; made by its
    first request."""


def server_state(conn: HTTPConnection) -> ServerState:
    """The running server's state (set by the lifespan)."""
    state: ServerState = conn.app.state.mentat
    return state


def control_store(conn: HTTPConnection) -> ControlStore:
    """The running server's control store.

    Raises:
        StoreUnavailable: the server runs without one (503).
    """
    control = server_state(conn).control
    if control is None:
        raise StoreUnavailable("No control store")
    return control
