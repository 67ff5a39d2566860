"""Helpers and fixtures of the server tests, imported by conftest.py and the test modules."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from mentatlab.server.app import create_app
from mentatlab.settings import Settings, load_settings


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    return load_settings(data_dir=data_dir, grpc_port=overrides.pop("grpc_port", 0),
                         http_port=0, **overrides)


@pytest.fixture
def settings(_isolated_data_dir: Path) -> Settings:
    return make_settings(_isolated_data_dir)


@dataclass
class InProcess:
    app: FastAPI
    client: httpx.AsyncClient

    @property
    def state(self) -> Any:
        return self.app.state.mentat

    async def stored(self) -> Any:
        """The span store once every acknowledged span is in it: the API's read barrier.

        With the write-ahead log (on by default, decision 0022) a 2xx means "logged", and
        the insert follows within ``wal_insert_interval_s``: flush the writer (insert now),
        then wait for the resolver like an analytics read does.
        """
        return await settle(self.state)


async def settle(state: Any) -> Any:
    """Insert what ``state``'s writer acknowledged and wait for the resolver; the store."""
    assert await asyncio.to_thread(state.writer.flush, 60), "the writer did not flush in 60 s"
    if state.resolver is not None:
        assert await state.resolver.wait_resolved(), "the resolver did not catch up"
    return state.store


@contextlib.asynccontextmanager
async def open_in_process(settings: Settings) -> AsyncIterator[InProcess]:
    """The app with its lifespan running, and a client to it; use with ``async with``.

    A context manager rather than an async generator: a test failing inside the block
    still runs the lifespan's shutdown at once, so chDB (one embedded store per process)
    is closed before the next test opens its own.
    """
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield InProcess(app, c)


@pytest.fixture
async def app_client(settings: Settings) -> AsyncIterator[InProcess]:
    async with open_in_process(settings) as item:
        yield item


@dataclass
class LiveServer:
    url: str
    app: FastAPI
    server: uvicorn.Server

    @property
    def state(self) -> Any:
        return self.app.state.mentat

    def stored(self) -> Any:
        """The span store once every acknowledged span is in it (see InProcess.stored)."""
        loop = self.state.live._loop  # noqa: SLF001 — the server's event loop
        return asyncio.run_coroutine_threadsafe(settle(self.state), loop).result(90)


def run_live_server(settings: Settings) -> Iterator[LiveServer]:
    """uvicorn in a thread on 127.0.0.1, port 0 (the OS picks a free port)."""
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                            lifespan="on", ws="websockets-sansio")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("live server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", app, server)
    finally:
        server.should_exit = True
        thread.join(30)


def start_ingest_workers(live: LiveServer, timeout_s: float = 60) -> None:
    """Start the server's ingest workers now and wait until they serve.

    They otherwise start on the first OTLP/HTTP body (which then waits for them); a test
    that must know the worker path is taken starts them first.
    """
    ingestor = live.state.ingestor
    loop = live.state.live._loop  # noqa: SLF001 — the server's event loop
    asyncio.run_coroutine_threadsafe(ingestor.start(), loop).result(timeout_s)
    deadline = time.monotonic() + timeout_s
    while not ingestor._ready:  # noqa: SLF001 — no public flag
        assert time.monotonic() < deadline, "the ingest workers never started"
        time.sleep(0.05)


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    yield from run_live_server(settings)
