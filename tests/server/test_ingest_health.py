"""The trailing-window readings of server/ingest_health.py, without a server: which reading
a rate is taken from, how many are kept, and the rates and nulls of the document."""

from __future__ import annotations

from mentatlab.server.ingest_health import (
    MAX_WINDOW_S,
    CounterReading,
    IngestRates,
    ingest_health,
    read_counters,
)
from mentatlab.server.metrics import ServerMetrics
from mentatlab.settings import load_settings


def test_the_base_is_the_newest_reading_at_least_a_window_old() -> None:
    rates = IngestRates(started_s=100.0)
    # the first request: only the start's zeros are older, whatever the window
    assert rates.base_for(CounterReading(103.0, accepted=30), 10).at_s == 100.0
    assert rates.base_for(CounterReading(108.0, accepted=80), 10).at_s == 100.0
    assert rates.base_for(CounterReading(113.0, accepted=130), 10).at_s == 103.0
    assert rates.base_for(CounterReading(118.0, accepted=180), 10).at_s == 108.0
    # a smaller window: a newer base
    assert rates.base_for(CounterReading(119.0, accepted=190), 1).at_s == 118.0


def test_readings_are_spaced_and_bounded_to_the_longest_window() -> None:
    rates = IngestRates(started_s=0.0)
    rates.base_for(CounterReading(1.0), 10)
    rates.base_for(CounterReading(1.2), 10)  # within 0.5 s of the last kept: not kept
    assert rates.base_for(CounterReading(1.4), 0.3).at_s == 1.0
    for second in range(2, 400):
        rates.base_for(CounterReading(float(second)), 10)
    kept = rates.base_for(CounterReading(400.0), MAX_WINDOW_S)
    assert kept.at_s == 400.0 - MAX_WINDOW_S, "the longest window still has its base"
    assert rates.base_for(CounterReading(400.5), 1e9).at_s == 400.0 - MAX_WINDOW_S, "the oldest"


def test_the_document_divides_differences_by_the_window() -> None:
    metrics = ServerMetrics()
    settings = load_settings(wal=False, ingest_workers=0)
    base = CounterReading(10.0, accepted=100, rejected={"invalid": 2, "backpressure": 0},
                          commit_wait_sum_s=1.0, commits=10)
    now = CounterReading(14.0, accepted=300, rejected={"invalid": 6, "backpressure": 40},
                         commit_wait_sum_s=1.2, commits=14)
    doc = ingest_health(metrics, settings, now, base, (300, 200, 3), uptime_s=14.0,
                        wal_enabled=False, workers_configured=0)
    assert doc["window_s"] == 4.0 and doc["uptime_s"] == 14.0
    assert doc["spans"]["accepted_per_s"] == 50.0
    assert doc["spans"]["rejected_per_s"] == {"backpressure": 10.0, "invalid": 1.0}
    assert doc["spans"]["rejected_total"] == {"backpressure": 40, "invalid": 6}
    assert doc["commit"]["num_commits"] == 4
    assert abs(doc["commit"]["wait_mean_ms"] - 50.0) < 1e-9  # 0.2 s over 4 commits
    assert doc["memory"] == {"rss_bytes": 300, "server_rss_bytes": 200, "num_processes": 3}
    # no commit in the window: no mean; no log: null sizes
    idle = ingest_health(metrics, settings, base, base, (1, 1, 1), uptime_s=10.0,
                         wal_enabled=False, workers_configured=0)
    assert idle["commit"]["wait_mean_ms"] is None and idle["spans"]["accepted_per_s"] == 0
    assert idle["wal"]["memory_bytes"] is None and idle["wal"]["enabled"] is False


def test_counters_are_read_from_the_metrics() -> None:
    metrics = ServerMetrics()
    metrics.spans_accepted.labels("otlp_http").inc(7)
    metrics.spans_accepted.labels("events").inc(3)
    metrics.spans_rejected.labels("otlp_http", "invalid").inc(2)
    metrics.spans_rejected.labels("otlp_grpc", "invalid").inc(1)
    metrics.write_latency_s.observe(0.25)
    reading = read_counters(metrics, at_s=5.0)
    assert reading == CounterReading(5.0, accepted=10, rejected={"invalid": 3, "backpressure": 0},
                                     commit_wait_sum_s=0.25, commits=1)
