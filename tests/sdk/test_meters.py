"""Metering accuracy against ground truth the kernel keeps independently of the SDK."""

from __future__ import annotations

import asyncio
import mmap
import os
import socket
import threading
import time
from pathlib import Path

import psutil
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import mentatlab

CPU = "mentat.resource.cpu_core_seconds"
MEMORY = "mentat.resource.memory_gb_seconds"
GIB = 2**30


def schedstat_ns() -> int:
    """CPU time of the calling thread per the scheduler (/proc/thread-self/schedstat)."""
    time.sleep(0.002)  # a context switch makes the kernel fold the running slice in
    return int(Path("/proc/thread-self/schedstat").read_text().split()[0])


def burn_cpu(duration_s: float) -> None:
    end = time.thread_time() + duration_s
    x = 0
    while time.thread_time() < end:
        x += 1


def attrs(exporter: InMemorySpanExporter, name: str) -> dict[str, object]:
    [span] = [s for s in exporter.get_finished_spans() if s.name == name]
    return dict(span.attributes or {})


def test_sync_cpu_matches_kernel_accounting_within_1_percent(
        span_exporter: InMemorySpanExporter) -> None:
    @mentatlab.traced(name="burn")
    def burn() -> None:
        burn_cpu(0.4)

    before_ns = schedstat_ns()
    burn()
    kernel_s = (schedstat_ns() - before_ns) / 1e9
    metered_s = attrs(span_exporter, "burn")[CPU]
    assert isinstance(metered_s, float)
    assert abs(metered_s - kernel_s) <= 0.01 * kernel_s, (metered_s, kernel_s)


def test_sleeping_span_uses_no_cpu(span_exporter: InMemorySpanExporter) -> None:
    with mentatlab.span("sleep"):
        time.sleep(0.05)
    cpu = attrs(span_exporter, "sleep")[CPU]
    assert isinstance(cpu, float) and cpu < 0.005


async def test_async_cpu_counts_own_steps_not_interleaved_tasks(
        span_exporter: InMemorySpanExporter) -> None:
    own_ns = 0
    other_ns = 0

    @mentatlab.traced(name="mine")
    async def mine() -> None:
        nonlocal own_ns
        for _ in range(10):
            start = time.thread_time_ns()
            burn_cpu(0.03)
            own_ns += time.thread_time_ns() - start
            await asyncio.sleep(0)

    async def other() -> None:
        nonlocal other_ns
        for _ in range(10):
            start = time.thread_time_ns()
            burn_cpu(0.03)
            other_ns += time.thread_time_ns() - start
            await asyncio.sleep(0)

    before_ns = schedstat_ns()
    await asyncio.gather(mine(), other())
    total_s = (schedstat_ns() - before_ns) / 1e9
    metered = attrs(span_exporter, "mine")[CPU]
    assert isinstance(metered, float)
    own_s, other_s = own_ns / 1e9, other_ns / 1e9
    assert total_s >= own_s + other_s  # the loop really interleaved both on this thread
    assert abs(metered - own_s) <= 0.01 * own_s, (metered, own_s, other_s)


async def test_async_span_block_meters_its_task_only(span_exporter: InMemorySpanExporter) -> None:
    async def noisy() -> None:
        for _ in range(5):
            burn_cpu(0.01)
            await asyncio.sleep(0)

    async def quiet() -> None:
        with mentatlab.span("quiet"):
            for _ in range(5):
                await asyncio.sleep(0)

    await asyncio.gather(noisy(), quiet())
    cpu = attrs(span_exporter, "quiet")[CPU]
    assert isinstance(cpu, float) and cpu < 0.01, cpu


def test_parent_reports_exclusive_cpu(span_exporter: InMemorySpanExporter) -> None:
    with mentatlab.span("parent"):
        burn_cpu(0.05)
        with mentatlab.span("child"):
            burn_cpu(0.1)
    parent, child = attrs(span_exporter, "parent")[CPU], attrs(span_exporter, "child")[CPU]
    assert isinstance(parent, float) and isinstance(child, float)
    assert abs(child - 0.1) < 0.005 and abs(parent - 0.05) < 0.005, (parent, child)


