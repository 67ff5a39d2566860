"""``mentatctl demo``: start a server, drive realistic agent traffic through it, report cost.

The demo runs everything on this machine, with no network and no API key:

1. ``mentatctl serve`` as a child process on the embedded store in a demo data folder
   (ports 4318/4317, or free ones when those are taken), unless ``url`` names a running
   server;
2. a fake OpenAI-compatible server (:mod:`mentatlab.demo.fake_openai`) with a few
   injected rate limits and server errors;
3. two traffic processes (:mod:`mentatlab.demo.traffic`) with the real ``openai`` client,
   one instrumented by ``opentelemetry-instrumentation-openai-v2`` exporting OTLP/HTTP, one
   by ``openinference-instrumentation-openai`` exporting OTLP/gRPC;
4. a cost report by org, project and model, the most expensive traces and the unpriced
   models, all read back through the REST API.

With ``keep_running`` it then prints where to look (the dashboard, the trace view of the
most expensive trace, the API docs) and how to stop it, and serves until SIGINT (Ctrl-C)
or SIGTERM; the server it started is then stopped (SIGTERM to its PID: it flushes its
writer and exits).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mentatlab.cli._format import format_count, format_money
from mentatlab.demo.fake_openai import FakeOpenAIConfig, FakeOpenAIServer
from mentatlab.settings import default_data_dir

__all__ = ["DemoResult", "ci_is_set", "run_demo"]

logger = logging.getLogger(__name__)

_READY_TIMEOUT_S = 90.0
_TRAFFIC_TIMEOUT_S = 90.0
_STOP_TIMEOUT_S = 15.0


@dataclass
class DemoResult:
    """What the demo did and what the server reported back."""

    url: str
    """Base URL of the MentatLab server used (``http://127.0.0.1:PORT``)."""
    data_dir: Path | None
    """Data folder of the server the demo started (None when it used ``url``)."""
    traffic: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per instrumentation: the traffic process's summary (LLM calls, retries, tools...)."""
    cost_rows: list[dict[str, Any]] = field(default_factory=list)
    """``GET /api/v1/cost?group_by=org_id,project_id,model`` rows."""
    total_cost: str = ""
    """The total of that report, as the server wrote it (a decimal string, USD)."""
    top_traces: list[dict[str, Any]] = field(default_factory=list)
    unpriced: list[dict[str, Any]] = field(default_factory=list)
    pii_findings: dict[str, int] = field(default_factory=dict)
    """PII category → findings redacted at ingest (``GET /api/v1/governance/pii``)."""


def ci_is_set() -> bool:
    """True when the ``CI`` environment variable is set to anything but empty/0/false/no/off."""
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no", "off"}


@contextmanager
def _signals_as_interrupt() -> Iterator[None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt while inside; main thread only.

    SIGINT too: a shell starts background jobs with it ignored, and Python keeps that.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.default_int_handler)
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _port_or_free(port: int) -> int:
    """``port`` when it can be bound on 127.0.0.1, else a free one (0 always gives a free one)."""
    for candidate in (port, 0) if port else (0,):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("No free TCP port on 127.0.0.1")


def _start_server(data_dir: Path, http_port: int, grpc_port: int,
                  log: IO[bytes]) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "mentatlab.cli.main", "serve", "--host", "127.0.0.1",
           "--port", str(http_port), "--grpc-port", str(grpc_port), "--data-dir", str(data_dir)]
    env = {**os.environ, "MENTATLAB_DATA_DIR": str(data_dir), "MENTATLAB_LOG_LEVEL": "WARNING"}
    # Its own session: a Ctrl-C in the terminal reaches the demo only, which stops the
    # server once (a second signal would make uvicorn skip its graceful shutdown).
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)


