"""Settings: every server option declared once, with its env var, type, default and unit.

Precedence: explicit argument, then the ``MENTATLAB_*`` environment variable, then the
``[server]`` table of ``mentatlab.toml`` in the data directory, then the default. The
server fails fast on a bad value (:class:`~mentatlab.errors.ConfigError`).
``docs/settings.md`` documents every field; a test keeps the two in step.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mentatlab.errors import ConfigError

if TYPE_CHECKING:
    from mentatlab.governance.encryption import EncryptionKeys

__all__ = ["TRACE_QUIET_MAX_S", "TRACE_QUIET_MIN_S", "Settings", "default_data_dir",
           "load_settings"]

TRACE_QUIET_MIN_S = 0.05
"""Least quiet period (s): below it a trace would settle between two of its own batches."""
TRACE_QUIET_MAX_S = 86_400.0
"""Longest quiet period (s): a day; longer keeps the bottleneck answers a day behind."""


def default_data_dir() -> Path:
    """The user's data directory for MentatLab.

    ``$XDG_DATA_HOME/mentatlab``, else ``~/.local/share/mentatlab``.
    """
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mentatlab"


def _env(name: str) -> dict[str, str]:
    return {"env": name}


@dataclass(frozen=True, slots=True)
class Settings:
    """Server settings. Field metadata ``env`` names the environment variable."""

    data_dir: Path = field(default_factory=default_data_dir, metadata=_env("MENTATLAB_DATA_DIR"))
    """Folder for the embedded span store, the control store and ``pricing.toml``."""
    span_store: str = field(default="", metadata=_env("MENTATLAB_SPAN_STORE"))
    """Span store URL: ``chdb:///path`` (embedded, default ``<data_dir>/spans``) or
    ``clickhouse://user:pass@host:8123/db``."""
    control_store: str = field(default="", metadata=_env("MENTATLAB_CONTROL_STORE"))
    """SQLAlchemy URL of the control store; default ``sqlite:///<data_dir>/control.db``."""
    pricing_file: Path | None = field(default=None, metadata=_env("MENTATLAB_PRICING_FILE"))
    """Path of ``pricing.toml``; default ``<data_dir>/pricing.toml`` when that file exists."""
    host: str = field(default="127.0.0.1", metadata=_env("MENTATLAB_HOST"))
    """Address the HTTP and gRPC servers bind to."""
    workers: int = field(default=1, metadata=_env("MENTATLAB_WORKERS"))
    """Server processes sharing the HTTP and gRPC ports (``mentatctl serve --workers``);
    above 1 needs a span store that several processes can open (ClickHouse)."""
    http_port: int = field(default=4318, metadata=_env("MENTATLAB_HTTP_PORT"))
    """Port of the HTTP server: OTLP/HTTP, REST API, WebSocket and dashboard."""
    grpc_port: int = field(default=4317, metadata=_env("MENTATLAB_GRPC_PORT"))
    """Port of the OTLP/gRPC receiver; 0 disables it."""
    tls_cert_file: Path | None = field(default=None, metadata=_env("MENTATLAB_TLS_CERT_FILE"))
    """PEM certificate chain (the server's certificate first) both listeners serve TLS with;
    unset (default) serves plaintext. Needs ``tls_key_file``."""
    tls_key_file: Path | None = field(default=None, metadata=_env("MENTATLAB_TLS_KEY_FILE"))
    """Unencrypted PEM private key of ``tls_cert_file``."""
    tls_client_ca_file: Path | None = field(
        default=None, metadata=_env("MENTATLAB_TLS_CLIENT_CA_FILE"))
    """PEM CA bundle: when set, both listeners require a client certificate it signed
    (mutual TLS); unset asks for none."""
    max_body_bytes: int = field(default=16 * 1024 * 1024, metadata=_env("MENTATLAB_MAX_BODY_BYTES"))
    """Largest request body accepted, in bytes, as sent (413 above)."""
    max_decompressed_bytes: int = field(
        default=64 * 1024 * 1024, metadata=_env("MENTATLAB_MAX_DECOMPRESSED_BYTES"))
    """Largest body accepted after gzip decompression, in bytes (413 above)."""
    max_attribute_value_bytes: int = field(
        default=64 * 1024, metadata=_env("MENTATLAB_MAX_ATTRIBUTE_VALUE_BYTES"))
    """Longer string attribute values are truncated to this many bytes and the key is listed
    in the span attribute ``mentat.truncated_attributes``."""
    write_buffer_spans: int = field(default=200_000, metadata=_env("MENTATLAB_WRITE_BUFFER_SPANS"))
    """Spans that may wait for the writer; beyond it ingest answers 503 with Retry-After."""
    write_buffer_bytes: int = field(
        default=64 * 1024 * 1024, metadata=_env("MENTATLAB_WRITE_BUFFER_BYTES"))
    """Arrow bytes of spans that may wait for the writer (the memory bound, whatever the
    spans' size; ``write_buffer_spans`` bounds their count); beyond it ingest answers 503
    with Retry-After. 0: no byte bound."""
    write_batch_spans: int = field(default=50_000, metadata=_env("MENTATLAB_WRITE_BATCH_SPANS"))
    """Most spans the writer commits in one insert (group commit of waiting requests)."""
    wal: bool = field(default=True, metadata=_env("MENTATLAB_WAL"))
    """Embedded (chDB) store only: acknowledge ingest once the processed (redacted) spans
    are appended to a write-ahead log in ``<store>/_wal`` and flushed to the OS, and
    insert into the store behind it in large batches (decision 0022). On by default; off:
    every request waits for its insert. A log left by a crash is replayed at start either
    way (and by ``mentatctl migrate`` and ``governance copy-store`` before they read the
    folder). Ignored with a ClickHouse span store (nodes stay stateless) and with
    ``encryption_key``."""
    wal_fsync: bool = field(default=False, metadata=_env("MENTATLAB_WAL_FSYNC"))
    """``fsync`` the log once per group commit before acknowledging: survives a power cut
    or an OS crash, not only ``kill -9`` of the server, at the cost of a disk flush per
    commit."""
    wal_max_disk_bytes: int = field(
        default=1024 * 1024 * 1024, metadata=_env("MENTATLAB_WAL_MAX_DISK_BYTES"))
    """Most bytes of log files on disk; beyond it ingest answers 503 with Retry-After until
    the inserter catches up."""
    wal_max_memory_bytes: int = field(
        default=256 * 1024 * 1024, metadata=_env("MENTATLAB_WAL_MAX_MEMORY_BYTES"))
    """Most bytes (Arrow) of logged spans held in memory for the inserter; beyond it ingest
    answers 503 with Retry-After."""
    wal_insert_interval_s: float = field(
        default=1.0, metadata=_env("MENTATLAB_WAL_INSERT_INTERVAL_S"))
    """Longest a logged batch waits before the inserter writes it to the store, in s: the
    visibility lag (acknowledged to queryable) is about this plus one insert. Reads through
    the API do not wait for it (the read barrier hurries the insert). 1.0 s rather than 0.5:
    half as many parts, and chDB's merges ~7 → ~4 CPU µs a span (bench/RESULTS.md)."""
    wal_insert_bytes: int = field(
        default=32 * 1024 * 1024, metadata=_env("MENTATLAB_WAL_INSERT_BYTES"))
    """The inserter writes as soon as this many bytes (Arrow) of logged spans wait."""
    wal_segment_bytes: int = field(
        default=64 * 1024 * 1024, metadata=_env("MENTATLAB_WAL_SEGMENT_BYTES"))
    """Size at which a log file is closed and a new one started; a file is deleted once
    every batch in it is stored."""
    ingest_workers: int = field(default=2, metadata=_env("MENTATLAB_INGEST_WORKERS"))
    """Worker processes that decode, normalize and price OTLP/HTTP bodies (0 = in the
    server process; bench/RESULTS.md "Ingest" has the measured trade-off)."""
    ingest_workers_idle_s: float = field(
        default=300.0, metadata=_env("MENTATLAB_INGEST_WORKERS_IDLE_S"))
    """Seconds without an OTLP/HTTP body after which the ingest workers stop (the next
    body starts them again, ~1 s); 0 keeps them once started."""
    release_startup_pages: bool = field(
        default=True, metadata=_env("MENTATLAB_RELEASE_STARTUP_PAGES"))
    """Once ready, the server unmaps the clean pages of its shared libraries (chDB's ~170
    MiB, mostly touched only by its start-up); used pages fault back in from the page cache
    (Linux; :mod:`mentatlab.server.memory`). False keeps them resident."""
    retry_after_s: int = field(default=1, metadata=_env("MENTATLAB_RETRY_AFTER_S"))
    """Seconds a client is told to wait (``Retry-After``) when the buffer is full."""
    event_pair_timeout_s: float = field(
        default=300.0, metadata=_env("MENTATLAB_EVENT_PAIR_TIMEOUT_S"))
    """Seconds after which an unpaired ``*.started`` event becomes a span with status
    ``timeout``."""
    forward_otlp_endpoint: str = field(default="", metadata=_env("MENTATLAB_FORWARD_OTLP_ENDPOINT"))
    """Forward every accepted OTLP trace request, as received (PII redacted unless
    ``forward_pii`` is ``raw``), to this OTLP backend:
    ``http(s)://host:4318`` (``/v1/traces`` appended unless the path ends with it) or
    ``grpc(s)://host:4317``; empty (default) forwards nothing. See docs/forwarding.md."""
    forward_otlp_headers: str = field(default="", metadata=_env("MENTATLAB_FORWARD_OTLP_HEADERS"))
    """Headers (gRPC: metadata) sent with forwarded requests, ``k=v,k=v``, values
    URL-decoded (e.g. ``authorization=Bearer%20abc``)."""
    forward_otlp_compression: str = field(
        default="none", metadata=_env("MENTATLAB_FORWARD_OTLP_COMPRESSION"))
    """Compression of forwarded requests: ``none`` or ``gzip``."""
    forward_queue_bytes: int = field(
        default=64 * 1024 * 1024, metadata=_env("MENTATLAB_FORWARD_QUEUE_BYTES"))
    """Bytes of received requests that may wait to be forwarded; newer ones are dropped
    (and counted) beyond it, so forwarding never slows ingest."""
    forward_batch_bytes: int = field(
        default=4 * 1024 * 1024, metadata=_env("MENTATLAB_FORWARD_BATCH_BYTES"))
    """Requests are merged into one forwarded request up to this many bytes (protobuf)."""
    forward_pii: str = field(default="redacted", metadata=_env("MENTATLAB_FORWARD_PII"))
    """What forwarded spans carry where the redact stage found PII: ``redacted`` (default:
    the stored placeholders, hashes or drops, applied to the forwarded copy) or ``raw`` (the
    values as received, for a backend allowed to see them). See docs/forwarding.md."""
    forward_linger_s: float = field(default=1.0, metadata=_env("MENTATLAB_FORWARD_LINGER_S"))
    """Longest a request waits for others to batch with, in seconds."""
    forward_timeout_s: float = field(default=10.0, metadata=_env("MENTATLAB_FORWARD_TIMEOUT_S"))
    """Timeout of one forwarded request, in seconds; also the shutdown flush budget."""
    forward_retry_max_s: float = field(
        default=300.0, metadata=_env("MENTATLAB_FORWARD_RETRY_MAX_S"))
    """Seconds a batch is retried (429/502/503/504, connection errors) before it is given
    up and counted failed."""
    dedup_cache_spans: int = field(default=1_000_000, metadata=_env("MENTATLAB_DEDUP_CACHE_SPANS"))
    """Recent ``(trace_id, span_id)`` keys remembered to drop re-sent spans at ingest."""
    span_retention_days: int = field(default=0, metadata=_env("MENTATLAB_SPAN_RETENTION_DAYS"))
    """Days spans (and the tables derived per span or trace) are kept, by ``start_time``, for
    every org without its own value (``mentatctl governance retention set``); 0 keeps them
    forever. Enforced by the retention job (``retention_interval_s``)."""
    aggregate_retention_days: int = field(
        default=0, metadata=_env("MENTATLAB_AGGREGATE_RETENTION_DAYS"))
    """Days the cost aggregates (``agg_*``) are kept, for every org without its own value;
    0 keeps them forever, else at least ``span_retention_days``."""
    audit_retention_years: int = field(default=0, metadata=_env("MENTATLAB_AUDIT_RETENTION_YEARS"))
    """Years audit-log entries are kept (the chain is trimmed at a signed checkpoint where the
    longest of every org's audit retention ends); 0 keeps them forever."""
    retention_interval_s: float = field(
        default=3600.0, metadata=_env("MENTATLAB_RETENTION_INTERVAL_S"))
    """Seconds between runs of the retention job (on the elected node); 0 turns it off, and
    ``span_retention_days`` is then only a table TTL."""
    erasure_salt: str = field(default="", metadata=_env("MENTATLAB_ERASURE_SALT"))
    """Secret salt of the subject hash in erasure receipts (HMAC-SHA256 key); empty: a random
    salt generated once in ``<data_dir>/erasure-salt`` (set it on every node of a cluster)."""
    resolve_interval_s: float = field(default=0.5, metadata=_env("MENTATLAB_RESOLVE_INTERVAL_S"))
    """Seconds between passes of the attribution resolver on a shared (ClickHouse) span
    store (the embedded store resolves right after each commit); 0 turns it off: answers
    then read raw spans, without inherited attribution or aggregates."""
    resolve_wait_s: float = field(default=2.0, metadata=_env("MENTATLAB_RESOLVE_WAIT_S"))
    """Longest an analytics read waits, in seconds, for the resolver to reach the spans
    this node acknowledged before it; past it the read answers from what is resolved."""
    trace_quiet_s: float = field(default=120.0, metadata=_env("MENTATLAB_TRACE_QUIET_S"))
    """Quiet period, in seconds: a trace none of whose spans arrived for this long is
    settled (its per-span critical-path times and trace facts are stored; a late span
    settles it again). 0.05 to 86400; docs/decisions/0010-settled-traces.md."""
    alert_interval_s: float = field(default=30.0, metadata=_env("MENTATLAB_ALERT_INTERVAL_S"))
    """Seconds between runs of the alert evaluator (budgets, threshold rules, notification
    deliveries); 0 turns alerting off. With several nodes only the elected one runs it."""
    compact_interval_s: float = field(
        default=600.0, metadata=_env("MENTATLAB_COMPACT_INTERVAL_S"))
    """Seconds between compaction passes, which merge each closed day of ``spans`` and of the
    day-partitioned settled tables (before the current UTC day) holding several parts into
    one, and ``trace_facts`` whole beyond 2 parts, so ``FINAL`` reads cost little
    (storage/compaction.py, decision 0016); 0 turns it off, else 10 to 86400. With
    several nodes only the elected one runs it; on a ClickHouse cluster it does nothing."""
    compact_max_partitions: int = field(
        default=8, metadata=_env("MENTATLAB_COMPACT_MAX_PARTITIONS"))
    """Day partitions one compaction pass merges at most (1 to 1000); the rest wait for
    the next pass, oldest first."""
    alert_max_attempts: int = field(default=10, metadata=_env("MENTATLAB_ALERT_MAX_ATTEMPTS"))
    """Attempts to deliver one notification to one channel before it is given up."""
    alert_delivery_timeout_s: float = field(
        default=10.0, metadata=_env("MENTATLAB_ALERT_DELIVERY_TIMEOUT_S"))
    """Timeout of one webhook, Slack or SMTP delivery, in seconds."""
    alert_webhook_secret: str = field(default="", metadata=_env("MENTATLAB_ALERT_WEBHOOK_SECRET"))
    """When set, webhook notifications carry ``X-MentatLab-Signature: sha256=<HMAC>`` of the
    body with this secret (docs/alerting.md shows how to verify it)."""
    smtp_host: str = field(default="127.0.0.1", metadata=_env("MENTATLAB_SMTP_HOST"))
    """SMTP server for ``email:`` alert channels."""
    smtp_port: int = field(default=25, metadata=_env("MENTATLAB_SMTP_PORT"))
    """Port of the SMTP server."""
    smtp_from: str = field(default="mentatlab@localhost", metadata=_env("MENTATLAB_SMTP_FROM"))
    """Sender address of alert emails."""
    smtp_username: str = field(default="", metadata=_env("MENTATLAB_SMTP_USERNAME"))
    """SMTP login; empty sends without authentication."""
    smtp_password: str = field(default="", metadata=_env("MENTATLAB_SMTP_PASSWORD"))
    """SMTP password (with ``smtp_username``)."""
    smtp_starttls: bool = field(default=False, metadata=_env("MENTATLAB_SMTP_STARTTLS"))
    """Upgrade the SMTP connection with STARTTLS before sending."""
    live_poll_interval_s: float = field(
        default=0.5, metadata=_env("MENTATLAB_LIVE_POLL_INTERVAL_S"))
    """Seconds between polls of a shared (ClickHouse) span store by the live stream, so it
    shows spans committed by every node; the embedded store pushes commits directly."""
    query_timeout_s: float = field(default=30.0, metadata=_env("MENTATLAB_QUERY_TIMEOUT_S"))
    """Longest a span-store read query may run, in seconds (``max_execution_time``); 0 = none."""
    auth_required: bool = field(default=False, metadata=_env("MENTATLAB_AUTH_REQUIRED"))
    """Require a credential on every route but health, metrics and docs: an API key
    (``Authorization: Bearer`` or ``x-api-key``) or a dashboard session (docs/security.md)."""
    auth_cache_s: float = field(default=0.5, metadata=_env("MENTATLAB_AUTH_CACHE_S"))
    """Seconds a key or session lookup is reused; the longest a revoked key keeps working
    on another node (the node that revoked it forgets at once)."""
    session_ttl_s: int = field(default=43_200, metadata=_env("MENTATLAB_SESSION_TTL_S"))
    """Lifetime of a dashboard session, in seconds (12 h)."""
    oidc_issuer: str = field(default="", metadata=_env("MENTATLAB_OIDC_ISSUER"))
    """Issuer URL of the OpenID Connect provider people sign in with (``/auth/login``);
    empty (default) turns OIDC sign-in off."""
    oidc_client_id: str = field(default="", metadata=_env("MENTATLAB_OIDC_CLIENT_ID"))
    """MentatLab's client id at the OIDC provider."""
    oidc_client_secret: str = field(default="", metadata=_env("MENTATLAB_OIDC_CLIENT_SECRET"))
    """MentatLab's client secret at the OIDC provider (``client_secret_basic``); it also
    keys the signature of the short-lived sign-in cookie, so every node needs the same."""
    oidc_redirect_url: str = field(default="", metadata=_env("MENTATLAB_OIDC_REDIRECT_URL"))
    """The callback URL registered at the provider (``https://host/auth/callback``); empty:
    derived from the request's host (set it behind a proxy that rewrites ``Host``)."""
    oidc_scopes: str = field(default="openid email profile",
                             metadata=_env("MENTATLAB_OIDC_SCOPES"))
    """Scopes asked for, space-separated; add the one that releases the role claim."""
    oidc_role_claim: str = field(default="groups", metadata=_env("MENTATLAB_OIDC_ROLE_CLAIM"))
    """Claim listing ``<org_id>:<role>`` entries (``acme:admin``); at each sign-in it sets
    the person's roles in those orgs. Empty: roles are only assigned in MentatLab."""
    oidc_default_org: str = field(default="", metadata=_env("MENTATLAB_OIDC_DEFAULT_ORG"))
    """Org a person who has no role anywhere joins at sign-in (with ``oidc_default_role``);
    empty: such a person is refused until given a role (``mentatctl members``)."""
    oidc_default_role: str = field(default="viewer", metadata=_env("MENTATLAB_OIDC_DEFAULT_ROLE"))
    """Role given in ``oidc_default_org``."""
    oidc_provider_name: str = field(default="", metadata=_env("MENTATLAB_OIDC_PROVIDER_NAME"))
    """Name on the dashboard's sign-in button ("Sign in with <name>"); empty: the issuer's
    host."""
    oidc_leeway_s: int = field(default=60, metadata=_env("MENTATLAB_OIDC_LEEWAY_S"))
    """Clock skew tolerated on ID-token ``exp``/``iat``, in seconds."""
    quota_key_ingest_requests_per_s: int = field(
        default=1000, metadata=_env("MENTATLAB_QUOTA_KEY_INGEST_REQUESTS_PER_S"))
    """Ingest requests per second per API key (or person); 0 = unlimited (429 above)."""
    quota_org_ingest_requests_per_s: int = field(
        default=10_000, metadata=_env("MENTATLAB_QUOTA_ORG_INGEST_REQUESTS_PER_S"))
    """Ingest requests per second per org, all its keys together; 0 = unlimited."""
    quota_key_ingest_spans_per_min: int = field(
        default=3_000_000, metadata=_env("MENTATLAB_QUOTA_KEY_INGEST_SPANS_PER_MIN"))
    """Spans per minute per API key (or person); a batch over what is left is refused whole
    (429); 0 = unlimited."""
    quota_org_ingest_spans_per_min: int = field(
        default=3_000_000, metadata=_env("MENTATLAB_QUOTA_ORG_INGEST_SPANS_PER_MIN"))
    """Spans per minute per org, all its keys together; 0 = unlimited."""
    quota_key_queries_per_min: int = field(
        default=600, metadata=_env("MENTATLAB_QUOTA_KEY_QUERIES_PER_MIN"))
    """Read requests (queries, live-stream connects, exports) per minute per API key (or
    person); 0 = unlimited."""
    quota_org_queries_per_min: int = field(
        default=6000, metadata=_env("MENTATLAB_QUOTA_ORG_QUERIES_PER_MIN"))
    """Read requests per minute per org, all its keys and people together; 0 = unlimited."""
    quota_refresh_s: float = field(default=10.0, metadata=_env("MENTATLAB_QUOTA_REFRESH_S"))
    """Seconds between two reads of the per-org quota overrides from the control store
    (``mentatctl quotas``); 0 = overrides are not read."""
    pii_mode: str = field(default="redact", metadata=_env("MENTATLAB_PII_MODE"))
    """What ingest does with PII and secrets in attribute values, event attributes and status
    messages, before anything is stored: ``off``, ``detect`` (record ``pii_findings`` only),
    ``redact`` (``<EMAIL_ADDRESS>``-style placeholders), ``hash`` (``<EMAIL_ADDRESS:hmac>``,
    keyed per org) or ``drop`` (remove the attribute). docs/governance.md."""
    pii_mode_overrides: str = field(default="", metadata=_env("MENTATLAB_PII_MODE_OVERRIDES"))
    """Per-org and per-project modes, ``org=mode,org/project=mode`` (in ``mentatlab.toml``
    also a table); a project entry wins over its org's, which wins over ``pii_mode``."""
    pii_custom_entities: str = field(default="", metadata=_env("MENTATLAB_PII_CUSTOM_ENTITIES"))
    """More categories to find, as a JSON object ``{"EMPLOYEE_ID": "\\bEMP-\\d{6}\\b"}``
    of upper-case names to Python regexes (in ``mentatlab.toml`` also a table)."""
    pii_hash_key: str = field(default="", metadata=_env("MENTATLAB_PII_HASH_KEY"))
    """HMAC key of ``hash`` mode (at least 16 characters); unset: a random key generated
    once into ``<data_dir>/pii_hash.key``. Every node of a deployment must share it."""
    pii_phone_regions: str = field(default="US,GB,DE,FR,IL,IN,CA,BR",
                                   metadata=_env("MENTATLAB_PII_PHONE_REGIONS"))
    """Comma-separated ISO 3166 regions whose national phone formats are found (numbers
    written with ``+`` and a country code are found whatever the list)."""
    pii_ner_model: str = field(default="", metadata=_env("MENTATLAB_PII_NER_MODEL"))
    """An installed spaCy pipeline (package name or folder) whose named entities add
    ``PERSON`` and ``LOCATION`` findings; empty (default): no NER. Never downloaded."""
    # guardrail policies (issue 17, docs/governance.md "Guardrail policies")
    policy_refresh_s: float = field(default=5.0, metadata=_env("MENTATLAB_POLICY_REFRESH_S"))
    """Seconds between two reads of the enforced policies from the control store: a change
    made through another node is enforced here within this time (at once on the node that
    made it); 0 = read only at start and on this node's own changes."""
    policy_builtins: bool = field(default=True, metadata=_env("MENTATLAB_POLICY_BUILTINS"))
    """Create the built-in policies (``builtin.*``, action ``log``) at start when missing."""
    log_level: str = field(default="INFO", metadata=_env("MENTATLAB_LOG_LEVEL"))
    """Python logging level of the server."""
    audit_checkpoint_every: int = field(default=1000,
                                        metadata=_env("MENTATLAB_AUDIT_CHECKPOINT_EVERY"))
    """Entries between two checkpoints of the audit log (each signed when a key is set)."""
    audit_signing_key_file: Path | None = field(
        default=None, metadata=_env("MENTATLAB_AUDIT_SIGNING_KEY_FILE"))
    """Unencrypted PEM Ed25519 private key that signs audit-log checkpoints
    (``mentatctl audit keygen`` writes one); unset: checkpoints are unsigned."""
    # --- encryption at rest (issue 17, docs/governance.md "Encryption at rest") -----------
    encryption_key: str = field(default="", repr=False,  # never printed
                                metadata=_env("MENTATLAB_ENCRYPTION_KEY"))
    """Encryption keys at rest, comma-separated, newest first (each 32 bytes in URL-safe
    base64, ``mentatctl governance keygen``): the embedded span store's encrypted disk and
    the control store's secrets. Environment or argument only, never ``mentatlab.toml``.
    Unset (default): nothing is encrypted."""
    encryption_key_file: Path | None = field(
        default=None, metadata=_env("MENTATLAB_ENCRYPTION_KEY_FILE"))
    """File holding the ``encryption_key`` list instead (one key per line, newest first;
    mode 0600), e.g. a mounted secret."""

    def encryption_keys(self) -> EncryptionKeys | None:
        """The configured encryption keys, or None when none is set.

        Raises:
            ConfigError: a malformed key, an unreadable or group/world-readable key file,
                or both settings set.
        """
        from mentatlab.governance.encryption import load_encryption_keys

        return load_encryption_keys(self.encryption_key, self.encryption_key_file)
    audit_retired_key_files: str = field(
        default="", metadata=_env("MENTATLAB_AUDIT_RETIRED_KEY_FILES"))
    """Comma-separated PEM files of retired audit signing keys (public keys, or the old
    private key files): checkpoints they signed still verify after a key rotation."""

    @property
    def tls_enabled(self) -> bool:
        """True when the listeners serve TLS (``tls_cert_file`` set): cookies are ``Secure``."""
        return self.tls_cert_file is not None

    @property
    def span_store_is_shared(self) -> bool:
        """True when the span store is a server other processes may write to as well."""
        return not self.span_store_url.startswith("chdb:")

    @property
    def span_store_url(self) -> str:
        """The span store URL with the default filled in."""
        return self.span_store or f"chdb://{self.data_dir / 'spans'}"

    @property
    def control_store_url(self) -> str:
        """The control store URL with the default filled in."""
        return self.control_store or f"sqlite:///{self.data_dir / 'control.db'}"

    @property
    def pricing_path(self) -> Path | None:
        """The pricing file to load, or None when there is none."""
        if self.pricing_file is not None:
            return self.pricing_file
        candidate = self.data_dir / "pricing.toml"
        return candidate if candidate.exists() else None


