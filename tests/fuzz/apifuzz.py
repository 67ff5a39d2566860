"""Helpers of the API fuzz run: a live server with seeded data, and the schemathesis CLI.

The server is real (uvicorn on 127.0.0.1, port 0, a temporary data dir, the embedded
store, auth required with an installation-wide admin key); schemathesis reads its live
``/openapi.json``, so every route that exists when the suite runs is fuzzed, new ones
included. schemathesis runs as its command-line tool (``st run``), as CI users run it:
every phase (coverage, fuzzing, stateful), one worker, a fixed seed, bounded examples.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from server_payloads import JSON, encode, export_request, llm_span, new_trace_id
from serverkit import LiveServer, make_settings, run_live_server

SEED = 14
"""The fixed seed of every fuzz run (issue 14), so CI replays the same cases."""
MAX_EXAMPLES = 100
"""Generated cases per operation in the fuzzing phase (the coverage phase adds its own
edge cases, the stateful phase its scenarios)."""
RUN_TIMEOUT_S = 600
"""The whole schemathesis run is stopped after this long (it takes about a minute)."""

_ST = Path(sys.executable).with_name("st")


@dataclass
class FuzzTarget:
    """A running server to fuzz, the headers that authenticate to it, and seeded ids."""

    live: LiveServer
    headers: dict[str, str]
    ids: dict[str, list[str]] = field(default_factory=dict)
    """Path parameter name → ids of seeded objects (``rule_id``, ``key_id``, ``user_id``)."""

    @property
    def url(self) -> str:
        return self.live.url

    def unhandled_errors(self) -> dict[str, float]:
        """``mentatlab_unhandled_errors_total`` by exception type (non-zero entries)."""
        metric = self.live.state.metrics.unhandled_errors
        return {sample.labels["exception"]: sample.value
                for family in metric.collect() for sample in family.samples
                if sample.name.endswith("_total") and sample.value}


def start_target(data_dir: Path) -> Iterator[FuzzTarget]:
    """Start a server with auth required, an admin key, spans, a rule, a key and a member."""
    # quotas off: a 429 would stop a case before the logic it is meant to reach
    settings = make_settings(data_dir, auth_required=True, quota_key_queries_per_min=0,
                             quota_org_queries_per_min=0, quota_key_ingest_requests_per_s=0,
                             quota_org_ingest_requests_per_s=0)
    for live in run_live_server(settings):
        issued = live.state.control.create_api_key(None, None, "fuzz", role="admin")
        target = FuzzTarget(live, {"Authorization": f"Bearer {issued.key}"})
        _seed(target)
        yield target


def _seed(target: FuzzTarget) -> None:
    """Two small traces, and through the API an org with a member, a spare key and a rule,
    so the operations on one object reach it (not only 404s)."""
    with httpx.Client(base_url=target.url, headers=target.headers, timeout=30) as client:
        for project in ("acme", "globex"):
            trace = new_trace_id()
            root = llm_span(trace, name="agent run", input_tokens=None, output_tokens=None)
            child = llm_span(trace, parent=root.span_id, input_tokens=200, output_tokens=80)
            body, headers = encode(export_request([root, child], project_id=project), JSON)
            _ok(client.post("/v1/traces", content=body, headers=headers))
        org = _ok(client.post("/api/v1/orgs", json={"name": "fuzz org", "id": "fuzzorg"}))
        member = _ok(client.post("/api/v1/members", json={
            "email": "ada@example.org", "role": "viewer", "org_id": org["org"]["id"]}))
        key = _ok(client.post("/api/v1/keys", json={
            "org_id": org["org"]["id"], "role": "read", "name": "spare"}))
        rule = _ok(client.post("/api/v1/alert-rules", json={
            "name": "fuzz budget", "kind": "budget", "org_id": org["org"]["id"],
            "period": "month", "limit_amount": "10", "channels": ["email:ops@example.org"]}))
    target.ids = {"user_id": [member["member"]["user_id"]], "key_id": [key["key"]["id"]],
                  "rule_id": [rule["rule"]["id"]]}


def _ok(answer: httpx.Response) -> Any:
    assert answer.status_code == 200, answer.text
    return answer.json()


BODY_VALUES = {
    "body.org_id": ["fuzzorg"],
    "body.role": ["ingest", "read", "admin", "viewer", "member", "billing", "owner"],
    "body.kind": ["budget", "threshold"],
    "body.period": ["month", "day"],
    "body.metric": ["cost", "requests", "error_rate", "latency_p95_ms"],
    "body.op": [">", ">=", "<", "<="],
    "body.channels[*]": ["email:ops@example.org", "webhook:http://127.0.0.1:9/hook/s3cret"],
    "body.email": ["grace@example.org", "ada@example.org"],
}
"""Realistic values schemathesis puts in request bodies half of the time, so creating a
key, a rule or a member often succeeds and the stateful phase can follow its links."""


def write_config(target: FuzzTarget, path: Path) -> Path:
    """A ``schemathesis.toml``: seeded ids in path parameters 70% of the time, realistic
    body values (:data:`BODY_VALUES`) half of the time."""
    lines = []
    dictionaries = {f"path.{name}": (name, values, 0.7) for name, values in target.ids.items()}
    dictionaries.update({key: (key.removeprefix("body.").replace("[*]", "").replace(".", "_"),
                               values, 0.5) for key, values in BODY_VALUES.items()})
    for name, values, _ in dictionaries.values():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
    lines.append("[parameters]")
    lines += [f'"{key}" = {{ dictionary = "{name}", probability = {probability} }}'
              for key, (name, _, probability) in dictionaries.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_schemathesis(target: FuzzTarget, work_dir: Path) -> tuple[int, str, dict[str, Any]]:
    """``st run`` over the live OpenAPI document; returns (exit code, output, JSON report).

    Every phase, ``not_a_server_error`` (any 5xx fails), the fixed :data:`SEED`, at most
    :data:`MAX_EXAMPLES` per operation, one worker.
    """
    report = work_dir / "schemathesis.json"
    config = write_config(target, work_dir / "schemathesis.toml")
    headers = [arg for name, value in target.headers.items() for arg in ("-H", f"{name}: {value}")]
    command = [
        str(_ST), "--config-file", str(config), "run", f"{target.url}/openapi.json",
        "--seed", str(SEED), "--max-examples", str(MAX_EXAMPLES), "--workers", "1",
        "--phases", "examples,coverage,fuzzing,stateful", "--checks", "not_a_server_error",
        "--suppress-health-check", "all", "--request-timeout", "30", "--no-color",
        "--report", "json", "--report-json-path", str(report), *headers]
    done = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                          check=False, cwd=work_dir)
    output = done.stdout + done.stderr
    return done.returncode, output, json.loads(report.read_text()) if report.exists() else {}
