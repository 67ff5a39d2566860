"""Vectorized synthetic span tables (schema SPAN_SCHEMA) for query benchmarks.

No Python loop per row: numpy draws every column, pyarrow builds the table.
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa

from mentatlab.model.schema import SPAN_SCHEMA

ORGS = [f"org-{i}" for i in range(5)]
PROJECTS = [f"proj-{i}" for i in range(40)]
AGENTS = [f"agent-{i}" for i in range(25)]
MODELS = [
    "gpt-4o-mini-2024-07-18",
    "gpt-4o-2024-08-06",
    "claude-3-5-sonnet-20241022",
    "gemini-1.5-pro",
    "o3-mini-2025-01-31",
    "text-embedding-3-small",
]
PROVIDERS = ["openai", "openai", "anthropic", "gcp.gemini", "openai", "openai"]


def _pick(rng: np.random.Generator, values: list[str], n: int) -> pa.Array:
    idx = rng.integers(0, len(values), n)
    return pa.DictionaryArray.from_arrays(pa.array(idx, pa.int32()), pa.array(values)).cast(
        pa.string()
    )


def synthetic_table(
    n: int, *, days: int = 30, seed: int = 0, end_ns: int | None = None
) -> pa.Table:
    """A table of ``n`` spans spread over the last ``days`` days."""
    rng = np.random.default_rng(seed)
    end_ns = end_ns or time.time_ns()
    start = end_ns - rng.integers(0, days * 86_400 * 10**9, n)
    dur_ns = rng.integers(50_000_000, 5_000_000_000, n)
    model_idx = rng.integers(0, len(MODELS), n)
    inp = rng.integers(50, 8000, n).astype(np.uint64)
    out = rng.integers(10, 1500, n).astype(np.uint64)
    cost_units = (inp * 150 + out * 600).astype(np.int64) * 1000  # 1e-12 USD units
    trace = rng.integers(0, 2**63, n // 8 + 1)
    cols: dict[str, pa.Array] = {}
    ts = pa.timestamp("ns", tz="UTC")
    hexes = np.char.mod("%032x", trace)
    for f in SPAN_SCHEMA:
        name, typ = f.name, f.type
        if name == "trace_id":
            cols[name] = pa.array(hexes[rng.integers(0, len(hexes), n)])
        elif name == "span_id":
            cols[name] = pa.array(np.char.mod("%016x", rng.integers(0, 2**63, n)))
        elif name == "start_time":
            cols[name] = pa.array(start, pa.int64()).cast(ts)
        elif name == "end_time":
            cols[name] = pa.array(start + dur_ns, pa.int64()).cast(ts)
        elif name == "duration_ms":
            cols[name] = pa.array(dur_ns / 1e6)
        elif name == "status":
            cols[name] = pa.array(np.where(rng.random(n) < 0.03, "error", "ok"))
        elif name == "org_id":
            cols[name] = _pick(rng, ORGS, n)
        elif name == "project_id":
            cols[name] = _pick(rng, PROJECTS, n)
        elif name == "agent_id":
            cols[name] = _pick(rng, AGENTS, n)
        elif name == "operation":
            cols[name] = pa.array(np.where(model_idx == 5, "embeddings", "chat"))
        elif name in ("request_model", "response_model"):
            cols[name] = pa.array(np.array(MODELS)[model_idx])
        elif name == "provider":
            cols[name] = pa.array(np.array(PROVIDERS)[model_idx])
        elif name == "input_tokens":
            cols[name] = pa.array(inp, pa.uint64())
        elif name == "output_tokens":
            cols[name] = pa.array(out, pa.uint64())
        elif name == "total_tokens":
            cols[name] = pa.array(inp + out, pa.uint64())
        elif name in ("token_cost", "total_cost"):
            cols[name] = _scaled_decimal(cost_units, typ)
        elif name == "price_source":
            cols[name] = pa.array(np.full(n, "genai-prices@0.2.3:openai/gpt-4o-mini"))
        elif name == "currency":
            cols[name] = pa.array(np.full(n, "USD"))
        elif name == "kind":
            cols[name] = pa.array(np.full(n, "client"))
        elif name == "attempt":
            cols[name] = pa.array(np.ones(n, np.uint16))
        elif name == "attributes":
            cols[name] = pa.array(np.full(n, '{"gen_ai.operation.name":"chat"}'))
        elif name == "ingested_at_ns":
            cols[name] = pa.array(start + dur_ns, pa.int64())
        elif pa.types.is_string(typ):
            cols[name] = pa.array(
                np.full(n, "[]" if name == "events" else ("{}" if name == "resource" else ""))
            )
        elif pa.types.is_boolean(typ):
            cols[name] = pa.nulls(n, typ) if f.nullable else pa.array(np.zeros(n, bool))
        elif pa.types.is_decimal(typ):
            cols[name] = _scaled_decimal(np.zeros(n, np.int64), typ)
        elif f.nullable:
            cols[name] = pa.nulls(n, typ)
        else:
            cols[name] = pa.array(np.zeros(n), pa.float64()).cast(typ)
    return pa.Table.from_arrays([cols[f.name] for f in SPAN_SCHEMA], schema=SPAN_SCHEMA)


def _scaled_decimal(units: np.ndarray, typ: pa.DataType) -> pa.Array:
    """Decimal array equal to ``units * 10**-scale`` without a Python loop (via Arrow's
    int64 → decimal128(38, 0) cast and a scale-preserving reinterpretation)."""
    raw = pa.array(units.astype(np.int64), pa.int64()).cast(pa.decimal128(38, 0))
    buf = raw.buffers()
    return pa.Array.from_buffers(typ, len(raw), buf, null_count=0)
