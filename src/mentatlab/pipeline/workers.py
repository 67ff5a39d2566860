"""Ingest worker processes: OTLP/HTTP bytes in, Arrow IPC bytes out.

One Python process runs the pipeline (decode → normalize → span stages → Arrow → price)
on one core at most. With ``Settings.ingest_workers`` > 0 the server hands each
OTLP/HTTP body to a pool of worker processes (``forkserver`` start method: the server
process holds chDB threads and must never ``fork``) and keeps only HTTP, the Arrow
decode of the answer and the group-commit insert for itself. chDB stays in the server
process: one process per store folder.

This module imports neither the server nor the store, so a worker stays small (~120 MiB
resident instead of the server's ~400 MiB with chDB).
"""

from __future__ import annotations

import gc
import importlib.abc
import importlib.machinery
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from mentatlab.errors import FieldError, MentatLabError
from mentatlab.governance.policies import PolicySnapshot
from mentatlab.pipeline.policies import EvaluatePolicies
from mentatlab.pipeline.processor import Pipeline
from mentatlab.receivers.otlp_http import HttpLimits, decode_http_body
from mentatlab.settings import Settings

if TYPE_CHECKING:
    from mentatlab.pipeline.price import Price

__all__ = [
    "WorkerResult",
    "arrow_from_ipc",
    "arrow_to_ipc",
    "build_pipeline",
    "freeze_heap",
    "init_pool_worker",
    "init_worker",
    "ping",
    "price_of",
    "run_otlp_http",
    "use_policies",
]

logger = logging.getLogger(__name__)

_pipeline: Pipeline | None = None
_heap_frozen = False


@dataclass(frozen=True, slots=True)
class WorkerResult:
    """What a worker did with one OTLP/HTTP body."""

    received: int
    """Spans that decoded (accepted or refused by the pipeline), in spans."""
    decode_rejected: list[FieldError]
    """Spans the decoder refused."""
    rejected: list[FieldError]
    """Spans the pipeline refused."""
    table_ipc: bytes | None
    """The accepted spans as an Arrow IPC stream (``SPAN_SCHEMA``); None when none."""


def init_worker(settings: Settings, server_pid: int | None = None) -> None:
    """Process initializer: build the pipeline once per worker (same as the server's).

    With ``server_pid``, a daemon thread ends this worker within ~1 s of the server's death:
    a server killed with SIGKILL cannot shut its pool down, and workers are children of
    the forkserver, not of the server, so nothing else would end them.

    Raises:
        ConfigError: the pricing file is invalid.
        PricingError: the fetched price snapshot is unreadable.
    """
    global _pipeline
    _pipeline = build_pipeline(settings)
    freeze_heap()
    if server_pid is not None:
        threading.Thread(target=_exit_when_gone, args=(server_pid,), daemon=True,
                         name="mentatlab-server-watch").start()


WORKER_REFUSED_IMPORTS = ("pandas",)
"""Packages a pool worker refuses to import (:func:`init_pool_worker`).

pandas: pyarrow's pandas shim imports it on the first ``pa.array`` of a Python list, to
check whether the list is a pandas object: ~50 MiB resident and ~0.4 s of CPU in each
worker, for a check that is always false here. Without pandas, pyarrow refuses only
``as_py()`` of a nanosecond timestamp that is not a whole microsecond; the pipeline reads
times as int64 nanoseconds (``price_columns``, the columnar decoder) and never does."""


