"""``mentatctl serve`` refuses a non-loopback address with authentication off, and says why."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mentatlab.cli.serve import is_loopback
from serve_process import free_port, start_serve, stop, wait_ready


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("LOCALHOST", True), (" localhost ", True),
    ("0.0.0.0", False), ("::", False), ("[::]", False), ("", False), ("10.0.0.1", False),
    ("192.168.1.20", False), ("fe80::1", False), ("example.com", False),
    ("localhost.example.com", False), ("mentat-host", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def run_serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "MENTATLAB_AUTH_REQUIRED"}
    return subprocess.run([sys.executable, "-m", "mentatlab.cli.main", "serve", *args],
                          env={**clean, **(env or {})}, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize(("args", "env"), [
    (["--host", "0.0.0.0"], {}),
    (["--host", "::"], {"MENTATLAB_AUTH_REQUIRED": "false"}),
    ([], {"MENTATLAB_HOST": "10.0.0.1"}),
])
def test_serve_refuses_a_non_loopback_address_with_auth_off(
        args: list[str], env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as taken:
        # The port is taken: had serve bound before checking, it would fail on that instead.
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = run_serve(*args, "--port", port, "--grpc-port", "0",
                         "--data-dir", str(tmp_path / "data"), env=env)
    message = " ".join(done.stderr.split())
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Refusing to serve" in message and "authentication off" in message, message
    assert "MENTATLAB_AUTH_REQUIRED=true" in message and "--insecure-no-auth" in message
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()  # stopped before opening anything


@pytest.mark.e2e
@pytest.mark.parametrize(("args", "env", "warned"), [
    (["--insecure-no-auth"], {}, True),
    ([], {"MENTATLAB_AUTH_REQUIRED": "true"}, False),
], ids=["insecure-no-auth", "auth-required"])
def test_serve_binds_every_address_with_auth_or_when_told(
        args: list[str], env: dict[str, str], warned: bool, tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "server.log"
    proc = start_serve(tmp_path / "data", port, log=log, args=["--host", "0.0.0.0", *args],
                       env={"MENTATLAB_AUTH_REQUIRED": "false", **env})
    try:
        wait_ready(proc, f"http://127.0.0.1:{port}", log)
    finally:
        stop(proc)
    output = log.read_text()
    assert f"0.0.0.0:{port}" in output
    assert ("authentication off (--insecure-no-auth)" in output) is warned, output
