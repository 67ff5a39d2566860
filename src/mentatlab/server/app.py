"""The ASGI application factory; its lifespan owns the stores, writer, pipeline and gRPC.

Ingest path of a batch: decode (worker thread) → pipeline (worker thread) → Arrow →
``await writer.submit`` → answer. A 2xx is sent only after the writer committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
from fastapi import Depends, FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mentatlab.server import components
from mentatlab.server.auth import Authenticator, authorize
from mentatlab.server.compacting import compaction_job
from mentatlab.server.compression import CompressedStaticAssets, install_compression
from mentatlab.server.errors import install_error_handlers
from mentatlab.server.ingest import Ingestor
from mentatlab.server.live import LiveHub, StoreFeed
from mentatlab.server.live import router as live_router
from mentatlab.server.live_stats import router as live_stats_router
from mentatlab.server.metrics import ServerMetrics
from mentatlab.server.quotas import QuotaLimits, Quotas, refresh_overrides
from mentatlab.server.retaining import retention_job
from mentatlab.server.routes import (
    admin,
    adoption,
    alerts,
    analytics,
    audit,
    auth,
    bottlenecks,
    cost_views,
    docs,
    events,
    governance_decisions,
    governance_pii,
    governance_report,
    governance_retention,
    governance_signals,
    graph,
    health,
    latency,
    otlp,
    policies,
    prices,
    quotas,
    recommendations,
    regressions,
    reliability,
    reprice,
    system,
)
from mentatlab.server.state import ServerState
from mentatlab.settings import Settings
from mentatlab.storage.control.leader import run_periodic
from mentatlab.ui import pages

__all__ = ["app_from_env", "create_app"]

_log = logging.getLogger(__name__)
_EXPIRE_PERIOD_MAX_S = 1.0


async def _expire_events(state: ServerState) -> None:
    """Turn unpaired ``*.started`` events older than the timeout into timeout spans.

    Expired spans that cannot be committed (backpressure, store down) are kept and
    retried next period, so a timeout is never lost.
    """
    from mentatlab.receivers.base import DecodedBatch

    period_s = min(_EXPIRE_PERIOD_MAX_S, max(0.05, state.settings.event_pair_timeout_s / 4))
    ingest = state.ingestor.for_receiver("events", dedup=False)
    pending: list[Any] = []
    while True:
        await asyncio.sleep(period_s)
        expired = state.pairer.expire(time.time_ns())
        if expired and state.settings.span_store_is_shared:
            expired = await anyio.to_thread.run_sync(
                components.keep_still_open, state.store, expired)
        pending.extend(expired)
        if not pending:
            continue
        try:
            await ingest(DecodedBatch(list(pending), []))
            pending.clear()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 — keep the timer alive; logged and retried
            _log.exception("Committing %s expired event spans failed; retrying", len(pending))


def _alert_job(state: ServerState) -> Any:
    """One run of the alert evaluator, counted in the server's metrics (runs in a thread)."""
    evaluator = components.open_alert_evaluator(state.settings, state.store, state.control)
    metrics = state.metrics

    def run() -> None:
        report = evaluator.run_once()
        for alert in report.alerts:
            metrics.alerts_recorded.labels(alert.rule_kind, alert.state).inc()
        metrics.alert_deliveries.labels("sent").inc(report.num_sent)
        metrics.alert_deliveries.labels("retry").inc(report.num_retried)
        metrics.alert_deliveries.labels("failed").inc(report.num_given_up)
        metrics.alert_rule_errors.inc(report.num_failed_rules)

    return run


async def _release_startup_pages() -> None:
    """Give back the library pages start-up touched, beside the first requests.

    Not before ready: it only returns memory (~0.1 s reading ``/proc/self/smaps``), and a
    page it releases that a request then uses is read back from its file unchanged
    (:mod:`mentatlab.server.memory`). A failure costs memory only: logged, the server runs on.
    """
    from mentatlab.server.memory import release_startup_pages

    try:
        await anyio.to_thread.run_sync(release_startup_pages)
    except Exception:  # noqa: BLE001 — memory not given back is all it costs
        _log.exception("Could not release the library pages touched at start-up")


def _route_template(scope: Scope) -> str:
    """The matched route's path template (bounded label cardinality), set by the router."""
    route = scope.get("route")
    path = getattr(route, "path", None) or getattr(route, "path_format", None)
    return str(path) if path else "unmatched"


