"""Resource meters attached to every span the SDK creates (``mentat.resource.*``).

What each span reports, and how (details and error bounds in ``docs/sdk.md``):

* ``cpu_core_seconds`` — CPU time of the span's own code. Sync spans read the thread's
  CPU clock (``time.thread_time_ns``, i.e. ``CLOCK_THREAD_CPUTIME_ID``, the kernel's
  per-thread ``sum_exec_runtime``) at each step boundary. Async spans cannot use the
  thread clock, since other tasks run on the same thread while the span awaits: instead a
  hook on ``asyncio.events.Handle._run`` (installed once) times every loop callback with
  the thread CPU clock and credits it to the meters found in that callback's
  ``contextvars.Context``. A span's meters live in a context variable, so only the steps
  of its own task (and of tasks it spawns, which inherit its context) are counted, never
  those of unrelated tasks interleaved on the loop. Loops whose handles are not
  ``asyncio.events.Handle`` (uvloop) fall back to the thread clock, which then includes
  interleaved tasks. Generators are metered only while they run, not while suspended.
* ``memory_gb_seconds`` — integral of the process's resident memory over the span, from
  the shared sampler (:mod:`mentatlab.sdk._sampler`); GB means GiB (2**30 bytes), as in
  cloud memory prices.
* ``gpu_seconds`` / ``gpu_memory_bytes`` — NVML, only when a GPU answers; ``gpu_model``
  (the NVML device name, e.g. ``"NVIDIA A100-SXM4-80GB"``) with GPU time when every GPU
  the process uses is that model, so the server prices GPU time per model
  (``docs/pricing.md``).
* ``network_bytes_in`` / ``network_bytes_out`` / ``storage_bytes`` — deltas of the
  sampled counters; exact for spans longer than one sampler period (the span end takes a
  fresh sample), otherwise attributed to whichever span straddles a sample.

Values are *exclusive* ("self"): a span reports what it used minus what its metered child
spans reported, so summing spans over a trace never counts a resource twice.
"""

from __future__ import annotations

import asyncio
import asyncio.events
import contextvars
import threading
import time
from collections.abc import Callable
from typing import Any

from mentatlab.sdk._sampler import Sampler

__all__ = [
    "ATTR_CPU_CORE_SECONDS",
    "ATTR_GPU_MEMORY_BYTES",
    "ATTR_GPU_MODEL",
    "ATTR_GPU_SECONDS",
    "ATTR_MEMORY_GB_SECONDS",
    "ATTR_NETWORK_BYTES_IN",
    "ATTR_NETWORK_BYTES_OUT",
    "ATTR_STORAGE_BYTES",
    "ResourceMeter",
    "install_loop_hook",
]

ATTR_CPU_CORE_SECONDS = "mentat.resource.cpu_core_seconds"
ATTR_MEMORY_GB_SECONDS = "mentat.resource.memory_gb_seconds"
ATTR_GPU_SECONDS = "mentat.resource.gpu_seconds"
ATTR_GPU_MEMORY_BYTES = "mentat.resource.gpu_memory_bytes"
ATTR_GPU_MODEL = "mentat.resource.gpu_model"
"""NVML device name of the GPUs a span's GPU time ran on; the server's GPU rate is chosen by
it (``pricing/infra_rates.py`` ``GPU_MODEL_ATTRIBUTE``, the same name)."""
ATTR_NETWORK_BYTES_IN = "mentat.resource.network_bytes_in"
ATTR_NETWORK_BYTES_OUT = "mentat.resource.network_bytes_out"
ATTR_STORAGE_BYTES = "mentat.resource.storage_bytes"

_GIB = 2**30
_NS_PER_S = 1_000_000_000
_GIB_NS = _GIB * _NS_PER_S
_thread_time_ns = time.thread_time_ns
_monotonic_ns = time.monotonic_ns

_TASK_METERS: contextvars.ContextVar[tuple[ResourceMeter, ...]] = contextvars.ContextVar(
    "mentatlab_task_meters", default=())
"""Meters of async spans open in the current task; the loop hook credits them."""
_CURRENT_METER: contextvars.ContextVar[ResourceMeter | None] = contextvars.ContextVar(
    "mentatlab_current_meter", default=None)
"""Innermost open meter: a new meter's parent, for exclusive accounting."""

_step = threading.local()  # step_start_cpu_ns of the loop callback running on this thread
_children_lock = threading.Lock()
_active_lock = threading.Lock()
_num_active_task_meters = 0
_hook_installed = False


def _metered_handle_run(original: Callable[[Any], None]) -> Callable[[Any], None]:
    def _run(self: Any) -> None:
        if not _num_active_task_meters:
            original(self)
            if not _num_active_task_meters:
                return
            start_cpu_ns = 0  # any meter active now started inside this step
        else:
            start_cpu_ns = _thread_time_ns()
            _step.start_cpu_ns = start_cpu_ns
            original(self)
        meters = self._context.get(_TASK_METERS)
        if meters:
            end_cpu_ns = _thread_time_ns()
            for meter in meters:
                meter.cpu_ns += end_cpu_ns - max(start_cpu_ns, meter.resumed_cpu_ns)

    return _run


def install_loop_hook() -> None:
    """Install the asyncio callback hook behind async CPU metering (once per process)."""
    global _hook_installed
    if _hook_installed:
        return
    handle_cls: Any = asyncio.events.Handle
    handle_cls._run = _metered_handle_run(handle_cls._run)
    _hook_installed = True


