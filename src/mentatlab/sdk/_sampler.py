"""One shared background sampler of process-wide resource counters.

A single daemon thread (never one per span) samples, every ``period_ms``:

* resident memory (``/proc/self/statm`` on Linux, else ``psutil``), integrated over time
  into a running byte·ns total (rectangle rule: a sample's RSS holds until the next);
* storage bytes written (``write_bytes`` of ``/proc/self/io``, else
  ``psutil.Process().io_counters()``);
* network bytes in/out (``/proc/self/net/dev``, else ``psutil.net_io_counters()``);
* GPU use through NVML when ``pynvml`` is installed and a GPU answers (GPUs holding a
  context of this process, integrated into GPU·ns; their memory in bytes; and their model,
  the NVML device name, when every GPU in use is the same model).

Network, storage and GPU counters are read every 2nd tick (resident memory every tick),
and the thread sleeps after a second with no span open, so an idle program pays nothing.
A span reads the latest :class:`Sample` at its start and end (a tuple read, no system
call), extrapolating the memory and GPU integrals to "now" with the last sampled value,
so per-span cost stays near zero. Counters that the platform does not expose are
``None`` and are not reported. On Linux the open ``/proc/self/*`` files are read with
``pread``, about 3x cheaper than ``psutil``; they are reopened after ``fork``.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

__all__ = ["Sample", "Sampler", "get_sampler"]

logger = logging.getLogger("mentatlab.sdk")

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_COUNTERS_EVERY_N_TICKS = 2
"""Network, storage and GPU counters are read every 2nd tick (and at span ends that take a
fresh sample); resident memory, which the integral needs, every tick."""
_IDLE_AFTER_NS = 1_000_000_000
"""With no span open for this long the sampler thread sleeps until a span starts."""


@dataclass(frozen=True, slots=True)
class Sample:
    """Process counters at one instant, and the integrals up to it."""

    time_ns: int
    """``time.monotonic_ns()`` of the sample."""
    rss_bytes: int
    """Resident memory of the process, bytes."""
    memory_byte_ns: int
    """Integral of resident memory from sampler start to ``time_ns``, byte·ns."""
    storage_write_bytes: int | None
    """Bytes the process caused to be written to storage since it started."""
    network_bytes_in: int | None
    """Bytes received on all interfaces of the process's network namespace."""
    network_bytes_out: int | None
    """Bytes sent on all interfaces of the process's network namespace."""
    num_gpus_in_use: int | None
    """GPUs holding a context of this process; None without NVML."""
    gpu_ns: int
    """Integral of ``num_gpus_in_use`` over time, GPU·ns."""
    gpu_memory_bytes: int | None
    """GPU memory used by this process over all GPUs, bytes; None without NVML."""
    gpu_model: str | None = None
    """NVML device name of the GPUs this process uses (``"NVIDIA A100-SXM4-80GB"``): of the
    GPUs in use at this sample, else the last ones seen in use; None without NVML, before
    any use, or when GPUs of different models are in use together."""

    def memory_byte_ns_at(self, now_ns: int) -> int:
        """Memory integral extrapolated to ``now_ns`` with the last sampled RSS, byte·ns."""
        return self.memory_byte_ns + self.rss_bytes * (now_ns - self.time_ns)

    def gpu_ns_at(self, now_ns: int) -> int:
        """GPU-use integral extrapolated to ``now_ns``, GPU·ns."""
        return self.gpu_ns + (self.num_gpus_in_use or 0) * (now_ns - self.time_ns)


