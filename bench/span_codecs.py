"""Column codecs of ``spans`` chosen by measurement: bytes per column and insert CPU per candidate.

Issue 18 item 5, decision 0023. Reads the spans of a store that a real server filled
(``bench/storage_size.py --keep DIR`` leaves ``DIR/with/spans`` and ``DIR/without/spans``),
as one Arrow table with ``SPAN_SCHEMA`` (what the writer hands the store), and then, in a
scratch chDB folder:

* **sizes**: for each round r, a copy of ``spans`` (same engine, keys and partitioning, wide
  parts forced so that ``system.columns`` reports each column) whose column groups take
  their r-th candidate codec; the table gets the spans in one insert and is merged to one
  part (``OPTIMIZE FINAL``). A column's compressed size depends only on its own values and
  the row order, so one round measures one candidate of every group at once. Printed: the
  compressed bytes per column for every candidate, and per group.
* **insert CPU**: for whole-table configurations (the codecs before decision 0023, the
  chosen ones, the chosen ones with other ZSTD levels on ``attributes``), the CPU time
  (``time.process_time``: chDB compresses in threads of this process) and wall time of
  inserting the whole Arrow table through ``ChdbSpanStore.insert_table`` (the store's own
  Arrow-file insert), median of ``--repeat`` inserts into an emptied table, the
  configurations taking turns.

``--derived`` instead measures the tables derived from ``spans`` (``DERIVED_CODEC_TABLES``)
in a copy of the store: bytes and insert CPU with LZ4 and with the codecs of their types.

Usage::

    PYTHONPATH=src .venv/bin/python bench/span_codecs.py --source DIR/with/spans [--repeat 5]
        [--derived]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow as pa

from mentatlab.model.schema import SPAN_COLUMNS, SPAN_SCHEMA, Column
from mentatlab.storage import span_schema
from mentatlab.storage.chdb_store import ChdbSpanStore

_STRING_PAYLOAD = ("attributes", "events", "resource", "pii_findings", "status_message")
_IDS = ("trace_id", "span_id", "parent_span_id")
_TIMES = ("start_time", "end_time")
_TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
           "reasoning_tokens", "total_tokens")


def group_of(name: str, clickhouse: str) -> str:
    """The codec group of a span column (its candidates are chosen together)."""
    if name in _STRING_PAYLOAD:
        return "payload strings"
    if name in _IDS:
        return "ids"
    if name in _TIMES:
        return "times"
    if name == "ingested_at_ns":
        return "ingested_at_ns"
    if name in _TOKENS:
        return "tokens"
    if clickhouse.startswith("Decimal"):
        return "money"
    if "LowCardinality" in clickhouse:
        return "dimensions"
    if clickhouse == "String":
        return "other strings"
    if clickhouse.startswith("Float"):
        return "floats"
    return "other numbers"


CANDIDATES: dict[str, tuple[str, ...]] = {
    "payload strings": ("ZSTD(1)", "ZSTD(3)", "ZSTD(6)", "ZSTD(9)", "ZSTD(12)", "LZ4"),
    "ids": ("ZSTD(1)", "ZSTD(3)", "LZ4", "ZSTD(6)"),
    "times": ("Delta, ZSTD(1)", "DoubleDelta, ZSTD(1)", "ZSTD(1)", "T64, ZSTD(1)",
              "Delta, ZSTD(3)", "LZ4"),
    "ingested_at_ns": ("Delta, ZSTD(1)", "DoubleDelta, ZSTD(1)", "ZSTD(1)", "T64, ZSTD(1)",
                       "DoubleDelta", "LZ4"),
    "tokens": ("ZSTD(1)", "T64, ZSTD(1)", "LZ4", "T64, LZ4", "Delta, ZSTD(1)", "ZSTD(3)"),
    "money": ("ZSTD(1)", "LZ4", "ZSTD(3)", "ZSTD(6)", "ZSTD(9)", "ZSTD(1)"),
    "dimensions": ("ZSTD(1)", "LZ4", "ZSTD(3)", "ZSTD(1)", "ZSTD(1)", "ZSTD(1)"),
    "other strings": ("ZSTD(1)", "LZ4", "ZSTD(3)", "ZSTD(6)", "ZSTD(1)", "ZSTD(1)"),
    "floats": ("ZSTD(1)", "Gorilla, ZSTD(1)", "LZ4", "FPC, ZSTD(1)", "Gorilla", "ZSTD(3)"),
    "other numbers": ("ZSTD(1)", "T64, ZSTD(1)", "LZ4", "T64, LZ4", "ZSTD(3)", "ZSTD(1)"),
}
"""Candidate codecs per group; round r uses the r-th of each (``LZ4`` is chDB's default,
the codec of a column declared without one)."""

_OWN = {"duration_ms": ("Gorilla, ZSTD(1)", "ZSTD(1)", "LZ4", "FPC, ZSTD(1)", "Gorilla",
                        "ZSTD(3)"),
        "name": ("ZSTD(1)", "LZ4", "ZSTD(3)", "LowCardinality: ZSTD(1)", "LowCardinality: LZ4",
                 "ZSTD(6)")}
"""Columns with candidates of their own: ``duration_ms`` (today ``Gorilla, ZSTD(1)``) is
varied, unlike the resource meters (mostly 0); ``name`` (the span name) is also tried as
``LowCardinality(String)`` (``LowCardinality: <codec>``: a type change, not only a codec)."""


def candidate(name: str, clickhouse: str, round_: int) -> str:
    options = _OWN.get(name) or CANDIDATES[group_of(name, clickhouse)]
    return options[min(round_, len(options) - 1)]


def table_ddl(table: str, codecs: Mapping[str, str]) -> str:
    """``CREATE TABLE`` like ``spans`` (engine, keys, partitions) with ``codecs`` per column."""
    columns = ",\n  ".join(_column(c.name, c.clickhouse, codecs.get(c.name, ""))
                           for c in SPAN_COLUMNS)
    return (f"CREATE TABLE {table} (\n  {columns}\n) ENGINE = ReplacingMergeTree(ingested_at_ns)"
            f" PARTITION BY {span_schema.SPANS_PARTITION_KEY}"
            f" ORDER BY ({span_schema.SPANS_SORTING_KEY})"
            " SETTINGS index_granularity = 8192, min_bytes_for_wide_part = 0")


def _column(name: str, clickhouse: str, codec: str) -> str:
    if codec.startswith("LowCardinality: "):
        clickhouse, codec = f"LowCardinality({clickhouse})", codec.split(": ", 1)[1]
    return f"`{name}` {clickhouse}" + (f" CODEC({codec})" if codec else "")


BEFORE_0023: dict[str, str] = {
    "start_time": "Delta, ZSTD(1)", "end_time": "Delta, ZSTD(1)",
    "ingested_at_ns": "Delta, ZSTD(1)", "duration_ms": "Gorilla, ZSTD(1)",
    "trace_id": "ZSTD(1)", "span_id": "ZSTD(1)", "parent_span_id": "ZSTD(1)",
    "attributes": "ZSTD(3)", "events": "ZSTD(3)", "resource": "ZSTD(3)",
    "pii_findings": "ZSTD(3)", "status_message": "ZSTD(3)"}
"""The codecs before decision 0023 (span-store migration 11); chDB's default ``LZ4`` on
every other column."""


def current_codecs() -> dict[str, str]:
    """The codec of every column before decision 0023 (``LZ4`` where the DDL named none)."""
    return {c.name: BEFORE_0023.get(c.name, "LZ4") for c in SPAN_COLUMNS}


def chosen_codecs() -> dict[str, str]:
    """The codec of every column now (``span_schema.column_codec``, decision 0023)."""
    return {c.name: span_schema.column_codec(c).removeprefix("CODEC(").removesuffix(")")
            for c in SPAN_COLUMNS}


def read_source(path: Path) -> pa.Table:
    """Every current span of the store at ``path`` as one ``SPAN_SCHEMA`` table, key order."""
    with ChdbSpanStore(path) as store:
        names = ", ".join(f"`{c.name}`" for c in SPAN_COLUMNS)
        table = store.query_arrow(f"SELECT {names} FROM spans FINAL"
                                  f" ORDER BY {span_schema.SPANS_SORTING_KEY}")
    return pa.Table.from_arrays([table.column(f.name).cast(f.type) for f in SPAN_SCHEMA],
                                schema=SPAN_SCHEMA)


def column_sizes(store: ChdbSpanStore, table: str) -> dict[str, int]:
    rows = store.query_arrow(
        "SELECT name, toUInt64(data_compressed_bytes) AS c FROM system.columns"
        " WHERE database = currentDatabase() AND table = {t:String}", {"t": table}).to_pylist()
    return {r["name"]: int(r["c"]) for r in rows}


def part_bytes(store: ChdbSpanStore, table: str) -> int:
    row = store.query_arrow(
        "SELECT toUInt64(sum(bytes_on_disk)) AS b FROM system.parts WHERE active"
        " AND database = currentDatabase() AND table = {t:String}", {"t": table}).to_pylist()
    return int(row[0]["b"] or 0)


def measure_sizes(store: ChdbSpanStore, spans: pa.Table, rounds: int,
                  ) -> dict[str, dict[str, int]]:
    """column -> {codec: compressed bytes} over ``rounds`` rounds (one table each)."""
    out: dict[str, dict[str, int]] = {c.name: {} for c in SPAN_COLUMNS}
    for r in range(rounds):
        codecs = {c.name: candidate(c.name, c.clickhouse, r) for c in SPAN_COLUMNS}
        name = f"size_round_{r}"
        store.execute(table_ddl(name, codecs))
        store.insert_table(name, spans)
        store.execute(f"OPTIMIZE TABLE {name} FINAL")
        for column, size in column_sizes(store, name).items():
            out[column].setdefault(codecs[column], size)
        store.execute(f"DROP TABLE {name} SYNC")
    return out


def insert_costs(store: ChdbSpanStore, spans: pa.Table,
                 configs: Sequence[tuple[str, Mapping[str, str]]], repeat: int,
                 ) -> list[tuple[float, float, int]]:
    """Per configuration: (median CPU s, median wall s, bytes of the merged part) of
    inserting ``spans``; the configurations take turns, ``repeat`` rounds, so load that
    changes during the run weighs on all of them alike."""
    names = [f"insert_{i}" for i in range(len(configs))]
    for name, (_, codecs) in zip(names, configs, strict=True):
        store.execute(table_ddl(name, codecs))
    cpu: list[list[float]] = [[] for _ in configs]
    wall: list[list[float]] = [[] for _ in configs]
    for _ in range(repeat):
        for i, name in enumerate(names):
            store.execute(f"TRUNCATE TABLE {name}")
            c0, w0 = time.process_time(), time.perf_counter()
            store.insert_table(name, spans)
            cpu[i].append(time.process_time() - c0)
            wall[i].append(time.perf_counter() - w0)
    out = []
    for i, name in enumerate(names):
        store.execute(f"OPTIMIZE TABLE {name} FINAL")
        out.append((statistics.median(cpu[i]), statistics.median(wall[i]),
                    part_bytes(store, name)))
        store.execute(f"DROP TABLE {name} SYNC")
    return out


def derived_tables(source: Path, repeat: int) -> None:
    """Bytes and insert CPU of the derived tables (``DERIVED_CODEC_TABLES``) of ``source``
    with the server's default codec (LZ4) and with the codecs of their types (0023).

    The rows are read from a copy of the store folder; each table is inserted into two
    empty copies (``AS <table>``, one given the new codecs) in turn, ``repeat`` rounds.
    """
    with tempfile.TemporaryDirectory(prefix="mentat-derived-") as tmp:
        copy = Path(tmp) / "store"
        shutil.copytree(source, copy, symlinks=True)
        with ChdbSpanStore(copy, query_timeout_s=0) as store:
            tables = span_schema.DERIVED_CODEC_TABLES
            data = {t: store.query_arrow(f"SELECT * FROM {t}") for t in tables}
            for t in tables:
                cols = store.query_arrow(
                    "SELECT name, type FROM system.columns WHERE database = currentDatabase()"
                    " AND table = {t:String}", {"t": t}).to_pylist()
                store.execute(f"CREATE TABLE lz4_{t} AS {t}")
                store.execute(f"CREATE TABLE new_{t} AS {t}")
                store.execute(f"ALTER TABLE lz4_{t} " + ", ".join(
                    f"MODIFY COLUMN `{c['name']}` CODEC(LZ4)" for c in cols
                    if "AggregateFunction" not in c["type"]))
                store.execute(f"ALTER TABLE new_{t} " + ", ".join(
                    f"MODIFY COLUMN `{c['name']}` "
                    + span_schema.column_codec(Column(c["name"], pa.string(), c["type"]))
                    for c in cols if "AggregateFunction" not in c["type"]))
            cpu: dict[str, list[float]] = {"lz4": [], "new": []}
            for _ in range(repeat):
                for kind, runs in cpu.items():
                    spent = 0.0
                    for t in tables:
                        store.execute(f"TRUNCATE TABLE {kind}_{t}")
                        c0 = time.process_time()
                        store.insert_table(f"{kind}_{t}", data[t])
                        spent += time.process_time() - c0
                    runs.append(spent)
            print("\n| table | rows | LZ4 B | 0023 B |\n|---|---:|---:|---:|")
            for t in tables:
                sizes = []
                for kind in cpu:
                    store.execute(f"OPTIMIZE TABLE {kind}_{t} FINAL")
                    sizes.append(part_bytes(store, f"{kind}_{t}"))
                print(f"| {t} | {data[t].num_rows:,} | {sizes[0]:,} | {sizes[1]:,} |")
            for kind, runs in cpu.items():
                print(f"insert CPU of every derived table, {kind}: median"
                      f" {statistics.median(runs):.3f} s of {repeat} (in turn)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--skip-sizes", action="store_true")
    parser.add_argument("--derived", action="store_true",
                        help="measure the derived tables of --source instead")
    args = parser.parse_args(argv)
    print(f"load average before: {os.getloadavg()}", flush=True)
    if args.derived:
        derived_tables(args.source, args.repeat)
        print(f"load average after: {os.getloadavg()}")
        return 0
    spans = read_source(args.source)
    n = spans.num_rows
    print(f"{n} spans from {args.source}, {spans.nbytes / n:.0f} B/span in Arrow", flush=True)
    with tempfile.TemporaryDirectory(prefix="mentat-codecs-") as tmp, \
            ChdbSpanStore(Path(tmp) / "scratch", query_timeout_s=0) as store:
        today = current_codecs()
        if not args.skip_sizes:
            sizes = measure_sizes(store, spans, args.rounds)
            chosen = chosen_codecs()
            print("\n| column | type | before 0023 | chosen | " + " | ".join(
                f"candidate {i + 1}" for i in range(args.rounds)) + " |")
            print("|---|---|---|---|" + "---|" * args.rounds)
            groups: dict[str, dict[str, int]] = {}
            for c in SPAN_COLUMNS:
                g = group_of(c.name, c.clickhouse)
                key = c.name if c.name in _OWN else g
                cells = [f"{codec}: {b / n:.3f}" for codec, b in sizes[c.name].items()]
                for codec, b in sizes[c.name].items():
                    groups.setdefault(key, {}).setdefault(codec, 0)
                    groups[key][codec] += b
                print(f"| {c.name} | {c.clickhouse} | {today[c.name]} | {chosen[c.name]} | "
                      + " | ".join(cells) + " |")
            print("\nBytes per span by group (sum of the group's columns):")
            print("| group | before 0023 | candidates (B/span) |\n|---|---|---|")
            for key, by_codec in groups.items():
                first = next(c for c in SPAN_COLUMNS
                             if (c.name == key) or group_of(c.name, c.clickhouse) == key)
                ranked = sorted(by_codec.items(), key=lambda kv: kv[1])
                print(f"| {key} | {today[first.name]} | "
                      + ", ".join(f"{codec} {b / n:.2f}" for codec, b in ranked) + " |")
        chosen = chosen_codecs()
        configs: list[tuple[str, dict[str, str]]] = [("before 0023", today),
                                                     ("chosen (0023)", chosen)]
        for level in (3, 6, 9):
            alt = {**chosen, "attributes": f"ZSTD({level})"}
            configs.append((f"chosen, attributes ZSTD({level})", alt))
        print(f"\nInsert of {n} spans (one Arrow table, ChdbSpanStore.insert_table), median of"
              f" {args.repeat}, configurations in turn:")
        print("| codecs | CPU s | wall s | CPU µs/span | merged part B/span |\n|---|---:|---:|---:|---:|")
        costs = insert_costs(store, spans, configs, args.repeat)
        for (label, _), (cpu, wall, size) in zip(configs, costs, strict=True):
            print(f"| {label} | {cpu:.3f} | {wall:.3f} | {cpu / n * 1e6:.2f} | {size / n:.1f} |",
                  flush=True)
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
