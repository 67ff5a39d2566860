"""Cost of one alert-evaluator run: rules measured over a stored span table, and the
delivery of the alerts they raise to a webhook on loopback.

Builds (or reuses) the chDB store of bench/query.py with ``--spans`` spans over 30 days,
resolves it (attribution and aggregates) as the server does, and a SQLite control store in a temporary
folder. For each count in ``--rules`` it creates that many rules, half monthly budgets
scoped to one project each and half threshold rules (error rate over 5 min, p95 latency
over 1 h, cost over 1 h, by project), then times:

* ``quiet``: a run in which nothing crosses (limits and thresholds out of reach): the
  price of measuring, paid every ``alert_interval_s`` by the leader;
* ``firing``: a run after the budgets' limits were lowered so every budget crosses, with
  one delivery each to a real webhook receiver on 127.0.0.1 (tests/receivers.py).

Usage: .venv/bin/python bench/alerting.py [--spans 1000000] [--rules 10,100]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from query import open_store, resolve  # noqa: E402

from mentatlab.alerting.alert_rule import check_rule  # noqa: E402
from mentatlab.alerting.evaluator import AlertEvaluator  # noqa: E402
from mentatlab.alerting.notifiers import NotifierConfig  # noqa: E402
from mentatlab.storage.control import AlertRuleSpec, ControlStore, migrate_control_store  # noqa: E402
from receivers import WebhookReceiver  # noqa: E402

_THRESHOLDS = (("error_rate", 300), ("latency_p95_ms", 3600), ("cost", 3600))


def _rules(count: int, limit: Decimal, url: str) -> list[AlertRuleSpec]:
    specs = []
    for i in range(count):
        project = {"project_id": f"proj-{i % 40}"}
        if i % 2 == 0:
            specs.append(AlertRuleSpec(name=f"budget-{i}", kind="budget", metric="cost",
                                       period="month", limit_amount=limit, filters=project,
                                       channels=(f"webhook:{url}",)))
        else:
            metric, window_s = _THRESHOLDS[(i // 2) % len(_THRESHOLDS)]
            specs.append(AlertRuleSpec(name=f"rule-{i}", kind="threshold", metric=metric,
                                       op=">", threshold=Decimal(10**9), window_s=window_s,
                                       filters=project, channels=(f"webhook:{url}",)))
    return [check_rule(s) for s in specs]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--rules", default="10,100")
    args = ap.parse_args()
    with open_store("chdb", args.spans) as store, WebhookReceiver() as hook:
        t0 = time.monotonic()
        resolve(store)
        print(f"{args.spans:,} spans; aggregates built in {time.monotonic() - t0:.1f} s",
              flush=True)
        print("| rules | quiet run (ms, median of 5) | firing run (ms) | alerts | sent |")
        print("| ---: | ---: | ---: | ---: | ---: |")
        for count in (int(c) for c in args.rules.split(",")):
            with tempfile.TemporaryDirectory() as folder:
                url = f"sqlite:///{folder}/control.db"
                migrate_control_store(url)
                control = ControlStore(url)
                evaluator = AlertEvaluator(store, control, NotifierConfig(timeout_s=5))
                for spec in _rules(count, Decimal(10**9), hook.url):
                    control.alerts.create_rule(spec)
                now = datetime.now(UTC)
                times = []
                for _ in range(6):
                    t = time.perf_counter()
                    report = evaluator.run_once(now)
                    times.append(1000 * (time.perf_counter() - t))
                    assert not report.alerts and not report.num_failed_rules
                quiet_ms = statistics.median(times[1:])
                for rule in control.alerts.list_rules():  # every budget now crosses 100 %
                    control.alerts.delete_rule(rule.id)
                for spec in _rules(count, Decimal("0.000001"), hook.url):
                    control.alerts.create_rule(spec)
                t = time.perf_counter()
                report = evaluator.run_once(now)
                firing_ms = 1000 * (time.perf_counter() - t)
                assert report.num_sent == (count + 1) // 2, report
                print(f"| {count} | {quiet_ms:.0f} | {firing_ms:.0f} | {len(report.alerts)} "
                      f"| {report.num_sent} |", flush=True)
                control.close()


if __name__ == "__main__":
    main()
