"""Builders for the parts the server composes (one place that knows their constructors)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from mentatlab.errors import FieldError
from mentatlab.pipeline.price import Price
from mentatlab.pipeline.processor import Pipeline
from mentatlab.receivers.base import IngestBody, IngestOutcome
from mentatlab.receivers.otlp_http import HttpLimits
from mentatlab.settings import Settings
from mentatlab.storage.base import SpanStore

if TYPE_CHECKING:
    from mentatlab.receivers.otlp_grpc import Authorize
    from mentatlab.server.auth import Authenticator
    from mentatlab.server.ingest import Ingestor
    from mentatlab.server.quotas import Quotas
    from mentatlab.storage.control import ControlStore

__all__ = [
    "PRICE_SNAPSHOT_NAME",
    "authorize_grpc",
    "build_pipeline",
    "build_price",
    "close_forwarder",
    "keep_still_open",
    "open_alert_evaluator",
    "open_control_store",
    "open_forwarder",
    "open_leader",
    "open_pairer",
    "open_resolver",
    "open_store",
    "open_writer",
    "warn_legacy_keys",
    "price_snapshot_path",
    "seed_pairer",
    "start_grpc",
    "stop_grpc",
]

_log = logging.getLogger(__name__)


PRICE_SNAPSHOT_NAME = "genai-prices.json"
"""File in the data folder where ``mentatctl prices update`` saves fetched price data."""


def price_snapshot_path(settings: Settings) -> Path:
    """Where fetched genai-prices data lives (``<data_dir>/genai-prices.json``)."""
    return settings.data_dir / PRICE_SNAPSHOT_NAME


def build_price(settings: Settings) -> Price:
    """The ``price`` processor with the current prices, re-read now.

    ``pricing.toml`` over the fetched genai-prices snapshot when there is one, else over
    the data bundled with genai-prices.

    Raises:
        ConfigError: the pricing file is invalid.
        PricingError: the fetched price snapshot is unreadable.
    """
    from mentatlab.pricing.catalog import PriceCatalog
    from mentatlab.pricing.pricing_file import load_pricing_file

    snapshot = price_snapshot_path(settings)
    catalog = PriceCatalog(snapshot if snapshot.exists() else None)
    path = settings.pricing_path
    pricing = load_pricing_file(path) if path is not None else None
    return Price(catalog, pricing)


def build_pipeline(settings: Settings) -> Pipeline:
    """The ingest pipeline with the current prices (pricing last, over the Arrow table).

    :func:`mentatlab.pipeline.workers.build_pipeline`, the one every ingest path runs.

    Raises:
        ConfigError: the pricing file is invalid.
        PricingError: the fetched price snapshot is unreadable.
    """
    from mentatlab.pipeline.workers import build_pipeline as build

    return build(settings)


def open_store(settings: Settings) -> SpanStore:
    """Open and migrate the span store.

    Raises:
        StoreError: the store cannot be opened or migrated.
    """
    from mentatlab.storage.chdb_store import open_span_store

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # The retention job owns the TTL (the longest retention of any org, governance/
    # retention.py); without the job, span_retention_days is a plain table TTL.
    retention_days = None if settings.retention_interval_s > 0 else settings.span_retention_days
    store = open_span_store(settings.span_store_url, query_timeout_s=settings.query_timeout_s,
                            retention_days=retention_days,
                            encryption_keys=settings.encryption_keys())
    store.migrate()
    try:
        replay_wal(settings, store)
    except BaseException:
        store.close()
        raise
    return store


def wal_dir(settings: Settings, store: SpanStore) -> Path | None:
    """The write-ahead log folder of an embedded store (``<store>/_wal``).

    None for a ClickHouse store: nodes are stateless (docs/scale-out.md).
    """
    from mentatlab.storage.chdb_store import ChdbSpanStore
    from mentatlab.storage.wal import WAL_FOLDER

    if settings.span_store_is_shared or not isinstance(store, ChdbSpanStore):
        return None
    return store.path / WAL_FOLDER


def replay_wal(settings: Settings, store: SpanStore) -> int:
    """Insert what a write-ahead log left by an earlier run holds and the store lacks.

    Runs whether or not ``settings.wal`` is on now (a log written before the setting was
    turned off is still replayed), before the server reports ready. Records the newest
    replayed stamp on the store (``replayed_through_ns``) for :func:`open_writer`.

    Returns:
        Spans inserted.

    Raises:
        StoreError: a logged batch has another schema, or an insert failed (the log stays).
    """
    directory = wal_dir(settings, store)
    if directory is None or not any(directory.glob("wal-*.log")):
        return 0
    from mentatlab.model.schema import SPAN_SCHEMA
    from mentatlab.storage.wal import WriteAheadLog, replay_into

    report = replay_into(store, WriteAheadLog(directory), SPAN_SCHEMA,
                         insert_bytes=settings.wal_insert_bytes)
    setattr(store, "replayed_through_ns", report.last_stamp_ns)  # noqa: B010
    return report.spans_inserted


def open_control_store(settings: Settings, *, check_secrets: bool = True) -> ControlStore:
    """Open (and migrate) the control store: orgs, projects, keys, people, alerting, audit.

    With ``check_secrets``, stored secrets are checked to decrypt with the configured keys
    (the server fails fast; commands that never read a secret, like ``audit verify``, skip
    it so an auditor needs no encryption key).

    Raises:
        ConfigError: a bad ``audit_checkpoint_every`` or ``audit_signing_key_file``; a bad
            encryption key, or stored secrets that the configured keys cannot decrypt.
    """
    from mentatlab.governance.encryption import SecretCipher
    from mentatlab.storage.control import ControlStore, migrate_control_store
    from mentatlab.storage.control.audit import load_public_key, load_signing_key

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate_control_store(settings.control_store_url)
    control = ControlStore(settings.control_store_url,
                           secrets=SecretCipher(settings.encryption_keys()))
    key_file = settings.audit_signing_key_file
    default_key = settings.data_dir / "audit-signing-key.pem"  # server/retaining.py
    if key_file is None and settings.control_store == "" and default_key.exists():
        key_file = default_key  # generated for the embedded default by the first audit trim
    retired = tuple(load_public_key(Path(p.strip()).expanduser())
                    for p in settings.audit_retired_key_files.split(",") if p.strip())
    control.audit.configure(checkpoint_every=settings.audit_checkpoint_every,
                            signing_key=None if key_file is None else load_signing_key(key_file),
                            retired_keys=retired)
    if check_secrets:
        try:
            control.alerts.check_secrets()
        except Exception:
            control.close()
            raise
    return control


def open_alert_evaluator(settings: Settings, store: SpanStore, control: Any) -> Any:
    """The :class:`~mentatlab.alerting.evaluator.AlertEvaluator` of ``settings``.

    Raises:
        ConfigError: ``alert_max_attempts`` or ``alert_delivery_timeout_s`` is not above 0.
    """
    from mentatlab.alerting.evaluator import AlertEvaluator
    from mentatlab.alerting.notifiers import NotifierConfig
    from mentatlab.errors import ConfigError

    for name in ("alert_max_attempts", "alert_delivery_timeout_s"):
        if getattr(settings, name) <= 0:
            raise ConfigError(f"Expected {name} > 0, got {getattr(settings, name)!r}")
    notifier = NotifierConfig(
        smtp_host=settings.smtp_host, smtp_port=settings.smtp_port, smtp_from=settings.smtp_from,
        smtp_username=settings.smtp_username, smtp_password=settings.smtp_password,
        smtp_starttls=settings.smtp_starttls, webhook_secret=settings.alert_webhook_secret,
        timeout_s=settings.alert_delivery_timeout_s)
    return AlertEvaluator(store, control, notifier, max_attempts=settings.alert_max_attempts)


def open_leader(settings: Settings, job: str) -> Any:
    """The :class:`~mentatlab.storage.control.leader.LeaderLock` of background ``job``.

    Raises:
        ConfigError: the control store cannot hold locks.
    """
    from mentatlab.storage.control.leader import LeaderLock

    return LeaderLock(settings.control_store_url, job)


def open_writer(settings: Settings, store: SpanStore) -> Any:
    """Start the span writer over ``store`` (bounded buffer, group commit)."""
    from mentatlab.storage.writer import SpanWriter

    wal = None
    directory = wal_dir(settings, store) if settings.wal else None
    if directory is not None and getattr(store, "encrypted", False):
        _log.warning("wal is ignored with encryption_key: the log would hold spans in clear; "
                     "ingest is acknowledged after each insert")
        directory = None
    if directory is not None:
        from mentatlab.storage.wal import WriteAheadLog

        wal = WriteAheadLog(directory, segment_bytes=settings.wal_segment_bytes,
                            fsync=settings.wal_fsync)
    return SpanWriter(store, max_buffer_spans=settings.write_buffer_spans,
                      max_batch_spans=settings.write_batch_spans,
                      dedup_cache_spans=settings.dedup_cache_spans,
                      retry_after_s=settings.retry_after_s,
                      max_buffer_bytes=settings.write_buffer_bytes, wal=wal,
                      insert_interval_s=settings.wal_insert_interval_s,
                      insert_bytes=settings.wal_insert_bytes,
                      max_wal_memory_bytes=settings.wal_max_memory_bytes,
                      max_wal_disk_bytes=settings.wal_max_disk_bytes,
                      start_after_ns=getattr(store, "replayed_through_ns", 0))


def open_resolver(settings: Settings, store: SpanStore, writer: Any, control: Any,
                  metrics: Any) -> Any:
    """The :class:`~mentatlab.server.resolving.ResolverService` of this process (not started).

    Raises:
        ConfigError: the pricing file is invalid, or the control store cannot hold locks.
    """
    from mentatlab.server.resolving import ResolverService

    return ResolverService(settings, store, writer, control, build_price(settings), metrics)


def warn_legacy_keys(control: ControlStore | None) -> int:
    """Log the keys that predate roles (made ``admin`` by migration 0004); returns how many.

    Such keys could do everything in their scope before; they still can until rotated to
    the narrowest role that does their job (CHANGELOG, "Action needed").
    """
    if control is None:
        return 0
    legacy = [k for k in control.list_api_keys(include_revoked=False)
              if k.role == "admin" and k.created_by == "" and k.org_id is not None]
    for key in legacy:
        _log.warning("API key %s (%s, org %s) predates roles and acts as an admin key; "
                     "rotate it to an ingest or read key (mentatctl keys create/revoke)",
                     key.prefix, key.name, key.org_id)
    return len(legacy)


def open_pairer(settings: Settings) -> Any:
    """The event pairer that joins ``*.started`` and ``*.completed`` native events."""
    from mentatlab.receivers.events import EventPairer

    return EventPairer(settings.event_pair_timeout_s)


_OPEN_SPANS_SQL = """
SELECT trace_id, span_id, parent_span_id, name, kind, status, status_message,
       toUnixTimestamp64Nano(start_time) AS start_ns, toUnixTimestamp64Nano(end_time) AS end_ns,
       attributes, resource, scope_name, org_id, workspace_id, project_id, user_id,
       customer_id, department
