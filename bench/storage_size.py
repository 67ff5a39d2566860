"""Bytes per span on disk, with and without message payloads: MentatLab beside Arrow Phoenix.

Issue 18 item 5. The same spans (``bench/_otlp_payload.make_request``: GenAI chat spans,
one trace per 10; ``--payloads`` also ``gen_ai.input.messages`` with the demo-like system
prompt and a varied user turn, and ``gen_ai.output.messages``, about 1 span in 10 with PII)
are built once per run, one body of ``--batch`` spans per seed, and sent over OTLP/HTTP
protobuf to:

* a real ``mentatctl serve`` on the embedded chDB store (default settings: PII redaction on),
  in a temporary data dir. Every 2xx is durable; the server stays up ``--settle-s`` (20 s,
  trace quiet period 2 s) so its settle job stores the derived tables, then it is stopped
  (SIGTERM drains), the store is opened and measured twice: as committed, and after
  ``OPTIMIZE TABLE … FINAL`` of every table (for ``spans``, what the compaction job,
  decision 0016, does to each day once it closes: a store's steady state). Sizes are ``system.parts`` ``bytes_on_disk`` of
  the active parts of ``spans``, the folder of the table (``du``), the active parts of every
  table (spans and the derived tables), the whole store folder (``du``, after the parts
  merges replaced are removed), and per column ``system.columns``
  ``data_compressed_bytes`` (0 for a column of a "compact" part, under 10 MiB);
* Arize Phoenix (``--phoenix``; needs ``/work/phoenix-venv`` or ``--phoenix-bin``, an
  ``arize-phoenix`` install kept apart from MentatLab's venv) on 127.0.0.1 with its default
  SQLite storage in a fresh ``PHOENIX_WORKING_DIR``, sent the same bodies to its
  ``/v1/traces`` (503: wait and resend). The bench waits until its ``spans`` table holds
  every span, stops it (SIGTERM), runs ``PRAGMA wal_checkpoint(TRUNCATE)`` and measures the
  database file (the WAL is then empty; its size before the checkpoint is printed too).

Usage::

    PYTHONPATH=src .venv/bin/python bench/storage_size.py [--spans 100000] [--batch 500]
        [--payloads both|with|without] [--phoenix] [--phoenix-spans N] [--keep DIR]

Phoenix install used for bench/RESULTS.md (its own venv, never MentatLab's)::

    python3.11 -m venv /work/phoenix-venv
    /work/phoenix-venv/bin/pip install 'arize-phoenix==12.35.0' \
        'arize-phoenix-evals>=2.8,<3' 'graphql-core>=3.2,<3.3'

(newer ``arize-phoenix-evals`` and ``graphql-core`` releases break Phoenix 12's imports.)
``--phoenix-spans`` sends Phoenix only the first N spans (it persists ~150 spans/s here);
the MentatLab store is then also measured at that N, so the pair compares the same spans.
``--keep DIR`` runs the servers on DIR/with and DIR/without and leaves them (the store is
``<dir>/spans``) for
bench/span_codecs.py. Targets 127.0.0.1 only; bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _otlp_payload import make_request  # noqa: E402
from _server import Server, free_port  # noqa: E402

from mentatlab.storage.chdb_store import ChdbSpanStore  # noqa: E402

HEADERS = {"Content-Type": "application/x-protobuf"}
PHOENIX_VENV = Path("/work/phoenix-venv")
MIB = 1024 * 1024


def bodies(num_spans: int, batch: int, *, content: bool) -> list[bytes]:
    """``num_spans`` spans as protobuf bodies of ``batch`` spans, seed i for body i."""
    out = []
    for i, start in enumerate(range(0, num_spans, batch)):
        out.append(make_request(min(batch, num_spans - start), seed=i, content=content))
    return out


def _post_all(url: str, payloads: Sequence[bytes], *, threads: int = 2,
              deadline_s: float = 3600.0) -> None:
    """POST every body to ``url``; 429/503 wait ``Retry-After`` (or 0.5 s) and resend."""
    stop_at = time.monotonic() + deadline_s

    def send(body: bytes) -> None:
        with httpx.Client(timeout=60) as client:
            while time.monotonic() < stop_at:
                r = client.post(url, content=body, headers=HEADERS)
                if r.status_code in (429, 503):
                    time.sleep(float(r.headers.get("Retry-After", "0.5") or 0.5))
                    continue
                if r.status_code // 100 != 2:
                    raise RuntimeError(f"{url}: {r.status_code} {r.text[:300]}")
                return
            raise RuntimeError(f"{url}: not accepted within {deadline_s} s")

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, payloads))


def du(path: Path) -> int:
    """Bytes of the files under ``path`` (apparent sizes; ``du -sb``)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass
    return total