class _RefuseImports(importlib.abc.MetaPathFinder):
    """A ``sys.meta_path`` finder that makes ``import`` of the named packages fail.

    The import raises ``ModuleNotFoundError``, as for a package that is not installed, so
    a library's optional use of it (pyarrow's pandas shim) takes its fallback.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"{fullname} is not imported in an ingest worker",
                                      name=fullname)
        return None


def init_pool_worker(settings: Settings, server_pid: int) -> None:
    """The worker pool's process initializer: :func:`init_worker`, without pandas.

    Refuses :data:`WORKER_REFUSED_IMPORTS` before anything is imported that would load
    them (the worker starts from the forkserver, which loaded only what ``pickle`` of this
    function needs).

    Raises:
        ConfigError: the pricing file is invalid.
        PricingError: the fetched price snapshot is unreadable.
        RuntimeError: a refused package was already imported in this process.
    """
    loaded = [name for name in WORKER_REFUSED_IMPORTS if name in sys.modules]
    if loaded:
        raise RuntimeError(f"Expected {loaded} not to be imported yet in an ingest worker")
    sys.meta_path.insert(0, _RefuseImports(WORKER_REFUSED_IMPORTS))
    init_worker(settings, server_pid)


def freeze_heap() -> None:
    """Collect, then move every object alive now out of the garbage collector's sight.

    Called once a process has built what it keeps for its life (modules, the pipeline):
    a full collection walks every tracked object, and with Presidio loaded those are
    ~190,000 (~130 ms a pass; ~1.7 µs per span at ingest instead of ~7). Presidio loads
    later, on the first string to scan, and freezes what it built itself
    (:mod:`mentatlab.governance.pii`). Objects made later are collected as usual
    (:func:`gc.freeze`). Once per process: a process that builds several apps (tests)
    freezes only the first. The collector is on afterwards: ``mentatctl serve`` turns it
    off for its start-up (:mod:`mentatlab.cli.serve`), this collection being the one
    start-up needs.
    """
    global _heap_frozen
    if _heap_frozen:
        gc.enable()
        return
    _heap_frozen = True
    gc.collect()
    gc.freeze()
    gc.enable()


def _exit_when_gone(server_pid: int, period_s: float = 1.0) -> None:
    while True:
        time.sleep(period_s)
        try:
            os.kill(server_pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:  # the PID now belongs to another user's process
            os._exit(0)


def build_pipeline(settings: Settings) -> Pipeline:
    """The pipeline every ingest path runs, in the server process or in a worker.

    ``Normalize → Redact → Attribute → EvaluatePolicies → Classify → PromptPrefix →
    HashToolArguments``, then ``spans_to_arrow``, then ``PriceColumns`` over the table, with
    the current prices and the PII settings (``Redact`` right after normalization, so every
    later stage, the store and the live stream see redacted values only).
    ``EvaluatePolicies`` starts with no policy: the server hands it the snapshot in force
    with each batch.

    Pricing runs last, on columns (issue 18: once per distinct model and price minute,
    ~1-2 µs a span instead of ~10), which is right as long as no span stage reads a cost:
    ``Classify``, ``PromptPrefix`` and ``HashToolArguments`` read none, and the stages
    before them ran before pricing already. A stage that needs costs goes after
    ``PriceColumns`` as a table stage, or prices its spans with ``Price`` itself
    (reprice, the resolver and the CLI do: :func:`mentatlab.pipeline.price.reprice_spans`).

    Raises:
        ConfigError: the pricing file or a PII setting is invalid.
        PricingError: the fetched price snapshot is unreadable.
    """
    from mentatlab.pipeline.attribution import Attribute
    from mentatlab.pipeline.classify import Classify
    from mentatlab.pipeline.normalize import Normalize
    from mentatlab.pipeline.price import Price
    from mentatlab.pipeline.price_columns import PriceColumns
    from mentatlab.pipeline.prompt_prefix import PromptPrefix
    from mentatlab.pipeline.redact import Redact
    from mentatlab.pipeline.tool_args import HashToolArguments

    return Pipeline(Normalize(settings.max_attribute_value_bytes),
                    [Redact.from_settings(settings), Attribute(), EvaluatePolicies(),
                     Classify(), PromptPrefix(), HashToolArguments()],
                    [PriceColumns(Price.from_settings(settings))])


def price_of(pipeline: Pipeline) -> Price | None:
    """The prices ``pipeline`` prices new spans with (its ``price`` stage), or None."""
    from mentatlab.pipeline.price import Price as PerSpanPrice
    from mentatlab.pipeline.price_columns import PriceColumns

    for stage in pipeline.stages:
        if isinstance(stage, PriceColumns):
            return stage.price
        if isinstance(stage, PerSpanPrice):
            return stage
    return None


def use_policies(pipeline: Pipeline, snapshot: PolicySnapshot | None) -> None:
    """Hand ``snapshot`` to the pipeline's ``policies`` stage (no-op when it has none)."""
    for processor in pipeline.processors:
        if isinstance(processor, EvaluatePolicies):
            processor.use(snapshot)


def ping() -> bool:
    """True once the worker's pipeline is built (used to start workers ahead of load)."""
    return _pipeline is not None


def arrow_to_ipc(table: pa.Table) -> bytes:
    """An Arrow table as IPC stream bytes."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def arrow_from_ipc(data: bytes) -> pa.Table:
    """The table of :func:`arrow_to_ipc` bytes (zero-copy over ``data``)."""
    return pa.ipc.open_stream(data).read_all()


def run_otlp_http(body: bytes, content_type: str | None, content_encoding: str | None,
                  limits: HttpLimits, tenancy: Mapping[str, str] | None,
                  policies: PolicySnapshot | None = None) -> WorkerResult | None:
    """Decode one OTLP/HTTP body and run the pipeline over it (runs in a worker).

    Args:
        body: the request body as sent.
        content_type: the ``Content-Type`` header.
        content_encoding: the ``Content-Encoding`` header.
        limits: body size limits, in bytes.
        tenancy: tenancy fixed by the API key; it wins over the spans' own.
        policies: the guardrail policies in force (compiled once per digest here).

    Returns:
        The result, or None when the body does not decode at all: the caller then decodes
        it in-process to raise the exact error (errors are rare; their classes are not
        all picklable).

    Raises:
        RuntimeError: the worker was not initialised with :func:`init_worker`.
    """
    if _pipeline is None:
        raise RuntimeError("Expected init_worker to have run in this process")
    try:
        decoded = decode_http_body(body, content_type, content_encoding, limits)
    except MentatLabError:
        return None
    raw = decoded.spans
    use_policies(_pipeline, policies)
    if tenancy:
        for span in raw:
            span.tenancy.update(tenancy)
    result = _pipeline.run(raw) if raw else None
    if result is None:
        return WorkerResult(0, decoded.rejected, [], None)
    table_ipc = arrow_to_ipc(result.table) if result.table.num_rows else None
    return WorkerResult(len(raw), decoded.rejected, result.rejected, table_ipc)
