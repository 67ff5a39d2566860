"""Alerting with several nodes: three `mentatctl serve` nodes on one ClickHouse span store
and one PostgreSQL control store (their own), spans round-robin. Exactly one node runs the
alert evaluator; a budget notifies a real webhook once per threshold; when that node is
killed with kill -9, another takes the job over and notifies the next threshold, without
repeating the first."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from nodes import Node, node_env, otlp_json, start_nodes, wait_for

from backends import fresh_postgres_database
from clickhouse_endpoint import EndpointProcess
from receivers import WebhookReceiver
from serve_process import stop

pytestmark = pytest.mark.slow

# gpt-4o at 2.50 / 10.00 USD per 1M tokens: 1000 input + 100 output tokens = 0.0035 USD
SPAN_USD = 0.0035


@pytest.fixture
def nodes(tmp_path: Path, postgres_cluster: tuple[str, Path | None]) -> Iterator[list[Node]]:
    with EndpointProcess(tmp_path / "endpoint") as endpoint, \
            fresh_postgres_database(postgres_cluster[0]) as control:
        span_store = (f"clickhouse://default@{endpoint.host}:{endpoint.port}/mentat_alerts"
                      "?compress=false&connect_timeout_s=2")
        env = node_env(span_store, control, MENTATLAB_ALERT_INTERVAL_S="0.5")
        started = start_nodes([tmp_path / f"node{i}" for i in range(3)], env)
        try:
            yield started
        finally:
            for node in started:
                stop(node.proc)


def _leaders(nodes: list[Node]) -> list[Node]:
    return [n for n in nodes if n.metric("mentatlab_job_leader", job="alerts") == 1]


def _send(nodes: list[Node], project: str, num_traces: int) -> None:
    for i in range(num_traces):
        node = nodes[i % len(nodes)]
        answer = httpx.post(f"{node.url}/v1/traces", json=otlp_json(uuid.uuid4().hex, 5, project),
                            timeout=60)
        assert answer.status_code == 200, answer.text


def test_one_node_evaluates_and_a_survivor_takes_over_without_repeating(
        nodes: list[Node]) -> None:
    project = f"budget-{uuid.uuid4().hex[:6]}"
    wait_for(lambda: len(_leaders(nodes)) == 1, 30, "one alerts leader")
    with WebhookReceiver() as hook:
        made = httpx.post(f"{nodes[1].url}/api/v1/alert-rules", json={
            "name": "project budget", "kind": "budget", "period": "month",
            "limit_amount": "0.30", "thresholds": ["0.5", "1"],
            "filters": {"project_id": project}, "channels": [f"webhook:{hook.url}"]},
            timeout=30)
        assert made.status_code == 200, made.text
        _send(nodes, project, 10)  # 50 spans = 0.175 USD: past 50 % (0.15)
        first = hook.wait_for(1, 30)[0].json()
        # the evaluator may run between two requests: it fires at the first spend past 0.15
        assert first["threshold"] == "0.15"
        assert Decimal("0.15") <= Decimal(first["value"]) <= Decimal("0.175")

        leader = _leaders(nodes)[0]
        leader.proc.send_signal(signal.SIGKILL)
        leader.proc.wait(10)
        survivors = [n for n in nodes if n is not leader]
        wait_for(lambda: len(_leaders(survivors)) == 1, 30, "a survivor to lead alerts")

        _send(survivors, project, 10)  # 100 spans = 0.35 USD: past 100 % (0.30)
        received = hook.wait_for(2, 30)
        second = received[1].json()
        assert second["threshold"] == "0.3"
        assert Decimal("0.3") <= Decimal(second["value"]) <= Decimal("0.35")
        assert second["alert_id"] != first["alert_id"]
        time.sleep(2)  # several more evaluation runs: nothing is sent again
        assert len(hook.requests) == 2
        for node in survivors:  # every node reads the same alert history
            alerts = httpx.get(f"{node.url}/api/v1/alerts", timeout=30).json()["alerts"]
            assert sorted(a["threshold"] for a in alerts) == ["0.15", "0.3"]
            assert all(d["status"] == "sent" for a in alerts for d in a["deliveries"])