def _coerce(name: str, raw: Any, kind: Any) -> Any:
    text = str(raw).strip()
    try:
        if kind in (int, "int"):
            return int(text)
        if kind in (float, "float"):
            return float(text)
        if kind in (bool, "bool"):
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(text)
        if kind in ("Path", "Path | None"):
            return Path(text).expanduser() if text else None
    except ValueError:
        raise ConfigError(f"Expected {name} to be {kind}, got {raw!r}") from None
    return text


_NOT_FROM_FILE = frozenset({"encryption_key"})
"""Settings ``mentatlab.toml`` may not hold (it lives in the data dir, beside the data)."""


def _check_trace_quiet(value: float) -> None:
    if not TRACE_QUIET_MIN_S <= value <= TRACE_QUIET_MAX_S:
        raise ConfigError(f"Expected trace_quiet_s in {TRACE_QUIET_MIN_S}..{TRACE_QUIET_MAX_S}"
                          f" s, got {value}")


def _check_compaction(settings: Settings) -> None:
    """Bounds of the compaction settings (decision 0016). Raises ConfigError."""
    if settings.compact_interval_s != 0 and not 10 <= settings.compact_interval_s <= 86400:
        raise ConfigError("Expected compact_interval_s to be 0 (off) or 10 to 86400 s, got "
                          f"{settings.compact_interval_s}")
    if not 1 <= settings.compact_max_partitions <= 1000:
        raise ConfigError("Expected compact_max_partitions to be 1 to 1000, got "
                          f"{settings.compact_max_partitions}")