@dataclass
class StoreSize:
    """One measurement of a store holding ``spans`` spans (bytes)."""

    system: str
    payloads: bool
    spans: int
    state: str
    bytes_total: int
    bytes_table_folder: int = 0
    bytes_all_tables: int = 0
    """active parts of every table: spans and what the server derives from them (the
    resolver's ledger and aggregates, the settled tables)"""
    bytes_store_folder: int = 0
    parts: int = 0
    columns: dict[str, tuple[int, int]] = field(default_factory=dict)
    """column -> (data_compressed_bytes, data_uncompressed_bytes)"""
    note: str = ""

    @property
    def per_span(self) -> float:
        return self.bytes_total / self.spans

    @property
    def mib_per_10k(self) -> float:
        return self.per_span * 10_000 / MIB


# --- MentatLab ----------------------------------------------------------------------------


def measure_chdb(store: ChdbSpanStore, *, payloads: bool, state: str) -> StoreSize:
    """``spans``' active parts, table folder and per-column sizes in an open chDB store."""
    parts = store.query_arrow(
        "SELECT toUInt64(sum(bytes_on_disk)) AS b, toUInt64(count()) AS n,"
        " toUInt64(sum(rows)) AS r FROM system.parts"
        " WHERE database = currentDatabase() AND table = 'spans' AND active").to_pylist()[0]
    spans = store.query_arrow("SELECT toUInt64(count()) AS n FROM spans FINAL").to_pylist()[0]
    every = store.query_arrow(
        "SELECT toUInt64(sum(bytes_on_disk)) AS b FROM system.parts"
        " WHERE database = currentDatabase() AND active").to_pylist()[0]
    paths = store.query_arrow(
        "SELECT data_paths FROM system.tables WHERE database = currentDatabase()"
        " AND name = 'spans'").to_pylist()[0]["data_paths"]
    cols = store.query_arrow(
        "SELECT name, toUInt64(data_compressed_bytes) AS c,"
        " toUInt64(data_uncompressed_bytes) AS u FROM system.columns"
        " WHERE database = currentDatabase() AND table = 'spans'").to_pylist()
    return StoreSize(
        "MentatLab (chDB)", payloads, int(spans["n"]), state, int(parts["b"]),
        bytes_table_folder=sum(du(Path(p)) for p in paths),
        bytes_all_tables=int(every["b"]), bytes_store_folder=du(store.path),
        parts=int(parts["n"]),
        columns={c["name"]: (int(c["c"]), int(c["u"])) for c in cols},
        note=f"{int(parts['r'])} rows in parts")


def merge_everything(store: ChdbSpanStore) -> None:
    """``OPTIMIZE … FINAL`` every table with parts, then drop the parts merges replaced."""
    tables = [str(r["table"]) for r in store.query_arrow(
        "SELECT DISTINCT table FROM system.parts WHERE database = currentDatabase()"
        " AND active").to_pylist()]
    for table in tables:
        store.execute(f"OPTIMIZE TABLE `{table}` FINAL")
    store.purge_outdated_parts(tables)  # the folder sizes then count active parts only