class _RequestMetrics:
    """Pure ASGI middleware counting requests by route template and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_s = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            state: ServerState | None = getattr(scope["app"].state, "mentat", None)
            if state is not None:
                route = _route_template(scope)
                state.metrics.requests.labels(scope["method"], route, str(status)).inc()
                state.metrics.request_latency_s.labels(route).observe(
                    time.perf_counter() - started_s)


async def _open_state(settings: Settings, hub: LiveHub) -> ServerState:
    limits = QuotaLimits.from_settings(settings)  # a bad limit fails before anything opens
    store = await anyio.to_thread.run_sync(components.open_store, settings)
    try:
        forwarder = components.open_forwarder(settings)  # None unless forward_otlp_endpoint
        control = await anyio.to_thread.run_sync(components.open_control_store, settings)
        pipeline = await anyio.to_thread.run_sync(components.build_pipeline, settings)
        writer = components.open_writer(settings, store)
    except BaseException:
        store.close()
        raise
    metrics = ServerMetrics()
    metrics.bind_buffer_depth(lambda: float(writer.buffer_depth))
    metrics.bind_live(lambda: float(hub.spans_dropped))
    metrics.bind_writer(lambda: float(getattr(writer, "buffer_bytes", 0)),
                        lambda: float(getattr(writer, "last_write_latency_s", 0.0)))
    wal = getattr(writer, "wal", None)
    if wal is not None:
        metrics.bind_wal(lambda: float(wal.disk_bytes), lambda: float(writer.wal_pending_bytes),
                         lambda: float(writer.insert_failures))
    if not settings.span_store_is_shared:
        writer.subscribe(hub.publish)  # else a StoreFeed polls the store
    pairer = components.open_pairer(settings)
    auth = Authenticator(control, settings.auth_required, settings.auth_cache_s)
    state = ServerState(settings=settings, store=store, writer=writer, pipeline=pipeline,
                        ingestor=Ingestor(pipeline, writer, metrics, settings, forwarder),
                        metrics=metrics, live=hub, auth=auth, control=control, pairer=pairer,
                        quotas=Quotas(limits, metrics))
    ingestor = state.ingestor
    metrics.bind_workers(lambda: float(ingestor.workers_running))
    await anyio.to_thread.run_sync(components.warn_legacy_keys, control)
    from mentatlab.server.policies import PolicyService

    state.policies = PolicyService(control, settings.policy_refresh_s,
                                   builtins=settings.policy_builtins, metrics=metrics)
    await anyio.to_thread.run_sync(state.policies.load)
    state.ingestor.policies = state.policies
    state.resolver = components.open_resolver(settings, store, writer, control, metrics)
    from mentatlab.resolver.resolver import Resolver

    resolver = state.resolver.loop.resolver
    if isinstance(resolver, Resolver):  # late ancestors: their spans' policies again
        resolver.policies = state.policies.current
        resolver.on_versions = state.policies.raise_alerts
    await anyio.to_thread.run_sync(components.seed_pairer, pairer, store, settings)
    # ingest workers start on the first OTLP/HTTP body (Ingestor.ingest_otlp_body)
    await state.resolver.start()
    from mentatlab.server.settling import SettleService

    state.settle = SettleService(settings, store, writer, control, metrics)
    await state.settle.start()
    from mentatlab.pipeline.workers import freeze_heap

    freeze_heap()  # what start-up built stays: keep full collections short
    return state


async def _close_state(state: ServerState) -> None:
    try:
        await state.ingestor.close()
        await anyio.to_thread.run_sync(state.writer.close)
        await anyio.to_thread.run_sync(state.live.close)
        if state.resolver is not None:
            await state.resolver.stop()
        if state.settle is not None:
            await state.settle.stop()
        await components.close_forwarder(state.ingestor.forwarder)
    finally:
        await anyio.to_thread.run_sync(state.store.close)
        if state.control is not None:
            with contextlib.suppress(Exception):
                state.control.close()


def create_app(settings: Settings) -> FastAPI:
    """Build the MentatLab ASGI app for ``settings``.

    The lifespan opens (and migrates) the span and control stores, starts the writer,
    the attribution resolver and the alert job (on the elected node), the event-pairing
    timer and, when
    ``settings.grpc_port`` is not 0, the OTLP/gRPC server (checking API keys like
    OTLP/HTTP; TLS when configured); on shutdown it stops gRPC,
    flushes the writer and closes the stores.

    Raises:
        ConfigError: (at startup) a bad setting, pricing file or TLS file.
        StoreError: (at startup) a store cannot be opened.
    """
    hub = LiveHub()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub.bind_loop(asyncio.get_running_loop())
        state = await _open_state(settings, hub)
        try:
            alert_job = _alert_job(state)
        except BaseException:
            await _close_state(state)
            raise
        app.state.mentat = state
        grpc_server: Any = None
        expire_task = asyncio.create_task(_expire_events(state))
        quota_task = asyncio.create_task(
            refresh_overrides(state.quotas, state.control, settings.quota_refresh_s))
        assert state.policies is not None
        policy_task = asyncio.create_task(state.policies.run())
        feed_task = None
        if settings.span_store_is_shared:
            feed_task = asyncio.create_task(
                StoreFeed(hub, state.store, settings.live_poll_interval_s).run())
        alert_leader = components.open_leader(settings, "alerts")
        state.metrics.job_leader.labels("alerts").set(0)
        alert_task = asyncio.create_task(run_periodic(
            alert_job, settings.alert_interval_s, name="alert evaluator",
            leader=alert_leader, on_leadership=state.metrics.job_leader.labels("alerts").set))
        compact_leader = components.open_leader(settings, "compaction")
        state.metrics.job_leader.labels("compaction").set(0)
        compact_task = asyncio.create_task(run_periodic(
            compaction_job(settings, state.store, state.metrics), settings.compact_interval_s,
            name="compaction", leader=compact_leader,
            on_leadership=state.metrics.job_leader.labels("compaction").set))
        retention_leader = components.open_leader(settings, "retention")
        state.metrics.job_leader.labels("retention").set(0)
        retention_task = asyncio.create_task(run_periodic(
            retention_job(settings, state.store, state.control, state.metrics),
            settings.retention_interval_s, name="retention", leader=retention_leader,
            on_leadership=state.metrics.job_leader.labels("retention").set))
        release_task = None
        try:
            if settings.grpc_port:
                from mentatlab.receivers.otlp_http import HttpLimits

                limits = HttpLimits(settings.max_body_bytes, settings.max_decompressed_bytes)
                grpc_server, state.grpc_port = await components.start_grpc(
                    settings, components.authorize_grpc(state.auth, state.ingestor, limits,
                                                        state.quotas))
            if settings.release_startup_pages:
                release_task = asyncio.create_task(_release_startup_pages())
            _log.info("MentatLab serving; data in %s", settings.data_dir)
            yield
        finally:
            if release_task is not None:
                await release_task  # short; it must not outlive the process's libraries
            expire_task.cancel()
            alert_task.cancel()
            compact_task.cancel()
            retention_task.cancel()
            quota_task.cancel()
            policy_task.cancel()
            if feed_task is not None:
                feed_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await feed_task
            with contextlib.suppress(asyncio.CancelledError):
                await expire_task
            with contextlib.suppress(asyncio.CancelledError):
                await alert_task
            with contextlib.suppress(asyncio.CancelledError):
                await compact_task
            with contextlib.suppress(asyncio.CancelledError):
                await retention_task
            with contextlib.suppress(asyncio.CancelledError):
                await quota_task
            with contextlib.suppress(asyncio.CancelledError):
                await policy_task
            await anyio.to_thread.run_sync(alert_leader.close)
            await anyio.to_thread.run_sync(compact_leader.close)
            await anyio.to_thread.run_sync(retention_leader.close)
            if grpc_server is not None:
                await components.stop_grpc(grpc_server)
            await _close_state(state)

    app = FastAPI(
        title="MentatLab",
        version="0.1.0",
        summary="Observability and cost metering for AI agents",
        description="OTLP/HTTP ingest, native events, cost analytics, traces and live tail. "
        "Every REST error uses one JSON shape: "
        '`{"ok": false, "status": int, "error": str, "errors": [{"field", "reason"}]}`.',
        lifespan=lifespan,
        docs_url=None,  # routes/docs.py serves Swagger UI from vendored assets
        redoc_url=None,
    )
    install_error_handlers(app)
    app.add_middleware(_RequestMetrics)
    install_compression(app)  # responses only: OTLP gzip bodies and WebSockets untouched
    # Ingest first: a request walks the routes in order (~7 µs each, measured), and OTLP
    # bodies are most of the requests; at the end of the list /v1/traces paid ~230 µs.
    app.include_router(otlp.router)  # authorizes inside, to answer in the OTLP encoding
    checked = [Depends(authorize)]  # every route: the permission matrix decides
    for module in (events, analytics, bottlenecks, latency, recommendations, reliability, graph,
                   regressions, adoption, cost_views, alerts, reprice, prices, admin, quotas,
                   audit, auth, health, docs, governance_decisions, governance_pii,
                   governance_report, governance_retention, governance_signals, policies,
                   system):
        app.include_router(module.router, dependencies=checked)
    app.include_router(live_router)  # authorizes inside, to answer on the open socket
    app.include_router(live_stats_router)  # the same
    app.include_router(pages.router)  # authorizes inside, to answer a sign-in page (HTML)
    app.mount(docs.STATIC_PATH, CompressedStaticAssets(packages=[("mentatlab.ui", "static")]),
              name="static")  # public: the files ship in the wheel, nothing secret
    return app


def app_from_env() -> FastAPI:
    """The app with settings from the environment: the factory ``--workers`` processes run.

    Raises:
        ConfigError: a bad setting.
    """
    from mentatlab.settings import load_settings

    settings = load_settings()
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return create_app(settings)
