"""Vectorized synthetic span tables (schema SPAN_SCHEMA) for query benchmarks.

No Python loop per row: numpy draws every column, pyarrow builds the table (ids are hex
text built from one buffer, not formatted per row: ~1M spans/s).

Shape: 40 projects spread over 5 orgs; each project has 1-3 agents, each agent uses
1-2 models and one workflow; a trace (~8 spans, within 30 s) belongs to one agent, so
one org/project; ~85% of spans are LLM calls of the agent's models, the rest tool calls
with a little infra cost; ~3% of spans fail.

``analytics=True`` adds what the trace analytics of issue 16 read (still vectorized): the
first span of each trace is its root (an ``invoke_agent`` span covering the trace) and
the others its children; users (2,000), sessions (~4 traces each); two prompt and agent
versions per agent (``v2`` from 60% of the window on); ~2% retries, ~1% fallbacks; failed
spans carry an error type; half the LLM calls read some cached input.
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa

from mentatlab.model.schema import SPAN_SCHEMA

NUM_ORGS = 5
NUM_PROJECTS = 40
MODELS = [
    "gpt-4o-mini-2024-07-18",
    "gpt-4o-2024-08-06",
    "claude-3-5-sonnet-20241022",
    "gemini-1.5-pro",
    "o3-mini-2025-01-31",
    "text-embedding-3-small",
]
PROVIDERS = ["openai", "openai", "anthropic", "gcp.gemini", "openai", "openai"]
TOOLS = ["search", "sql", "http_get", "python"]
SPANS_PER_TRACE = 8
TRACE_SPREAD_NS = 30 * 10**9


def _agents() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fixed catalogue: (project index, model index a, model index b) of every agent."""
    rng = np.random.default_rng(12345)
    project, model_a, model_b = [], [], []
    for p in range(NUM_PROJECTS):
        for _ in range(int(rng.integers(1, 4))):
            a = int(rng.integers(0, len(MODELS)))
            b = a if rng.random() < 0.5 else int(rng.integers(0, len(MODELS)))
            project.append(p)
            model_a.append(a)
            model_b.append(b)
    return np.array(project), np.array(model_a), np.array(model_b)


AGENT_PROJECT, AGENT_MODEL_A, AGENT_MODEL_B = _agents()


def _hex(values: np.ndarray, width_u64: int) -> pa.Array:
    """Lowercase hex strings of ``width_u64`` big-endian uint64 words per row."""
    n = values.size // width_u64
    data = values.astype(">u8").tobytes().hex().encode()
    chars = 16 * width_u64
    offsets = np.arange(0, n * chars + 1, chars, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data))


def _strings(values: list[str], idx: np.ndarray) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(idx.astype(np.int32)),
                                          pa.array(values)).cast(pa.string())


def _const(value: str, n: int) -> pa.Array:
    return _strings([value], np.zeros(n, np.int8))


