"""Token buckets and the quota rules, on a fake clock (no timing in the assertions)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from mentatlab.access.principal import OPEN_INSTALLATION, Principal
from mentatlab.access.roles import Permission
from mentatlab.errors import ConfigError, RateLimited
from mentatlab.server.metrics import ServerMetrics
from mentatlab.server.quotas import QuotaLimits, Quotas, TokenBucket
from mentatlab.settings import load_settings


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def key(key_id: str, org: str | None = "acme") -> Principal:
    return Principal.for_key(key_id, key_id, "ingest", org, None)


def rate_limited_count(metrics: ServerMetrics, kind: str, scope: str) -> float:
    value = metrics.registry.get_sample_value(
        "mentatlab_rate_limited_total", {"kind": kind, "scope": scope})
    return value or 0.0


def test_bucket_refills_at_its_rate_up_to_capacity() -> None:
    bucket = TokenBucket(capacity=10, rate_per_s=2, tokens=10, updated_s=0.0)
    assert bucket.take(10, 0.0) == 0.0
    assert bucket.take(1, 0.0) == pytest.approx(0.5)
    assert bucket.tokens == 0  # a refusal takes nothing
    assert bucket.take(3, 1.0) == pytest.approx(0.5)  # 2 refilled, 3 wanted
    assert bucket.take(2, 1.0) == 0.0
    assert bucket.take(1, 100.0) == 0.0
    assert bucket.tokens == 9  # capped at capacity before taking


def test_a_batch_over_capacity_passes_a_full_bucket_and_leaves_debt() -> None:
    bucket = TokenBucket(capacity=10, rate_per_s=1, tokens=10, updated_s=0.0)
    assert bucket.take(25, 0.0) == 0.0
    assert bucket.tokens == -15
    assert bucket.take(25, 5.0) == pytest.approx(20.0)  # until full again


def test_requests_over_the_key_limit_are_refused_with_whole_seconds_to_wait() -> None:
    clock = FakeClock()
    metrics = ServerMetrics(CollectorRegistry())
    quotas = Quotas(QuotaLimits(key_ingest_requests_per_s=3), metrics, clock)
    for _ in range(3):
        quotas.admit_request(key("k1"), Permission.INGEST)
    with pytest.raises(RateLimited) as refused:
        quotas.admit_request(key("k1"), Permission.INGEST)
    assert refused.value.retry_after_s == 1  # 1/3 s, rounded up to the header's unit
    assert "3 ingest requests per second per key" in str(refused.value)
    assert rate_limited_count(metrics, "ingest_requests", "key") == 1
    quotas.admit_request(key("k2"), Permission.INGEST)  # another key has its own bucket
    clock.now_s += 1 / 3
    quotas.admit_request(key("k1"), Permission.INGEST)


def test_the_org_limit_is_shared_by_its_keys() -> None:
    clock = FakeClock()
    metrics = ServerMetrics(CollectorRegistry())
    quotas = Quotas(QuotaLimits(key_queries_per_min=10, org_queries_per_min=4), metrics, clock)
    for name in ("a", "b", "a", "b"):
        quotas.admit_request(key(name), Permission.READ_SPANS)
    with pytest.raises(RateLimited) as refused:
        quotas.admit_request(key("c"), Permission.READ_USAGE)
    assert refused.value.retry_after_s == 15  # 4 per minute: one every 15 s
    assert rate_limited_count(metrics, "queries", "org") == 1
    quotas.admit_request(key("x", org="globex"), Permission.READ_USAGE)


def test_a_refusal_by_the_org_takes_nothing_from_the_key() -> None:
    clock = FakeClock()
    quotas = Quotas(QuotaLimits(key_ingest_spans_per_min=100, org_ingest_spans_per_min=60),
                    clock=clock)
    quotas.admit_spans(key("a"), 50)
    with pytest.raises(RateLimited) as refused:
        quotas.admit_spans(key("a"), 20)  # the key has 50 left, the org 10
    assert refused.value.retry_after_s == 10  # 10 more spans at 1 span/s
    quotas.admit_spans(key("a"), 10)
    clock.now_s += 60
    quotas.admit_spans(key("a"), 60)  # the org is full again; the key had 40 + 60 refilled


def test_admin_routes_are_not_limited_and_reads_are_queries() -> None:
    quotas = Quotas(QuotaLimits(key_queries_per_min=1, key_ingest_requests_per_s=1),
                    clock=FakeClock())
    admin = Principal.for_key("adm", "adm", "admin", "acme", None)
    for _ in range(5):
        quotas.admit_request(admin, Permission.MANAGE_KEYS)
    quotas.admit_request(admin, Permission.READ_AUDIT)
    with pytest.raises(RateLimited):
        quotas.admit_request(admin, Permission.READ_ALERTS)
    quotas.admit_request(admin, Permission.INGEST)  # ingest counts apart from queries


def test_an_installation_wide_key_has_no_org_bucket() -> None:
    quotas = Quotas(QuotaLimits(org_ingest_requests_per_s=1), clock=FakeClock())
    for _ in range(3):
        quotas.admit_request(key("root", org=None), Permission.INGEST)


def test_the_open_installation_is_never_limited() -> None:
    quotas = Quotas(QuotaLimits(key_ingest_requests_per_s=1, key_ingest_spans_per_min=1),
                    clock=FakeClock())
    for _ in range(3):
        quotas.admit_request(OPEN_INSTALLATION, Permission.INGEST)
        quotas.admit_spans(OPEN_INSTALLATION, 1000)


def test_zero_is_unlimited_and_negative_is_a_config_error() -> None:
    quotas = Quotas(QuotaLimits.from_settings(load_settings(
        quota_key_ingest_requests_per_s=0, quota_org_ingest_requests_per_s=0)), clock=FakeClock())
    for _ in range(20_000):
        quotas.admit_request(key("k"), Permission.INGEST)
    with pytest.raises(ConfigError, match="quota_key_queries_per_min"):
        QuotaLimits.from_settings(load_settings(quota_key_queries_per_min=-1))


def test_defaults_never_bother_a_developer() -> None:
    """A busy developer's minute on one key: bursts of 500 requests, 1.2M spans, 300 reads."""
    clock = FakeClock()
    quotas = Quotas(QuotaLimits.from_settings(load_settings()), clock=clock)
    dev = key("dev")
    for second in range(60):
        clock.now_s = 1000.0 + second
        for _ in range(500 if second % 10 == 0 else 20):
            quotas.admit_request(dev, Permission.INGEST)
        quotas.admit_spans(dev, 20_000)
        for _ in range(5):
            quotas.admit_request(dev, Permission.READ_USAGE)