def run_mentatlab(payload_bodies: Sequence[bytes], num_spans: int, work: Path, *,
                  payloads: bool, keep: Path | None, also_at: int | None = None,
                  batch: int = 500, settle_s: float = 20.0) -> list[StoreSize]:
    """Send the bodies to a fresh ``mentatctl serve``; measure ``spans`` as committed and merged.

    The server runs with a 2 s trace quiet period and stays up ``settle_s`` after the last
    2xx, so that the settle job stores its derived tables as it would on a running server.
    ``also_at``: first send that many spans' bodies, measure there, then the rest.
    """
    data_dir = (keep or work) / ("with" if payloads else "without")
    if keep:
        shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    results: list[StoreSize] = []
    steps = [num_spans] if not also_at or also_at >= num_spans else [also_at, num_spans]
    sent = 0
    for step in steps:
        upto = -(-step // batch)
        env = {"MENTATLAB_LOG_LEVEL": "WARNING", "MENTATLAB_COMPACT_INTERVAL_S": "0",
               "MENTATLAB_TRACE_QUIET_S": "2"}
        with Server(data_dir, env, grpc_port=0) as server:
            t0 = time.monotonic()
            _post_all(f"{server.url}/v1/traces", payload_bodies[sent:upto], threads=2)
            print(f"  mentatlab: {step - sent * batch} spans acknowledged in"
                  f" {time.monotonic() - t0:.1f} s", flush=True)
            time.sleep(settle_s)
        sent = upto
        with ChdbSpanStore(data_dir / "spans") as store:
            committed = measure_chdb(store, payloads=payloads, state="as committed")
            merge_everything(store)
            merged = measure_chdb(store, payloads=payloads, state="merged (OPTIMIZE FINAL)")
        if committed.spans != step:
            raise RuntimeError(f"expected {step} spans in the store, found {committed.spans}")
        results += [committed, merged]
    return results


# --- Phoenix ------------------------------------------------------------------------------


def _phoenix_count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM spans").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def _phoenix_table_sizes(db: Path) -> dict[str, tuple[int, int]]:
    """Bytes per table and index (``dbstat``), when this sqlite3 has it."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            rows = conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"
                                " ORDER BY 2 DESC").fetchall()
    except sqlite3.OperationalError:
        return {}
    return {str(name): (int(size), 0) for name, size in rows}


def run_phoenix(payload_bodies: Sequence[bytes], num_spans: int, work: Path, phoenix_bin: Path,
                *, payloads: bool, timeout_s: float) -> StoreSize:
    """Send the bodies to a fresh ``phoenix serve`` (SQLite) and measure its database."""
    home = work / ("phoenix-with" if payloads else "phoenix-without")
    home.mkdir(parents=True)
    port = free_port()
    env = {**os.environ, "PHOENIX_WORKING_DIR": str(home), "PHOENIX_PORT": str(port),
           "PHOENIX_HOST": "127.0.0.1", "PHOENIX_GRPC_PORT": str(free_port()),
           "PHOENIX_TELEMETRY_ENABLED": "false"}
    env.pop("PHOENIX_SQL_DATABASE_URL", None)
    log = open(work / f"phoenix-{'with' if payloads else 'without'}.log", "wb")
    proc = subprocess.Popen([str(phoenix_bin), "serve"], env=env, stdout=log, stderr=log,
                            start_new_session=True)
    db = home / "phoenix.db"
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"phoenix exited early; see {log.name}")
            time.sleep(0.5)
        else:
            raise RuntimeError("phoenix did not start in 120 s")
        t0 = time.monotonic()
        _post_all(f"{url}/v1/traces", payload_bodies, threads=2, deadline_s=timeout_s)
        acked = time.monotonic() - t0
        deadline = time.monotonic() + timeout_s
        while (count := _phoenix_count(db)) < num_spans:
            if time.monotonic() > deadline:
                raise RuntimeError(f"phoenix persisted {count} of {num_spans} spans")
            time.sleep(2)
        print(f"  phoenix: {num_spans} spans acknowledged in {acked:.1f} s, persisted in"
              f" {time.monotonic() - t0:.1f} s", flush=True)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    wal = Path(f"{db}-wal")
    wal_before = wal.stat().st_size if wal.exists() else 0
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    files = {p.name: p.stat().st_size for p in home.glob("phoenix.db*")}
    return StoreSize(
        "Arize Phoenix (SQLite)", payloads, _phoenix_count(db), "after WAL checkpoint",
        files["phoenix.db"], bytes_store_folder=du(home), columns=_phoenix_table_sizes(db),
        note=f"files after checkpoint {files}; WAL before checkpoint {wal_before} B")


# --- report -------------------------------------------------------------------------------


def _rows(results: Sequence[StoreSize]) -> Iterator[str]:
    yield ("| system | payloads | spans | state | bytes (spans table / Phoenix db file) |"
           " bytes/span | MiB per 10k spans | parts | table folder | all tables (B/span) |"
           " whole store folder (B/span) |")
    yield "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"
    for r in results:
        yield (f"| {r.system} | {'with' if r.payloads else 'without'} | {r.spans:,} | {r.state}"
               f" | {r.bytes_total:,} | {r.per_span:,.1f} | {r.mib_per_10k:.2f} | {r.parts or ''}"
               f" | {f'{r.bytes_table_folder:,}' if r.bytes_table_folder else ''}"
               f" | {f'{r.bytes_all_tables / r.spans:,.1f}' if r.bytes_all_tables else ''}"
               f" | {r.bytes_store_folder:,} ({r.bytes_store_folder / r.spans:,.1f}) |")


def _column_rows(result: StoreSize, top: int = 25) -> Iterator[str]:
    yield f"Largest columns ({result.system}, {'with' if result.payloads else 'without'}"
    yield f" payloads, {result.spans:,} spans, {result.state}):"
    yield "| column | compressed B | uncompressed B | B/span |"
    yield "|---|---:|---:|---:|"
    ranked = sorted(result.columns.items(), key=lambda kv: -kv[1][0])
    for name, (comp, unc) in ranked[:top]:
        yield f"| {name} | {comp:,} | {unc:,} | {comp / result.spans:.2f} |"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--payloads", choices=("both", "with", "without"), default="both")
    parser.add_argument("--phoenix", action="store_true",
                        help="also measure Arize Phoenix (needs --phoenix-bin)")
    parser.add_argument("--phoenix-bin", type=Path, default=PHOENIX_VENV / "bin" / "phoenix")
    parser.add_argument("--phoenix-spans", type=int, default=0,
                        help="spans sent to Phoenix (default: --spans)")
    parser.add_argument("--phoenix-timeout-s", type=float, default=1800.0)
    parser.add_argument("--keep", type=Path, default=None)
    parser.add_argument("--settle-s", type=float, default=20.0,
                        help="seconds the server stays up after the last 2xx")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    if args.phoenix and not args.phoenix_bin.exists():
        parser.error(f"--phoenix needs an arize-phoenix install: {args.phoenix_bin} is missing")
    print(f"load average before: {os.getloadavg()}", flush=True)
    variants = {"both": (True, False), "with": (True,), "without": (False,)}[args.payloads]
    phoenix_n = min(args.phoenix_spans or args.spans, args.spans)
    results: list[StoreSize] = []
    with tempfile.TemporaryDirectory(prefix="mentat-storage-size-") as tmp:
        work = Path(tmp)
        for content in variants:
            payload_bodies = bodies(args.spans, args.batch, content=content)
            raw = sum(len(b) for b in payload_bodies)
            print(f"{'with' if content else 'without'} payloads: {args.spans} spans,"
                  f" {raw / args.spans:.0f} B/span as OTLP protobuf", flush=True)
            also = phoenix_n if args.phoenix and phoenix_n < args.spans else None
            results += run_mentatlab(payload_bodies, args.spans, work, payloads=content,
                                     keep=args.keep, also_at=also, batch=args.batch,
                                     settle_s=args.settle_s)
            if args.phoenix:
                n_bodies = -(-phoenix_n // args.batch)
                results.append(run_phoenix(payload_bodies[:n_bodies], phoenix_n, work,
                                           args.phoenix_bin, payloads=content,
                                           timeout_s=args.phoenix_timeout_s))
    print(f"load average after: {os.getloadavg()}")
    print("\n".join(_rows(results)))
    for r in results:
        if r.system.startswith("MentatLab") and r.state.startswith("merged") \
                and r.spans == args.spans:
            print("\n".join(_column_rows(r)))
        if r.system.startswith("Arize") and r.columns:
            print("\n".join(_column_rows(r, top=12)))
        if r.note:
            print(f"{r.system} {'with' if r.payloads else 'without'} {r.state}: {r.note}")
    if args.json:
        args.json.write_text(json.dumps([{**asdict(r), "per_span": r.per_span}
                                         for r in results], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