FROM spans FINAL
WHERE start_time >= now64(9) - toIntervalSecond({window_s:UInt64})
  AND JSONExtractBool(attributes, 'mentat.span.open')
SETTINGS do_not_merge_across_partitions_select_final = 1
"""
_TENANCY = ("org_id", "workspace_id", "project_id", "user_id", "customer_id", "department")


def seed_pairer(pairer: Any, store: SpanStore, settings: Settings) -> int:
    """Re-open the ``*.started`` spans still open in the store (after a restart).

    Only spans that started within twice the pairing timeout are considered; older
    ones are expired by the pairer right away anyway.

    Returns:
        Open spans handed to the pairer.
    """
    import orjson

    from mentatlab.model.raw import RawSpan, StatusCode

    window_s = int(max(settings.event_pair_timeout_s * 2, 60))
    try:
        rows = store.query_arrow(_OPEN_SPANS_SQL, {"window_s": window_s}).to_pylist()
    except Exception:  # noqa: BLE001 — losing pairing state loses no data; logged
        _log.exception("Could not read open event spans to seed the pairer")
        return 0
    spans = [RawSpan(
        r["trace_id"], r["span_id"], r["parent_span_id"], r["name"], int(r["start_ns"]),
        int(r["end_ns"]), kind=r["kind"],
        status_code=StatusCode.ERROR if r["status"] != "ok" else StatusCode.UNSET,
        status_message=r["status_message"], attributes=orjson.loads(r["attributes"] or "{}"),
        resource=orjson.loads(r["resource"] or "{}"), scope_name=r["scope_name"],
        tenancy={k: r[k] for k in _TENANCY if r[k]}) for r in rows]
    pairer.seed_open(spans)
    return len(spans)


_STILL_OPEN_SQL = """
SELECT trace_id, span_id
FROM spans FINAL
WHERE trace_id IN {trace_ids:Array(String)}
  AND start_time >= fromUnixTimestamp64Nano({min_start_ns:Int64}, 'UTC')
  AND JSONExtractBool(attributes, 'mentat.span.open')