def synthetic_table(
    n: int, *, days: float = 30, seed: int = 0, end_ns: int | None = None,
    analytics: bool = False,
) -> pa.Table:
    """A table of ``n`` spans whose traces start over the last ``days`` days (a fraction
    of a day for recent-data runs); ``analytics`` adds the module docstring's trace shape."""
    rng = np.random.default_rng(seed)
    end_ns = end_ns or time.time_ns()
    num_traces = n // SPANS_PER_TRACE + 1
    trace_start = end_ns - TRACE_SPREAD_NS - rng.integers(0, int(days * 86_400 * 10**9), num_traces)
    trace_agent = rng.integers(0, len(AGENT_PROJECT), num_traces)
    trace_words = rng.integers(0, 2**63, (num_traces, 2), dtype=np.int64).astype(np.uint64)
    tr = np.sort(rng.integers(0, num_traces, n))
    agent = trace_agent[tr]
    project = AGENT_PROJECT[agent]
    start = trace_start[tr] + rng.integers(0, TRACE_SPREAD_NS, n)
    dur_ns = rng.lognormal(np.log(8e8), 0.8, n).astype(np.int64) + 1_000_000
    is_tool = rng.random(n) < 0.15
    model_idx = np.where(rng.random(n) < 0.5, AGENT_MODEL_A[agent], AGENT_MODEL_B[agent])
    inp = np.where(is_tool, 0, rng.integers(50, 8000, n)).astype(np.uint64)
    out = np.where(is_tool | (model_idx == 5), 0, rng.integers(10, 1500, n)).astype(np.uint64)
    cols: dict[str, pa.Array] = {}
    is_root = np.zeros(n, bool)
    if analytics:
        is_root = _analytics_shape(rng, n, seed, tr, trace_start, days, end_ns, is_tool, start,
                                   dur_ns, inp, out, cols)
    token_units = (inp * 150 + out * 600).astype(np.int64) * 1000  # 1e-12 USD units
    cpu_units = np.where(is_tool, rng.integers(1, 50_000_000, n), 0).astype(np.int64)
    ts = pa.timestamp("ns", tz="UTC")
    for f in SPAN_SCHEMA:
        name, typ = f.name, f.type
        if name in cols:
            continue
        if name == "trace_id":
            cols[name] = _hex(trace_words[tr].reshape(-1), 2)
        elif name == "span_id":
            cols[name] = _hex(rng.integers(0, 2**63, n).astype(np.uint64), 1)
        elif name == "name":
            cols[name] = _strings(["chat", "tool"], is_tool.astype(np.int8))
        elif name == "start_time":
            cols[name] = pa.array(start, pa.int64()).cast(ts)
        elif name == "end_time":
            cols[name] = pa.array(start + dur_ns, pa.int64()).cast(ts)
        elif name == "duration_ms":
            cols[name] = pa.array(dur_ns / 1e6)
        elif name == "status":
            cols[name] = _strings(["ok", "error"], (rng.random(n) < 0.03).astype(np.int8))
        elif name == "org_id":
            cols[name] = _strings([f"org-{i}" for i in range(NUM_ORGS)], project % NUM_ORGS)
        elif name == "project_id":
            cols[name] = _strings([f"proj-{i}" for i in range(NUM_PROJECTS)], project)
        elif name == "service_name":
            cols[name] = _strings([f"svc-{i}" for i in range(NUM_PROJECTS)], project)
        elif name == "agent_id":
            cols[name] = _strings([f"agent-{i}" for i in range(len(AGENT_PROJECT))], agent)
        elif name == "workflow_id":
            cols[name] = _strings([f"wf-{i}" for i in range(len(AGENT_PROJECT))], agent)
        elif name == "operation":
            cols[name] = _strings(["chat", "embeddings", "tool", "agent"], np.where(
                is_root, 3, np.where(is_tool, 2, (model_idx == 5).astype(np.int8))))
        elif name == "tool_name":
            cols[name] = _strings(["", *TOOLS], np.where(is_tool, rng.integers(1, 5, n), 0))
        elif name in ("request_model", "response_model"):
            cols[name] = _strings(["", *MODELS], np.where(is_tool | is_root, 0, model_idx + 1))
        elif name == "provider":
            cols[name] = _strings(["", *PROVIDERS], np.where(is_tool | is_root, 0, model_idx + 1))
        elif name == "input_tokens":
            cols[name] = pa.array(inp, pa.uint64())
        elif name == "output_tokens":
            cols[name] = pa.array(out, pa.uint64())
        elif name == "total_tokens":
            cols[name] = pa.array(inp + out, pa.uint64())
        elif name == "token_cost":
            cols[name] = _scaled_decimal(token_units, typ)
        elif name == "cpu_cost":
            cols[name] = _scaled_decimal(cpu_units, typ)
        elif name == "total_cost":
            cols[name] = _scaled_decimal(token_units + cpu_units, typ)
        elif name == "price_source":
            cols[name] = _strings(["genai-prices@0.2.3:openai/gpt-4o-mini", ""], is_tool.astype(np.int8))
        elif name == "currency":
            cols[name] = _const("USD", n)
        elif name == "kind":
            cols[name] = _const("client", n)
        elif name == "attempt":
            cols[name] = pa.array(np.ones(n, np.uint16))
        elif name == "attributes":
            cols[name] = _const('{"gen_ai.operation.name":"chat"}', n)
        elif name == "ingested_at_ns":
            cols[name] = pa.array(start + dur_ns, pa.int64())
        elif pa.types.is_string(typ):
            cols[name] = _const("[]" if name == "events" else "{}" if name == "resource" else "", n)
        elif pa.types.is_boolean(typ):
            cols[name] = pa.nulls(n, typ) if f.nullable else pa.array(np.zeros(n, bool))
        elif pa.types.is_decimal(typ):
            cols[name] = _scaled_decimal(np.zeros(n, np.int64), typ)
        elif f.nullable:
            cols[name] = pa.nulls(n, typ)
        else:
            cols[name] = pa.array(np.zeros(n), pa.float64()).cast(typ)
    return pa.Table.from_arrays([cols[f.name] for f in SPAN_SCHEMA], schema=SPAN_SCHEMA)