def _in_metered_loop() -> bool:
    loop = asyncio._get_running_loop()
    return loop is not None and _hook_installed and isinstance(loop, asyncio.BaseEventLoop)


class ResourceMeter:
    """Meters one span.

    Call :meth:`resume`/:meth:`pause` around each step the span's code runs (once for a
    function, once per iteration for a generator), then :meth:`finish`.

    Not thread-safe per instance: a span's steps run on one thread at a time.
    """

    __slots__ = (
        "_children", "_parent", "_period_ns", "_sampler", "_start_ns", "_start_sample",
        "_task_mode", "_thread_id", "_token_current", "_token_task", "cpu_ns",
        "resumed_cpu_ns",
    )

    def __init__(self, sampler: Sampler, *, is_async: bool) -> None:
        self._sampler = sampler
        self._period_ns = int(sampler.period_ms * 1_000_000)
        self._task_mode = is_async and _in_metered_loop()
        self._parent = _CURRENT_METER.get()
        self._thread_id = threading.get_ident()
        self._children: list[float] | None = None
        self.cpu_ns = 0
        self.resumed_cpu_ns = 0
        self._token_task: contextvars.Token[tuple[ResourceMeter, ...]] | None = None
        self._token_current: contextvars.Token[ResourceMeter | None] | None = None
        sampler.span_started()
        self._start_sample = sampler.latest
        self._start_ns = _monotonic_ns()

    def resume(self) -> None:
        """Start counting CPU: the span's code is about to run on this thread."""
        global _num_active_task_meters
        self._token_current = _CURRENT_METER.set(self)
        if self._task_mode:
            self._token_task = _TASK_METERS.set((*_TASK_METERS.get(), self))
            with _active_lock:
                _num_active_task_meters += 1
        self.resumed_cpu_ns = _thread_time_ns()

    def pause(self) -> None:
        """Stop counting CPU: the span's code has returned or yielded."""
        global _num_active_task_meters
        now_cpu_ns = _thread_time_ns()
        if self._task_mode:
            step_start_ns = getattr(_step, "start_cpu_ns", 0)
            self.cpu_ns += now_cpu_ns - max(step_start_ns, self.resumed_cpu_ns)
            if self._token_task is not None:
                _TASK_METERS.reset(self._token_task)
                self._token_task = None
            with _active_lock:
                _num_active_task_meters -= 1
        else:
            self.cpu_ns += now_cpu_ns - self.resumed_cpu_ns
        if self._token_current is not None:
            _CURRENT_METER.reset(self._token_current)
            self._token_current = None

    def finish(self) -> dict[str, float | int | str]:
        """End the meter; return the span's exclusive ``mentat.resource.*`` attributes.

        CPU and memory are always present; GPU, network and storage only when non-zero
        (and the platform exposes them), which keeps short spans cheap; the GPU model
        with non-zero GPU time when it is known. Also credits this
        span's inclusive usage to its parent meter.
        """
        end_ns = _monotonic_ns()
        start_ns = self._start_ns
        start = self._start_sample
        sampler = self._sampler
        sampler.span_finished()
        end = sampler.latest
        if end_ns - start_ns >= self._period_ns:
            end = sampler.refresh()
        memory_byte_ns = (end.memory_byte_ns + end.rss_bytes * (end_ns - end.time_ns)
                          - start.memory_byte_ns - start.rss_bytes * (start_ns - start.time_ns))
        usage = [self.cpu_ns / _NS_PER_S, max(0, memory_byte_ns) / _GIB_NS, 0.0, 0.0, 0.0, 0.0]
        if end.num_gpus_in_use is not None:
            usage[2] = max(0, end.gpu_ns_at(end_ns) - start.gpu_ns_at(start_ns)) / _NS_PER_S
        if end is not start:
            usage[3] = _delta(start.network_bytes_in, end.network_bytes_in)
            usage[4] = _delta(start.network_bytes_out, end.network_bytes_out)
            usage[5] = _delta(start.storage_write_bytes, end.storage_write_bytes)
        parent = self._parent
        if parent is not None:
            credit = list(usage)
            if parent._thread_id != self._thread_id:
                credit[0] = 0.0  # the parent's CPU clock never counted another thread
            with _children_lock:
                if parent._children is None:
                    parent._children = credit
                else:
                    for i, value in enumerate(credit):
                        parent._children[i] += value
        children = self._children
        if children is not None:
            usage = [max(0.0, value - child) for value, child in zip(usage, children, strict=True)]
        attributes: dict[str, float | int | str] = {
            ATTR_CPU_CORE_SECONDS: usage[0],
            ATTR_MEMORY_GB_SECONDS: usage[1],
        }
        if end.num_gpus_in_use is not None:
            attributes[ATTR_GPU_SECONDS] = usage[2]
            attributes[ATTR_GPU_MEMORY_BYTES] = end.gpu_memory_bytes or 0
            if usage[2] > 0 and end.gpu_model:
                attributes[ATTR_GPU_MODEL] = end.gpu_model
        for key, value in ((ATTR_NETWORK_BYTES_IN, usage[3]), (ATTR_NETWORK_BYTES_OUT, usage[4]),
                           (ATTR_STORAGE_BYTES, usage[5])):
            if value > 0:
                attributes[key] = int(value)
        return attributes


def _delta(start: int | None, end: int | None) -> float:
    if start is None or end is None:
        return 0.0  # not exposed by this platform
    return float(max(0, end - start))
