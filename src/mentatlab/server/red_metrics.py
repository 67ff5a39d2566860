"""RED metrics of the ingested spans: rate, errors and duration per service, operation, model.

Counted in the ingest path once a batch is committed (:meth:`RedMetrics.observe_batch`),
on the batch's Arrow columns: labels are mapped per *distinct value* and the batch is
grouped by (org, project, service, operation, model, duration bucket) with numpy
(``np.unique`` of one integer key, ``np.bincount`` for counts and sums), so the Python
work grows with the number of groups, never with the number of spans.

Exported series (Prometheus text format):

* ``mentatlab_red_spans_total{service, operation, model}``: spans ingested (the rate);
* ``mentatlab_red_errors_total{service, operation, model}``: those with status ``error``
  or ``timeout``;
* ``mentatlab_red_duration_seconds{service, operation, model}``: histogram of span
  duration in seconds (buckets :data:`DURATION_BUCKETS_S`), with ``_sum`` and ``_count``.

``service`` is the span's ``service_name``, ``operation`` its coarse ``operation``
(``chat``, ``tool``, ``agent``...), ``model`` the response model, else the request model
(``""`` for spans without one).

**Cardinality cap.** Each label admits its first :data:`MAX_LABEL_VALUES` distinct values
(first come, first kept, so a series never changes meaning and counters stay monotonic);
later values are exported as ``other``. Distinct (service, operation, model) combinations
are capped at :data:`MAX_SERIES`, later ones count under ``other/other/other``; tenants
((org, project) pairs) at :data:`MAX_TENANTS`, later ones as ``other/other``. So the
public scrape holds at most ``MAX_SERIES + 1`` label sets per metric.

**Tenancy.** The public ``/metrics`` sums over every org and project and carries no
``org_id`` or ``project_id`` label. Per-tenant series (the same metrics with ``org_id``
and ``project_id``) are :meth:`RedMetrics.render_tenants`, served on
``/metrics/tenants`` to a key with ``read_usage``, only within its scope.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["DURATION_BUCKETS_S", "MAX_LABEL_VALUES", "MAX_SERIES", "MAX_TENANTS", "OTHER",
           "RedMetrics"]

DURATION_BUCKETS_S: Final[tuple[float, ...]] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
"""Upper bounds (``le``, seconds) of the duration histogram: Prometheus' default buckets
stretched to 5 minutes, as agent runs last far longer than HTTP requests."""
MAX_LABEL_VALUES: Final = 50
"""Distinct values each of ``service``, ``operation`` and ``model`` may take; later ones
are ``other``."""
MAX_SERIES: Final = 1_000
"""Distinct (service, operation, model) label sets; later ones are ``other/other/other``."""
MAX_TENANTS: Final = 1_000
"""Distinct (org, project) pairs kept apart for the per-tenant series."""
OTHER: Final = "other"
"""The label value past a cap."""

_LABELS = ("service", "operation", "model")
_Key = tuple[str, str, str, str, str]
"""(org, project, service, operation, model)."""


@dataclass(slots=True)
class _Series:
    buckets: np.ndarray = field(default_factory=lambda: np.zeros(len(DURATION_BUCKETS_S) + 1,
                                                                 dtype=np.int64))
    """Spans per bucket (not cumulative); the last is above the highest bound."""
    sum_s: float = 0.0
    errors: int = 0


class RedMetrics:
    """Running RED counters of committed spans (thread-safe)."""

    def __init__(self, max_label_values: int = MAX_LABEL_VALUES,
                 max_series: int = MAX_SERIES, max_tenants: int = MAX_TENANTS) -> None:
        self._lock = threading.Lock()
        self._max_values = max_label_values
        self._max_series = max_series
        self._max_tenants = max_tenants
        self._admitted: dict[str, set[str]] = {name: set() for name in _LABELS}
        self._combos: set[tuple[str, str, str]] = set()
        self._tenants: set[tuple[str, str]] = set()
        self._series: dict[_Key, _Series] = {}

    def observe_batch(self, table: pa.Table) -> None:
        """Count a committed batch of N spans.

        Args:
            table: Arrow table with the span schema's ``org_id``, ``project_id``,
                ``service_name``, ``operation``, ``request_model``, ``response_model``,
                ``status`` and ``duration_ms`` columns (ms).
        """
        if table.num_rows == 0:
            return
        response = table.column("response_model")
        model = pc.if_else(pc.equal(pc.fill_null(response, ""), ""),
                           pc.fill_null(table.column("request_model"), ""), response)
        duration_s = pc.divide(pc.fill_null(table.column("duration_ms"), 0.0), 1000.0
                               ).to_numpy(zero_copy_only=False)
        bucket = np.searchsorted(np.asarray(DURATION_BUCKETS_S), duration_s, side="left")
        error = pc.not_equal(table.column("status"), "ok").to_numpy(zero_copy_only=False)
        with self._lock:
            labels = [self._codes(None, table.column("org_id")),
                      self._codes(None, table.column("project_id")),
                      self._codes("service", table.column("service_name")),
                      self._codes("operation", table.column("operation")),
                      self._codes("model", model)]
            # one integer key per (labels, bucket), kept dense by np.unique at each step
            group = np.zeros(table.num_rows, dtype=np.int64)
            for codes, names in labels:
                group = np.unique(group * len(names) + codes, return_inverse=True)[1]
            group = group * (len(DURATION_BUCKETS_S) + 1) + bucket
            keys, first, inverse = np.unique(group, return_index=True, return_inverse=True)
            counts = np.bincount(inverse)
            errors = np.bincount(inverse, weights=error)
            sums_s = np.bincount(inverse, weights=duration_s)
            for k in range(len(keys)):
                row = first[k]  # a span of the group: its labels and bucket are the group's
                org, project, service, operation, model_name = (
                    names[codes[row]] for codes, names in labels)
                series = self._series_of(org, project, (service, operation, model_name))
                series.buckets[bucket[row]] += int(counts[k])
                series.sum_s += float(sums_s[k])
                series.errors += int(errors[k])

    def _codes(self, label: str | None, column: pa.ChunkedArray | pa.Array
               ) -> tuple[np.ndarray, list[str]]:
        """Per span, the index of its (capped) value, and the values: per distinct value.

        ``label`` None: no cap (org and project; the tenant cap is in :meth:`_series_of`).
        Values past the label's cap become ``other``. Called with the lock held.
        """
        values = pc.cast(pc.fill_null(column, ""), pa.string())
        distinct = pc.unique(values)
        codes = pc.index_in(values, distinct).to_numpy(zero_copy_only=False)
        names: list[str] = distinct.to_pylist()
        if label is not None:
            admitted = self._admitted[label]
            for i, value in enumerate(names):
                if value not in admitted and len(admitted) < self._max_values:
                    admitted.add(value)
                names[i] = value if value in admitted else OTHER
        return codes, names

    def _series_of(self, org: str, project: str, labels: tuple[str, str, str]) -> _Series:
        """The running series of one label set, after the series and tenant caps."""
        if labels not in self._combos:
            if len(self._combos) < self._max_series:
                self._combos.add(labels)
            else:
                labels = (OTHER, OTHER, OTHER)
        tenant = (org, project)
        if tenant not in self._tenants:
            if len(self._tenants) < self._max_tenants:
                self._tenants.add(tenant)
            else:
                tenant = (OTHER, OTHER)
        key = (*tenant, *labels)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series()
        return series

    def _summed(self, tenant_labels: bool, org_id: str | None, project_id: str | None
                ) -> dict[tuple[str, ...], _Series]:
        out: dict[tuple[str, ...], _Series] = {}
        with self._lock:
            for (org, project, *labels), series in self._series.items():
                if org_id is not None and org != org_id:
                    continue
                if project_id is not None and project != project_id:
                    continue
                key = (org, project, *labels) if tenant_labels else tuple(labels)
                total = out.get(key)
                if total is None:
                    total = out[key] = _Series()
                total.buckets += series.buckets
                total.sum_s += series.sum_s
                total.errors += series.errors
        return out

    def collect_public(self) -> Iterator[Metric]:
        """The three metric families summed over tenants (labels service, operation, model)."""
        yield from _families(self._summed(False, None, None), list(_LABELS))

    def render_tenants(self, org_id: str | None, project_id: str | None) -> bytes:
        """The per-tenant series of one scope (None: every org / project), in the text format.

        Labels ``org_id``, ``project_id``, ``service``, ``operation``, ``model``.
        """
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Fixed(list(_families(self._summed(True, org_id, project_id),
                                                ["org_id", "project_id", *_LABELS]))))
        return generate_latest(registry)

    def label_sets(self) -> int:
        """Distinct public (service, operation, model) label sets counted so far."""
        return len(self._summed(False, None, None))


def _families(series: dict[tuple[str, ...], _Series], labels: list[str]) -> Iterable[Metric]:
    spans = CounterMetricFamily("mentatlab_red_spans", "Spans ingested (committed), by "
                                "service, operation and model", labels=labels)
    errors = CounterMetricFamily("mentatlab_red_errors", "Ingested spans with status error "
                                 "or timeout, by service, operation and model", labels=labels)
    duration = HistogramMetricFamily("mentatlab_red_duration_seconds", "Duration of ingested "
                                     "spans in seconds, by service, operation and model",
                                     labels=labels)
    bounds = [*(repr(b) for b in DURATION_BUCKETS_S), "+Inf"]
    for key in sorted(series):
        s = series[key]
        cumulative = np.cumsum(s.buckets)
        spans.add_metric(list(key), float(cumulative[-1]))
        errors.add_metric(list(key), float(s.errors))
        duration.add_metric(list(key), list(zip(bounds, (float(c) for c in cumulative),
                                                strict=True)), s.sum_s)
    return (spans, errors, duration)


class RedCollector(Collector):
    """Registers :meth:`RedMetrics.collect_public` on a registry (the public ``/metrics``)."""

    def __init__(self, red: RedMetrics) -> None:
        self._red = red

    def collect(self) -> Iterator[Metric]:
        yield from self._red.collect_public()


class _Fixed(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self._metrics