class _ProcReaders:
    """Readers of this process's counters: ``/proc/self`` on Linux, psutil elsewhere."""

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}
        self._psutil_process: Any = None
        if sys.platform.startswith("linux"):
            for name in ("statm", "io", "net/dev"):
                try:
                    self._fds[name] = os.open(f"/proc/self/{name}", os.O_RDONLY)
                except OSError:
                    logger.debug("Cannot open /proc/self/%s; that meter is not reported", name)
        if len(self._fds) < 3:
            import psutil

            self._psutil_process = psutil.Process()

    def close(self) -> None:
        for fd in self._fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds.clear()

    def _read(self, name: str) -> bytes | None:
        fd = self._fds.get(name)
        if fd is None:
            return None
        try:
            return os.pread(fd, 65536, 0)
        except OSError:
            return None

    def rss_bytes(self) -> int:
        data = self._read("statm")
        if data is not None:
            return int(data.split()[1]) * _PAGE_BYTES
        return int(self._psutil_process.memory_info().rss)

    def storage_write_bytes(self) -> int | None:
        data = self._read("io")
        if data is not None:
            for line in data.splitlines():
                if line.startswith(b"write_bytes:"):
                    return int(line.split()[1])
            return None
        try:
            return int(self._psutil_process.io_counters().write_bytes)
        except (AttributeError, NotImplementedError, OSError):
            return None  # macOS has no per-process I/O counters

    def network_bytes(self) -> tuple[int | None, int | None]:
        data = self._read("net/dev")
        if data is not None:
            bytes_in = bytes_out = 0
            for line in data.splitlines()[2:]:
                _, _, counters = line.partition(b":")
                fields = counters.split()
                if len(fields) >= 9:
                    bytes_in += int(fields[0])
                    bytes_out += int(fields[8])
            return bytes_in, bytes_out
        import psutil

        try:
            counters = psutil.net_io_counters()
        except (OSError, RuntimeError):
            return None, None
        if counters is None:
            return None, None
        return int(counters.bytes_recv), int(counters.bytes_sent)


class _GpuReader:
    """GPU use of this process through NVML; inert when ``pynvml`` or a GPU is absent."""

    def __init__(self) -> None:
        self._nvml: Any = None
        self._handles: list[Any] = []
        self._names: list[str | None] = []
        try:
            nvml = importlib.import_module("pynvml")
            nvml.nvmlInit()
            self._handles = [nvml.nvmlDeviceGetHandleByIndex(i)
                             for i in range(nvml.nvmlDeviceGetCount())]
            self._nvml = nvml
        except Exception:  # no pynvml, no driver or no GPU: GPU meters are not reported
            logger.debug("NVML unavailable; GPU meters are not reported", exc_info=True)
        self._names = [self._device_name(handle) for handle in self._handles]

    def _device_name(self, handle: Any) -> str | None:
        """NVML's product name of one GPU (``"Tesla T4"``); None if NVML cannot say."""
        try:
            name = self._nvml.nvmlDeviceGetName(handle)
        except Exception:  # an old driver without the query: the model is not reported
            logger.debug("NVML device name unavailable", exc_info=True)
            return None
        if isinstance(name, bytes):  # pynvml < 11 answers bytes
            name = name.decode(errors="replace")
        return str(name).strip() or None

    @property
    def available(self) -> bool:
        return self._nvml is not None and bool(self._handles)

    def read(self) -> tuple[int, int, str | None]:
        """Return (GPUs holding a context of this process, their memory in bytes, their model).

        The model is the NVML device name when every GPU in use has the same one, else None
        (a span's GPU time cannot be split between models).
        """
        pid = os.getpid()
        num_gpus = memory_bytes = 0
        models: set[str | None] = set()
        for handle, name in zip(self._handles, self._names, strict=True):
            try:
                processes = self._nvml.nvmlDeviceGetComputeRunningProcesses(handle)
            except Exception:  # one GPU failing to answer must not stop the others
                logger.debug("NVML query failed", exc_info=True)
                continue
            mine = [p for p in processes if p.pid == pid]
            if mine:
                num_gpus += 1
                memory_bytes += sum(int(p.usedGpuMemory or 0) for p in mine)
                models.add(name)
        model = models.pop() if len(models) == 1 else None
        return num_gpus, memory_bytes, model