_TABLE_SETTINGS: dict[str, Any] = {
    "pii_mode_overrides": lambda table: ",".join(f"{k}={v}" for k, v in table.items()),
    "pii_custom_entities": json.dumps,
}
"""String settings that ``mentatlab.toml`` may also give as a table, and how it is written."""


def _from_table(name: str, raw: Any) -> Any:
    """A TOML table of a :data:`_TABLE_SETTINGS` setting as its string form; else ``raw``."""
    if isinstance(raw, dict) and name in _TABLE_SETTINGS:
        return _TABLE_SETTINGS[name](raw)
    return raw


def _check_wal(settings: Settings) -> None:
    """Bounds of the write-ahead log settings (decision 0022). Raises ConfigError."""
    for name in ("wal_max_disk_bytes", "wal_max_memory_bytes", "wal_insert_bytes",
                 "wal_segment_bytes"):
        if getattr(settings, name) < 1024 * 1024:
            raise ConfigError(f"Expected {name} >= 1048576 (1 MiB), got "
                              f"{getattr(settings, name)}")
    if not 0.01 <= settings.wal_insert_interval_s <= 1.5:
        raise ConfigError("Expected wal_insert_interval_s in 0.01..1.5 s (the visibility lag "
                          f"must stay under 2 s), got {settings.wal_insert_interval_s}")