def _wait_ready(url: str, proc: subprocess.Popen[bytes] | None, timeout_s: float) -> None:
    """Poll ``/readyz`` until 200.

    Raises:
        RuntimeError: the server exited or was not ready within ``timeout_s`` seconds.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"mentatctl serve exited with code {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"MentatLab at {url} was not ready within {timeout_s:.0f} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process we started, then SIGKILL it if it does not stop in time."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _run_traffic(openai_url: str, http_url: str, grpc_target: str, runs: int,
                 console: Console) -> dict[str, dict[str, Any]]:
    """Run both traffic processes in parallel with a progress bar per process.

    Raises:
        RuntimeError: a traffic process failed or ran past its time limit.
    """
    summaries: dict[str, dict[str, Any]] = {}
    procs: dict[str, subprocess.Popen[str]] = {}
    errors = {inst: tempfile.TemporaryFile() for inst in ("openai-v2", "openinference")}
    columns = (TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            readers = []
            for inst, label in (("openai-v2", "openai-v2 → OTLP/HTTP"),
                                ("openinference", "openinference → OTLP/gRPC")):
                proc = subprocess.Popen(
                    [sys.executable, "-m", "mentatlab.demo.traffic", "--instrumentation", inst,
                     "--openai-base-url", openai_url, "--otlp-http", http_url,
                     "--otlp-grpc", grpc_target, "--runs", str(runs)],
                    stdout=subprocess.PIPE, stderr=errors[inst], text=True)
                procs[inst] = proc
                task = progress.add_task(label, total=None)

                def read(inst: str = inst, proc: subprocess.Popen[str] = proc,
                         task: Any = task) -> None:
                    assert proc.stdout is not None
                    for line in proc.stdout:
                        msg = json.loads(line)
                        if "done" in msg:
                            progress.update(task, completed=msg["done"], total=msg["total"])
                        elif "summary" in msg:
                            summaries[inst] = msg["summary"]

                reader = threading.Thread(target=read, daemon=True)
                reader.start()
                readers.append(reader)
            deadline = time.monotonic() + _TRAFFIC_TIMEOUT_S
            for inst, proc in procs.items():
                try:
                    proc.wait(timeout=max(1.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    raise RuntimeError(f"traffic ({inst}) ran past {_TRAFFIC_TIMEOUT_S:.0f} s") \
                        from None
                if proc.returncode != 0:
                    errors[inst].seek(0)
                    tail = errors[inst].read()[-2000:].decode(errors="replace")
                    raise RuntimeError(f"traffic ({inst}) exited with {proc.returncode}: {tail}")
            for reader in readers:
                reader.join(timeout=5)
    finally:  # on a time-out or an interrupt too: no traffic process outlives the demo
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for err in errors.values():
            err.close()
    return summaries


def _get(client: httpx.Client, path: str, **params: Any) -> dict[str, Any] | None:
    try:
        response = client.get(path, params={k: v for k, v in params.items() if v is not None})
    except httpx.HTTPError as exc:
        logger.warning("GET %s failed: %s", path, exc)
        return None
    if response.status_code != 200:
        logger.warning("GET %s answered %s: %s", path, response.status_code, response.text[:300])
        return None
    body: dict[str, Any] = response.json()
    return body


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal(0)


def _cell(name: str, value: Any) -> str:
    """Money and counts as ``mentatctl cost report`` prints them (``cli/_format.py``)."""
    if value is None:
        return ""
    if name.endswith("_cost"):
        return format_money(value)
    if name.endswith(("_tokens", "spans", "count", "requests")) and isinstance(value, int):
        return format_count(value)
    return str(value)


def _rows_table(rows: list[dict[str, Any]], title: str, columns: list[str] | None = None) -> Table:
    table = Table(title=title)
    names = columns or (list(rows[0]) if rows else [])
    for name in names:
        numeric = name.endswith(("_cost", "_tokens", "_ms", "spans", "count", "requests"))
        table.add_column(name, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(_cell(n, row.get(n)) for n in names))
    return table


def _report(result: DemoResult, started: datetime, console: Console) -> None:
    window = {"start": (started - timedelta(minutes=5)).isoformat(),
              "end": (datetime.now(UTC) + timedelta(minutes=5)).isoformat()}
    with httpx.Client(base_url=result.url, timeout=30.0) as client:
        cost = _get(client, "/api/v1/cost", group_by="org_id,project_id,model", **window)
        traces = _get(client, "/api/v1/traces", sort="cost", limit=5, **window)
        unpriced = _get(client, "/api/v1/unpriced", **window)
        pii = _get(client, "/api/v1/governance/pii", **window)
    if cost is not None:
        result.cost_rows = list(cost.get("rows", []))
        result.total_cost = str(cost.get("total_cost", ""))
        # LLM calls only: agent and tool spans carry no model, failed calls no usage
        priced = [r for r in result.cost_rows if r.get("model") and int(r.get("requests") or 0)]
        console.print(_rows_table(priced, "Cost by org, project and model",
                                  ["org_id", "project_id", "model", "requests", "input_tokens",
                                   "cached_tokens", "output_tokens", "total_cost"]))
        console.print(f"Total: [bold]{format_money(result.total_cost, cost.get('currency', 'USD'))}"
                      "[/bold]")
    if traces is not None:
        result.top_traces = list(traces.get("traces", []))
        console.print(_rows_table(result.top_traces, "Most expensive traces",
                                  ["trace_id", "root_name", "duration_ms", "status",
                                   "total_cost"]))
    if unpriced is not None:
        result.unpriced = list(unpriced.get("rows", []))
        if result.unpriced:
            console.print(_rows_table(result.unpriced, "Models without a price "
                                      "(add them to pricing.toml, then `mentatctl reprice`)"))
    if pii is not None:
        result.pii_findings = {r["category"]: int(r["num_findings"])
                               for r in pii.get("by_category", [])}
        found = ", ".join(f"{n} {c}" for c, n in result.pii_findings.items()) or "none"
        console.print(f"PII found in prompts and replaced before storage "
                      f"(pii_mode={pii.get('pii_mode')}): {found}")


def _most_expensive_trace(url: str) -> str | None:
    """The id of the costliest trace of the last 7 days (``/api/v1/traces?sort=cost&limit=1``)."""
    with httpx.Client(base_url=url, timeout=30.0) as client:
        answer = _get(client, "/api/v1/traces", sort="cost", limit=1)
    rows = (answer or {}).get("traces") or []
    return str(rows[0]["trace_id"]) if rows and rows[0].get("trace_id") else None


def _where_to_look(url: str, console: Console) -> None:
    """Print the pages of ``url`` that answer 200 now.

    The dashboard, the costliest trace's view (``/traces/<id>``) and the API docs.
    """
    trace_id = _most_expensive_trace(url)
    pages = [("Dashboard", f"{url}/")]
    if trace_id:
        pages.append(("Most expensive trace", f"{url}/traces/{trace_id}"))
    pages.append(("Governance", f"{url}/governance"))
    pages.append(("API docs", f"{url}/docs"))
    console.print("Look at:")
    with httpx.Client(timeout=10.0, follow_redirects=True) as client:
        for label, page in pages:
            try:
                answered = client.get(page).status_code == 200
            except httpx.HTTPError:
                answered = False
            if not answered:
                continue
            lines = [f"  {label + ':':<22}{page}"]
            if trace_id and page.endswith(trace_id):
                lines.append(f"  {'':<22}mentatctl trace show {trace_id} --url {url}")
            for line in lines:  # soft_wrap: a URL or command is never cut or wrapped
                console.print(line, soft_wrap=True, highlight=False)


def _log_tail(data_dir: Path) -> str:
    log = data_dir / "demo-server.log"
    return f"end of {log}:\n{log.read_text(errors='replace')[-3000:]}"


def run_demo(url: str | None = None, *, data_dir: Path | None = None, http_port: int = 4318,
             grpc_port: int = 4317, runs: int = 4, keep_running: bool = False,
             console: Console | None = None) -> DemoResult:
    """Run the demo end to end and print the report.

    Args:
        url: A running MentatLab server to use; None starts one (``mentatctl serve``).
        data_dir: Data folder of the started server; default ``<user data dir>/demo``.
        http_port: HTTP port of the started server; a free one if taken (0: always free).
        grpc_port: OTLP/gRPC port of the started server (or of ``url``'s host); a free one
            if taken when the demo starts the server.
        runs: Runs per agent (6 agents; each run makes 2-4 LLM calls).
        keep_running: After the report, keep serving until SIGINT (Ctrl-C) or SIGTERM
            (in the main thread; elsewhere signals keep their handlers), then stop the
            started server and return. Without it the server is stopped at once.
        console: Where to print; default stdout.

    Returns:
        What the demo did and the report it printed.

    Raises:
        RuntimeError: the server did not become ready, exited while kept running, or a
            traffic process failed.
        KeyboardInterrupt: SIGINT or SIGTERM before the report was printed (the started
            server and the traffic processes are stopped first).
    """
    console = console or Console()
    started = datetime.now(UTC)
    proc: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    if url is None:
        data_dir = (data_dir or default_data_dir() / "demo").expanduser()
        data_dir.mkdir(parents=True, exist_ok=True)
        http_port, grpc_port = _port_or_free(http_port), _port_or_free(grpc_port)
        url = f"http://127.0.0.1:{http_port}"
        log = (data_dir / "demo-server.log").open("ab")
        console.print(f"Starting [bold]mentatctl serve[/bold] on {url} (gRPC {grpc_port}), "
                      f"data in {data_dir}")
        proc = _start_server(data_dir, http_port, grpc_port, log)
    else:
        url = url.rstrip("/")
        data_dir = None
    host = httpx.URL(url).host or "127.0.0.1"
    result = DemoResult(url=url, data_dir=data_dir)
    with _signals_as_interrupt():
        try:
            try:
                _wait_ready(url, proc, _READY_TIMEOUT_S)
            except RuntimeError as exc:
                if data_dir is None:
                    raise
                raise RuntimeError(f"{exc}; {_log_tail(data_dir)}") from None
            fake_cfg = FakeOpenAIConfig(seed=7, rate_limit_p=0.05, server_error_p=0.03,
                                        latency_s=0.01)
            with FakeOpenAIServer(fake_cfg) as fake:
                result.traffic = _run_traffic(fake.base_url, url, f"{host}:{grpc_port}", runs,
                                              console)
            _report(result, started, console)
            if proc is None or keep_running:
                _where_to_look(url, console)
            if proc is not None and keep_running:
                _serve_until_interrupted(proc, data_dir, console)
        finally:
            if proc is not None:
                _stop(proc)
            if log is not None:
                log.close()
    if proc is not None:
        console.print(f"Server stopped. Its data stays in {data_dir}: "
                      f"`mentatctl serve --data-dir {data_dir}` serves it again.",
                      soft_wrap=True)
    return result


def _serve_until_interrupted(proc: subprocess.Popen[bytes], data_dir: Path | None,
                             console: Console) -> None:
    """Wait for SIGINT/SIGTERM (returns) or the server's exit (raises RuntimeError)."""
    console.print(f"The server keeps running (PID {proc.pid}). Press [bold]Ctrl-C[/bold] to "
                  f"stop it (or `kill {os.getpid()}`, the demo's PID): it stops cleanly, "
                  "writing what it holds to disk first.", soft_wrap=True)
    try:
        proc.wait()
    except KeyboardInterrupt:
        console.print("Stopping the server...")
        return
    tail = f"; {_log_tail(data_dir)}" if data_dir is not None else ""
    raise RuntimeError(f"mentatctl serve exited with code {proc.returncode}{tail}")