class Sampler:
    """The shared background sampler. Use :func:`get_sampler`; read :attr:`latest`."""

    def __init__(self, period_ms: float) -> None:
        self.period_ms = period_ms
        self._readers = _ProcReaders()
        self._gpu = _GpuReader()
        self._stop = threading.Event()
        self._num_ticks = 0
        self._take_lock = threading.Lock()
        self._open_lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = False
        self._open_spans: deque[None] = deque()
        self._last_open_ns = time.monotonic_ns()
        self.latest: Sample = self._take(None)
        self._thread = threading.Thread(target=self._run, name="mentatlab-sampler", daemon=True)
        self._thread.start()

    def _take(self, previous: Sample | None, all_counters: bool = True) -> Sample:
        now_ns = time.monotonic_ns()
        rss_bytes = self._readers.rss_bytes()
        if previous is None or all_counters:
            bytes_in, bytes_out = self._readers.network_bytes()
            storage_write_bytes = self._readers.storage_write_bytes()
        else:
            bytes_in, bytes_out = previous.network_bytes_in, previous.network_bytes_out
            storage_write_bytes = previous.storage_write_bytes
        num_gpus: int | None = None
        gpu_memory_bytes: int | None = None
        gpu_model = previous.gpu_model if previous is not None else None
        if self._gpu.available:
            if previous is None or all_counters:
                num_gpus, gpu_memory_bytes, model_in_use = self._gpu.read()
                if num_gpus:
                    gpu_model = model_in_use  # None when models are mixed: never a guess
            else:
                num_gpus, gpu_memory_bytes = previous.num_gpus_in_use, previous.gpu_memory_bytes
        return Sample(
            time_ns=now_ns,
            rss_bytes=rss_bytes,
            memory_byte_ns=previous.memory_byte_ns_at(now_ns) if previous else 0,
            storage_write_bytes=storage_write_bytes,
            network_bytes_in=bytes_in,
            network_bytes_out=bytes_out,
            num_gpus_in_use=num_gpus,
            gpu_ns=previous.gpu_ns_at(now_ns) if previous else 0,
            gpu_memory_bytes=gpu_memory_bytes,
            gpu_model=gpu_model,
        )

    def refresh(self) -> Sample:
        """Take a sample of every counter now (at the end of spans longer than a period)."""
        with self._take_lock:
            sample = self._take(self.latest)
            self.latest = sample
            return sample

    def span_started(self) -> None:
        """Count an open span; wake the thread (with a fresh sample) if it was idle."""
        self._open_spans.append(None)  # deque append/pop/len are atomic: no lock per span
        if self._idle:
            with self._open_lock:
                if not self._idle:
                    return
                self._idle = False
            self.refresh()
            self._wake.set()

    def span_finished(self) -> None:
        """Count a closed span."""
        try:
            self._open_spans.pop()
        except IndexError:
            pass
        if not self._open_spans:
            self._last_open_ns = time.monotonic_ns()

    def _go_idle_if_unused(self) -> bool:
        with self._open_lock:
            if self._open_spans or time.monotonic_ns() - self._last_open_ns < _IDLE_AFTER_NS:
                return False
            self._idle = True
            self._wake.clear()
            if self._open_spans:  # a span started while we decided: it saw _idle False
                self._idle = False
                return False
            return True

    def _run(self) -> None:
        period_s = self.period_ms / 1000
        while not self._stop.wait(period_s):
            if self._go_idle_if_unused():
                self._wake.wait()
                continue
            self._num_ticks += 1
            try:
                with self._take_lock:
                    self.latest = self._take(
                        self.latest, self._num_ticks % _COUNTERS_EVERY_N_TICKS == 0)
            except Exception:  # a failed read must not kill the sampler; the next tick retries
                logger.debug("Resource sample failed", exc_info=True)

    def stop(self) -> None:
        """Stop the thread and close the files (idempotent)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)
        self._readers.close()


_lock = threading.Lock()
_sampler: Sampler | None = None


def get_sampler(period_ms: float = 50.0) -> Sampler:
    """The process's sampler, started on first use; restarted if the period changes."""
    global _sampler
    sampler = _sampler
    if sampler is not None and sampler.period_ms == period_ms:
        return sampler
    with _lock:
        if _sampler is None or _sampler.period_ms != period_ms:
            if _sampler is not None:
                _sampler.stop()
            _sampler = Sampler(period_ms)
        return _sampler


def _after_fork_in_child() -> None:
    # Threads do not survive fork and /proc/self fds still name the parent: start afresh.
    global _sampler
    _sampler = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