SETTINGS do_not_merge_across_partitions_select_final = 1
"""


def keep_still_open(store: SpanStore, expired: list[Any]) -> list[Any]:
    """The expired ``*.started`` spans whose newest stored version is still open.

    With several nodes, an agent's completion may reach another node than its start;
    that node stores the completed span, and this node must not then overwrite it with a
    timeout. Spans this check cannot read (store down) are kept: a timeout is never lost.

    Args:
        store: the shared span store.
        expired: RawSpans from ``EventPairer.expire``.

    Returns:
        The subset to commit as timeouts.
    """
    if not expired:
        return expired
    try:
        rows = store.query_arrow(_STILL_OPEN_SQL, {
            "trace_ids": sorted({s.trace_id for s in expired}),
            "min_start_ns": min(s.start_time_ns for s in expired)}).to_pylist()
    except Exception:  # noqa: BLE001 — keep them all; the check is retried next period
        _log.warning("could not check expired event spans against the store", exc_info=True)
        return expired
    open_keys = {(r["trace_id"], r["span_id"]) for r in rows}
    return [s for s in expired if (s.trace_id, s.span_id) in open_keys]


def authorize_grpc(auth: Authenticator, ingestor: Ingestor, limits: HttpLimits,
                   quotas: Quotas | None = None) -> Authorize:
    """The OTLP/gRPC receiver's key check and rate limits, the same as OTLP/HTTP's.

    The key goes through ``auth`` (cached lookups; refused when ``auth_required`` and it
    is missing, unknown, revoked or expired); its principal must hold ``ingest`` and be
    within its ingest-request rate. The answer ingests a request's bytes as OTLP/HTTP
    protobuf bodies are ingested (:meth:`Ingestor.ingest_otlp_body`: in the ingest
    workers, checked against the spans-per-minute quota once decoded, the principal's
    tenancy fixed on every span, queued for forwarding once committed). ``RateLimited``
    becomes RESOURCE_EXHAUSTED with RetryInfo.

    Args:
        auth: the API-key and session lookups.
        ingestor: ingests each request's bytes.
        limits: the body size limits, in bytes (gRPC itself refuses larger messages).
        quotas: the per-key and per-org rate limits; None applies none.
    """
    import functools

    from mentatlab.access.roles import Permission
    from mentatlab.receivers.otlp_http import CONTENT_TYPE_PROTOBUF

    async def authorize(key: str | None) -> IngestBody:
        principal = await auth.for_key(key)
        principal.require(Permission.INGEST)
        admit = None
        if quotas is not None:
            quotas.admit_request(principal, Permission.INGEST)
            admit = functools.partial(quotas.admit_spans, principal)

        async def ingest_body(body: bytes) -> tuple[list[FieldError], IngestOutcome]:
            return await ingestor.ingest_otlp_body(
                body, CONTENT_TYPE_PROTOBUF, None, limits, principal.tenancy, admit,
                receiver="otlp_grpc")

        return ingest_body

    return authorize


async def start_grpc(settings: Settings, authorize: Authorize) -> tuple[Any, int]:
    """Start the OTLP/gRPC receiver on ``settings.host:settings.grpc_port``.

    It serves TLS when ``settings.tls_cert_file`` is set. Committed requests are queued
    for forwarding by ``authorize``'s ingest callable (:func:`authorize_grpc`).

    Args:
        settings: the server's settings.
        authorize: each request's key check (:func:`authorize_grpc`).

    Returns:
        The running ``grpc.aio.Server`` and the port it bound.

    Raises:
        ConfigError: a TLS file is missing, unreadable or invalid.
        OSError: the port cannot be bound.
    """
    from mentatlab.receivers.otlp_grpc import OtlpGrpcReceiver, start_grpc_server
    from mentatlab.server.tls import grpc_server_credentials, load_tls

    credentials = grpc_server_credentials(load_tls(settings))
    receiver = OtlpGrpcReceiver(authorize)  # its ingest callable queues forwarding
    server = await start_grpc_server(receiver, settings.host, settings.grpc_port,
                                     settings.max_body_bytes, reuse_port=settings.workers > 1,
                                     credentials=credentials)
    return server, int(getattr(receiver, "bound_port", settings.grpc_port))


async def stop_grpc(server: Any) -> None:
    """Stop the gRPC server, letting in-flight calls finish for up to 5 s."""
    await server.stop(5.0)


def open_forwarder(settings: Settings) -> Any:
    """Start the OTLP forwarder of ``settings.forward_*``; None when forwarding is off.

    Returns:
        A started :class:`~mentatlab.exporters.OtlpForwarder`, or None when
        ``forward_otlp_endpoint`` is empty.

    Raises:
        ConfigError: a bad endpoint, header list, compression or size.
    """
    if not settings.forward_otlp_endpoint.strip():
        return None
    from mentatlab.errors import ConfigError
    from mentatlab.exporters import ForwardConfig, OtlpForwarder, parse_forward_endpoint
    from mentatlab.exporters.otlp_payload import parse_headers

    compression = settings.forward_otlp_compression.strip().lower()
    if compression not in ("none", "gzip"):
        raise ConfigError(f"Expected forward_otlp_compression to be none or gzip, "
                          f"got {settings.forward_otlp_compression!r}")
    for name in ("forward_queue_bytes", "forward_batch_bytes", "forward_timeout_s"):
        if getattr(settings, name) <= 0:
            raise ConfigError(f"Expected {name} > 0, got {getattr(settings, name)!r}")
    if settings.forward_pii not in ("redacted", "raw"):
        raise ConfigError(f"Expected forward_pii to be redacted or raw, got "
                          f"{settings.forward_pii!r}")
    from mentatlab.governance.pii_config import PiiConfig, PiiMode, load_hash_key

    pii_hash_key = b""
    if settings.forward_pii == "redacted" and PiiMode.HASH in PiiConfig.from_settings(
            settings).modes:
        pii_hash_key = load_hash_key(settings.pii_hash_key, settings.data_dir)
    forwarder = OtlpForwarder(ForwardConfig(
        parse_forward_endpoint(settings.forward_otlp_endpoint),
        parse_headers(settings.forward_otlp_headers), compression,
        settings.forward_queue_bytes, settings.forward_batch_bytes,
        max(0.0, settings.forward_linger_s), settings.forward_timeout_s,
        max(0.0, settings.forward_retry_max_s), settings.max_decompressed_bytes),
        pii_hash_key=pii_hash_key)
    forwarder.start()
    _log.info("Forwarding OTLP traces to %s", forwarder.config.target.url)
    return forwarder


async def close_forwarder(forwarder: Any) -> None:
    """Flush the forwarder's queue (at most ``forward_timeout_s``) and stop it; None is a no-op."""
    if forwarder is not None:
        await anyio.to_thread.run_sync(forwarder.close)