def _check_retention(settings: Settings) -> None:
    """Bounds of the retention settings (decision 0019). Raises ConfigError."""
    for name in ("span_retention_days", "aggregate_retention_days", "audit_retention_years"):
        if getattr(settings, name) < 0:
            raise ConfigError(f"Expected {name} >= 0 (0 = forever), got {getattr(settings, name)}")
    spans, aggregates = settings.span_retention_days, settings.aggregate_retention_days
    if aggregates and (spans == 0 or aggregates < spans):
        raise ConfigError(f"Expected aggregate_retention_days to be 0 (forever) or at least "
                          f"span_retention_days ({spans or 'forever'}), got {aggregates}")
    if settings.retention_interval_s != 0 and not 60 <= settings.retention_interval_s <= 86400:
        raise ConfigError("Expected retention_interval_s to be 0 (off) or 60 to 86400 s, got "
                          f"{settings.retention_interval_s}")


def load_settings(**overrides: Any) -> Settings:
    """Resolve settings: explicit ``overrides`` > env vars > ``mentatlab.toml`` > defaults.

    Raises:
        ConfigError: a value of the wrong type or an unknown override name.
    """
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    unknown = set(overrides) - set(fields)
    if unknown:
        raise ConfigError(f"Unknown settings: {sorted(unknown)}")
    values: dict[str, Any] = {}
    data_dir_raw = overrides.get("data_dir") or os.environ.get("MENTATLAB_DATA_DIR")
    data_dir = Path(data_dir_raw).expanduser() if data_dir_raw else default_data_dir()
    file_values: dict[str, Any] = {}
    config_file = data_dir / "mentatlab.toml"
    if config_file.exists():
        try:
            file_values = tomllib.loads(config_file.read_text()).get("server", {})
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"Expected {config_file} to be valid TOML: {exc}") from exc
    for name, f in fields.items():
        kind = f.type
        if name in overrides and overrides[name] is not None:
            raw = overrides[name]
        elif f.metadata["env"] in os.environ:
            raw = os.environ[f.metadata["env"]]
        elif name in file_values:
            if name in _NOT_FROM_FILE:
                raise ConfigError(f"Expected {name} in the environment, not in {config_file}: "
                                  "a key must not be stored beside the data it protects")
            raw = file_values[name]
        else:
            continue
        raw = _from_table(name, raw)
        values[name] = raw if not isinstance(raw, str) else _coerce(name, raw, kind)
        if name == "data_dir":
            values[name] = Path(values[name]).expanduser()
    settings = Settings(**values)
    if settings.workers < 1:
        raise ConfigError(f"Expected workers >= 1, got {settings.workers}")
    if settings.workers > 1 and not settings.span_store_is_shared:
        raise ConfigError(
            f"workers={settings.workers} needs a ClickHouse span store: the embedded chDB "
            "store can be opened by one process only (set MENTATLAB_SPAN_STORE="
            "clickhouse://… or use one worker)")
    _check_trace_quiet(settings.trace_quiet_s)
    _check_compaction(settings)
    _check_wal(settings)
    from mentatlab.governance.pii_config import PiiConfig

    PiiConfig.from_settings(settings)  # fail fast on a bad PII mode, override or regex
    _check_retention(settings)
    _check_oidc(settings)
    settings.encryption_keys()  # fail fast on a malformed key
    return settings


def _check_oidc(settings: Settings) -> None:
    """The OIDC settings hang together. Raises ConfigError."""
    if settings.oidc_issuer and not (settings.oidc_client_id and settings.oidc_client_secret):
        raise ConfigError("oidc_issuer needs oidc_client_id and oidc_client_secret")
    if settings.oidc_issuer and not settings.oidc_issuer.startswith(("https://", "http://")):
        raise ConfigError(f"Expected oidc_issuer to be an http(s) URL, got "
                          f"{settings.oidc_issuer!r}")
    from mentatlab.access.roles import USER_ROLES

    if settings.oidc_default_role not in USER_ROLES:
        raise ConfigError(f"Expected oidc_default_role to be one of {list(USER_ROLES)}, got "
                          f"{settings.oidc_default_role!r}")