def test_memory_gb_seconds_within_10_percent(span_exporter: InMemorySpanExporter) -> None:
    extra_bytes = 256 * 2**20
    process = psutil.Process()
    time.sleep(0.05)
    with mentatlab.span("hold") as span:
        baseline_bytes = process.memory_info().rss
        t0 = time.monotonic()
        block = mmap.mmap(-1, extra_bytes)  # anonymous map: not resident until touched
        with open("/dev/zero", "rb", buffering=0) as zero:
            # the kernel touches every page, without holding the GIL the sampler needs
            assert zero.readinto(block) == extra_bytes
        t1 = time.monotonic()
        time.sleep(1.5)
        t2 = time.monotonic()
        block.close()
    readable = [s for s in span_exporter.get_finished_spans() if s.name == "hold"][0]
    assert readable.end_time is not None and readable.start_time is not None
    duration_s = (readable.end_time - readable.start_time) / 1e9
    held_s = t2 - (t0 + t1) / 2  # ramp while filling counts half
    expected = (baseline_bytes * duration_s + extra_bytes * held_s) / GIB
    metered = attrs(span_exporter, "hold")[MEMORY]
    assert isinstance(metered, float)
    assert abs(metered - expected) <= 0.10 * expected, (metered, expected)
    extra_metered = metered - baseline_bytes * duration_s / GIB
    assert abs(extra_metered - extra_bytes * held_s / GIB) <= 0.10 * extra_bytes * held_s / GIB
    assert span is not None


def test_storage_bytes_written(span_exporter: InMemorySpanExporter, tmp_path: Path) -> None:
    payload = os.urandom(4 * 2**20)
    with mentatlab.span("write"):
        fd = os.open(tmp_path / "blob", os.O_WRONLY | os.O_CREAT)
        os.write(fd, payload)
        os.fsync(fd)
        os.close(fd)
        time.sleep(0.06)  # longer than one sampler period: the end takes a fresh sample
    written = attrs(span_exporter, "write")["mentat.resource.storage_bytes"]
    assert isinstance(written, int)
    assert len(payload) <= written <= len(payload) + 2**20, written


def test_network_bytes_over_loopback(span_exporter: InMemorySpanExporter) -> None:
    num_bytes = 2 * 2**20
    server = socket.create_server(("127.0.0.1", 0))
    received = 0

    def sink() -> None:
        nonlocal received
        conn, _ = server.accept()
        with conn:
            while received < num_bytes:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                received += len(chunk)
            conn.sendall(b"k")

    thread = threading.Thread(target=sink)
    thread.start()
    with mentatlab.span("send"):
        with socket.create_connection(server.getsockname()) as client:
            client.sendall(os.urandom(num_bytes))
            assert client.recv(1) == b"k"
        time.sleep(0.06)
    thread.join()
    server.close()
    attributes = attrs(span_exporter, "send")
    bytes_out = attributes["mentat.resource.network_bytes_out"]
    bytes_in = attributes["mentat.resource.network_bytes_in"]
    assert isinstance(bytes_out, int) and isinstance(bytes_in, int)
    # loopback: the bytes leave and arrive on the same interface of this namespace
    assert bytes_out >= num_bytes and bytes_in >= num_bytes, (bytes_out, bytes_in)


def test_gpu_not_reported_without_nvml(span_exporter: InMemorySpanExporter) -> None:
    with mentatlab.span("cpu-only"):
        pass
    attributes = attrs(span_exporter, "cpu-only")
    try:
        import pynvml  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        assert "mentat.resource.gpu_seconds" not in attributes
    else:
        assert "mentat.resource.gpu_seconds" in attributes


def test_child_in_another_thread_does_not_reduce_parent_cpu(
        span_exporter: InMemorySpanExporter) -> None:
    def child() -> None:
        with mentatlab.span("thread-child"):
            burn_cpu(0.1)

    with mentatlab.span("thread-parent"):
        burn_cpu(0.05)
        worker = threading.Thread(target=mentatlab.wrap_context(child))
        worker.start()
        worker.join()
    parent = attrs(span_exporter, "thread-parent")[CPU]
    assert isinstance(parent, float) and abs(parent - 0.05) < 0.005, parent


def test_forked_child_meters_with_its_own_sampler(span_exporter: InMemorySpanExporter) -> None:
    from mentatlab.sdk import configure

    with mentatlab.span("before-fork"):
        pass
    parent_sampler = configure.get_state().sampler  # type: ignore[union-attr]
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report its sampler's view of its own memory, then exit at once
        os.close(read_fd)
        state = configure.get_state()
        ok = state is not None and state.sampler is not None and state.sampler is not parent_sampler
        with mentatlab.span("in-child"):
            time.sleep(0.12)
        memory = state.sampler.latest.rss_bytes if ok and state.sampler else 0
        os.write(write_fd, f"{ok} {memory}".encode())
        os._exit(0)
    os.close(write_fd)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read_fd) as pipe:
        ok, memory = pipe.read().split()
    assert status == 0 and ok == "True" and int(memory) > 0
