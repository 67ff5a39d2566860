"""Fixtures of the real-client matrix: fakes, a real server, and one driver run per producer.

The tests are marked ``matrix`` (slow: minutes); skip them with ``-m "not matrix"``.
Under ``pytest -n 2 --dist loadgroup`` each producer's tests share one xdist group, so a
driver runs once per session.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from fakes.anthropic_api import FakeAnthropic
from fakes.bedrock_api import FakeBedrock
from fakes.openai_api import FakeOpenAI
from fakes.scenario import Answer
from matrix import MATRIX_DIR, PRODUCER_BY_NAME, Producer
from serve_process import free_port, start_serve, stop, wait_ready

DRIVER_TIMEOUT_S = 240
"""Upper bound for one driver process (seconds); a driver normally takes 3-15 s."""


@dataclass
class Fakes:
    """The three fake providers of one pytest worker."""

    openai: FakeOpenAI
    anthropic: FakeAnthropic
    bedrock: FakeBedrock

    def answers(self, case: str) -> list[Answer]:
        """Every answer any fake gave for ``case``, in order per fake."""
        return [a for fake in (self.openai, self.anthropic, self.bedrock)
                for a in fake.recorder.for_case(case)]

    def arguments(self, otlp: str) -> list[str]:
        """The driver's endpoint arguments."""
        return ["--openai", self.openai.base_url, "--anthropic", self.anthropic.url,
                "--bedrock", self.bedrock.url, "--otlp", otlp]


@pytest.fixture(scope="session")
def fakes() -> Iterator[Fakes]:
    with FakeOpenAI() as openai, FakeAnthropic() as anthropic, FakeBedrock() as bedrock:
        yield Fakes(openai, anthropic, bedrock)


@pytest.fixture(scope="session")
def matrix_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``mentatctl serve`` on free ports; yields its base URL. Stopped by PID."""
    data_dir = tmp_path_factory.mktemp("matrix-data")
    port = free_port()
    log = data_dir / "server.log"
    proc = start_serve(data_dir, port, grpc_port=free_port(), log=log,
                       env={"MENTATLAB_DATA_DIR": str(data_dir)})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, url, log)
        yield url
    finally:
        stop(proc)


@dataclass
class DriverRun:
    """One producer's driver report and the stored traces of its cases."""

    producer: Producer
    report: dict[str, Any]
    cases: dict[str, dict[str, Any]]
    """Mode → the driver's case record (id, mode, provider, agent, trace_ids, error)."""
    traces: dict[str, dict[str, Any]]
    """Trace id → ``GET /api/v1/traces/{id}`` answer."""
    seconds: float


class Runs:
    """Runs each producer's driver on first use and keeps the result."""

    def __init__(self, server: str, fakes: Fakes) -> None:
        self.server = server
        self.fakes = fakes
        self._done: dict[str, DriverRun | AssertionError] = {}

    def get(self, name: str) -> DriverRun:
        """The producer's run; a failed run fails every test of the producer, once run."""
        if name not in self._done:
            try:
                self._done[name] = self._run(PRODUCER_BY_NAME[name])
            except AssertionError as exc:
                self._done[name] = exc
        done = self._done[name]
        if isinstance(done, AssertionError):
            raise done
        return done

    def _run(self, producer: Producer) -> DriverRun:
        if producer.group != "js":
            python = MATRIX_DIR / "venvs" / producer.group / "bin" / "python"
            assert python.exists(), (f"{python} is missing: run `make matrix-envs` "
                                     "(scripts/matrix-envs.sh) first")
        started = time.monotonic()
        done = subprocess.run(producer.command(self.fakes.arguments(self.server)),
                              capture_output=True, text=True, timeout=DRIVER_TIMEOUT_S,
                              env=_driver_env())
        seconds = time.monotonic() - started
        assert done.returncode == 0, (f"{producer.name} driver failed:\n"
                                      f"{done.stderr[-4000:]}")
        lines = [line for line in done.stdout.splitlines() if line.startswith('{"producer"')]
        assert lines, f"{producer.name}: no report on stdout:\n{done.stdout[-2000:]}"
        report = json.loads(lines[-1])
        # what ran, for the record (versions per producer): .matrix/reports/<producer>.json
        reports = MATRIX_DIR / "reports"
        reports.mkdir(parents=True, exist_ok=True)
        (reports / f"{producer.name}.json").write_text(json.dumps(
            {"producer": producer.name, "group": producer.group, "seconds": round(seconds, 1),
             "versions": report["versions"]}, indent=1))
        cases = {c["mode"]: c for c in report["cases"]}
        traces: dict[str, dict[str, Any]] = {}
        with httpx.Client(base_url=self.server, timeout=30) as client:
            for case in report["cases"]:
                for trace_id in case["trace_ids"]:
                    traces[trace_id] = _read_trace(client, trace_id)
        return DriverRun(producer, report, cases, traces, seconds)


def _driver_env() -> dict[str, str]:
    """The driver's environment: none of this process's venv or test settings leak in."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "MATRIX_DEBUG")
    return {k: v for k, v in os.environ.items() if k in keep}


def _read_trace(client: httpx.Client, trace_id: str) -> dict[str, Any]:
    """The trace tree; a 404 right after the driver's flush is retried for 10 s at most."""
    deadline = time.monotonic() + 10
    while True:
        answer = client.get(f"/api/v1/traces/{trace_id}")
        if answer.status_code == 200 or time.monotonic() > deadline:
            assert answer.status_code == 200, answer.text
            tree: dict[str, Any] = answer.json()
            return tree
        time.sleep(0.2)


@pytest.fixture(scope="session")
def runs(matrix_server: str, fakes: Fakes) -> Runs:
    return Runs(matrix_server, fakes)
