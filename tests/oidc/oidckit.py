"""Helpers of the OIDC tests: a real OIDC provider (npm ``oidc-provider``,
tests/oidc/provider), a MentatLab server that signs people in with it, a scripted browser.

The provider's node_modules come from its lock file (``make oidc-provider``; the fixture
runs the same ``npm ci`` when they are missing or stale). The tests share one xdist group,
so one worker starts the pair once per module (conftest.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import selectors
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from mentatlab.server.app import create_app
from mentatlab.settings import Settings
from mentatlab.storage.control import ControlStore

PROVIDER_DIR = Path(__file__).resolve().parent / "provider"
CLIENT_ID = "mentatlab"
CLIENT_SECRET = "test-client-secret-" + "x" * 24
PASSWORD = "correct horse"


def ensure_node_modules() -> None:
    """``npm ci`` in the provider folder unless its node_modules match the lock file."""
    stamp = PROVIDER_DIR / "node_modules" / ".oidc-stamp"
    want = hashlib.sha256((PROVIDER_DIR / "package.json").read_bytes()
                          + (PROVIDER_DIR / "package-lock.json").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text().strip() == want:
        return
    npm = shutil.which("npm")
    assert npm, "npm is needed for the OIDC tests (Node 20+; see make oidc-provider)"
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                   cwd=PROVIDER_DIR, check=True, timeout=300)
    stamp.write_text(want)


@dataclass
class Provider:
    """A running provider: its issuer URL and the users file it reads at every sign-in."""

    issuer: str
    users_file: Path
    process: subprocess.Popen[bytes]

    def set_user(self, login: str, claims: dict[str, Any], **extra: Any) -> None:
        """Add or change a person (claims: email, name, groups...; extra: id_token mode)."""
        users = json.loads(self.users_file.read_text())
        users[login] = {"password": PASSWORD, "claims": claims, **extra}
        self.users_file.write_text(json.dumps(users))


PROVIDER_START_S = 60.0
"""Longest wait for the provider's issuer line, per start (it takes ~1 s)."""
PROVIDER_START_ATTEMPTS = 3


def start_provider(folder: Path, redirect_uri: str) -> Provider:
    """Start ``node server.mjs`` with one client (MentatLab) and no users yet."""
    ensure_node_modules()
    folder.mkdir(parents=True, exist_ok=True)
    users_file = folder / "users.json"
    users_file.write_text("{}")
    config = folder / "provider.json"
    config.write_text(json.dumps({
        "clients": [{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                     "redirect_uris": [redirect_uri]}],
        "users_file": str(users_file)}))
    for attempt in range(1, PROVIDER_START_ATTEMPTS + 1):
        log = (folder / "provider.log").open("wb")
        process = subprocess.Popen(["node", str(PROVIDER_DIR / "server.mjs"), str(config)],
                                   stdout=subprocess.PIPE, stderr=log, cwd=PROVIDER_DIR)
        assert process.stdout is not None
        with selectors.DefaultSelector() as waiter:  # epoll: a busy worker's fds pass 1024
            waiter.register(process.stdout, selectors.EVENT_READ)
            ready = waiter.select(PROVIDER_START_S)
        line = process.stdout.readline() if ready else b""
        if line:
            return Provider(json.loads(line)["issuer"], users_file, process)
        # Once (CI, 2026-12-07) node sat in its module loading with no socket for 30 min:
        # end it and start again, rather than hang the run.
        process.kill()
        process.wait(10)
        print(f"OIDC provider start {attempt} gave no issuer within {PROVIDER_START_S} s: "
              f"{(folder / 'provider.log').read_text()}")
    raise AssertionError(f"provider did not start: {(folder / 'provider.log').read_text()}")


@dataclass
class Stack:
    """The provider and a MentatLab server configured to sign in with it."""

    provider: Provider
    url: str
    control: ControlStore
    settings: Settings

    def browser(self) -> httpx.Client:
        """A fresh cookie jar: one person's browser."""
        return httpx.Client(timeout=30)


def serve(settings: Settings, port: int) -> Iterator[tuple[str, ControlStore]]:
    """uvicorn in a thread on 127.0.0.1:``port``; yields (base URL, control store)."""
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", app.state.mentat.control
    finally:
        server.should_exit = True
        thread.join(30)


def sign_in(browser: httpx.Client, stack: Stack, login: str, *,
            params: dict[str, str] | None = None,
            rewrite: Callable[[httpx.URL], httpx.URL] | None = None) -> httpx.Response:
    """Drive a sign-in as a browser would: MentatLab → provider login and consent forms →
    MentatLab's callback (its URL passed through ``rewrite`` first); returns the callback's
    answer (not followed)."""
    response = browser.get(f"{stack.url}/auth/login", params=params or {})
    for _ in range(20):
        if response.is_redirect:
            target = response.url.join(response.headers["location"])
            if str(target).startswith(f"{stack.url}/auth/callback"):
                return browser.get(rewrite(target) if rewrite else target)
            response = browser.get(target)
            continue
        action = re.search(r'<form method="post" action="([^"]+)"', response.text)
        assert action, f"{response.status_code} {response.url}: {response.text[:500]}"
        form = {"login": login, "password": PASSWORD} if action[1].endswith("/login") else {}
        response = browser.post(response.url.join(action[1]), data=form)
    raise AssertionError("sign-in did not come back to MentatLab in 20 steps")