def _analytics_shape(rng: np.random.Generator, n: int, seed: int, tr: np.ndarray, trace_start: np.ndarray,
                     days: float, end_ns: int, is_tool: np.ndarray, start: np.ndarray,
                     dur_ns: np.ndarray, inp: np.ndarray, out: np.ndarray,
                     cols: dict[str, pa.Array]) -> np.ndarray:
    """Fill ``cols`` with the analytics shape; the root mask.

    Modifies ``is_tool``, ``start``, ``dur_ns``, ``inp`` and ``out`` in place: the root
    spans are token-free agent spans covering their trace.
    """
    span_words = rng.integers(0, 2**63, n).astype(np.uint64)
    is_root = np.ones(n, bool)
    is_root[1:] = tr[1:] != tr[:-1]  # rows are sorted by trace: the first row of each
    root_row = np.maximum.accumulate(np.where(is_root, np.arange(n), 0))
    is_tool[is_root] = False
    start[is_root] = trace_start[tr[is_root]]
    dur_ns[is_root] = TRACE_SPREAD_NS + 2 * 10**9
    inp[is_root] = 0
    out[is_root] = 0
    parent = span_words[root_row]
    cols["span_id"] = _hex(span_words, 1)
    cols["parent_span_id"] = pa.array(np.where(is_root, "", np.asarray(
        _hex(parent, 1).to_numpy(zero_copy_only=False), dtype=object)), pa.string())
    cols["name"] = _strings(["chat", "tool", "invoke_agent"],
                            np.where(is_root, 2, is_tool.astype(np.int8)))
    later = trace_start[tr] > end_ns - int(0.4 * days * 86_400 * 10**9)
    version = _strings(["v1", "v2"], later.astype(np.int8))
    cols["prompt_version"] = version
    cols["agent_version"] = version
    cols["user_id"] = _strings([f"user-{i}" for i in range(2000)], (tr * 7919) % 2000)
    sessions = (tr // 4).astype(np.uint64) + np.uint64(seed) * np.uint64(2**32)  # per chunk
    cols["session_id"] = _hex(sessions * np.uint64(2654435761) + np.uint64(1), 1)
    cols["is_retry"] = pa.array(rng.random(n) < 0.02)
    cols["is_fallback"] = pa.array(rng.random(n) < 0.01)
    failed = rng.random(n) < 0.03
    cols["status"] = _strings(["ok", "error"], failed.astype(np.int8))
    cols["error_type"] = _strings(["", "rate_limit", "timeout", "tool_error"],
                                  np.where(failed, rng.integers(1, 4, n), 0))
    cached = np.where(rng.random(n) < 0.5, inp // 2, 0).astype(np.uint64)
    cols["cache_read_tokens"] = pa.array(cached, pa.uint64())
    return is_root


def _scaled_decimal(units: np.ndarray, typ: pa.DataType) -> pa.Array:
    """Decimal array equal to ``units * 10**-scale`` without a Python loop (via Arrow's
    int64 → decimal128(38, 0) cast and a scale-preserving reinterpretation)."""
    raw = pa.array(units.astype(np.int64), pa.int64()).cast(pa.decimal128(38, 0))
    buf = raw.buffers()
    return pa.Array.from_buffers(typ, len(raw), buf, null_count=0)
