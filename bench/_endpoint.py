"""The ClickHouse test endpoint for benchmarks, optionally with TCP_NODELAY on its replies.

tests/clickhouse_endpoint.py answers with two socket writes (headers, then body) on a
socket with Nagle's algorithm on, so each reply's body waits for the client's delayed ACK
(~40 ms on Linux loopback): a ``SELECT 1`` takes ~44 ms over HTTP against ~0.7 ms in
chDB. That is an artefact of the test endpoint, not of ClickHouse (whose server sets
TCP_NODELAY). :func:`endpoint_process` with ``nodelay=True`` runs the same endpoint with
``disable_nagle_algorithm = True`` on its handler (this file run as a script), so a
benchmark can show the figures with and without it. The endpoint code itself is
unchanged and still in tests/.

Run as a script: ``python bench/_endpoint.py <folder> [port]`` (as the endpoint's own main).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

import clickhouse_endpoint  # noqa: E402
from clickhouse_endpoint import EndpointProcess  # noqa: E402


class NoDelayEndpointProcess(EndpointProcess):
    """:class:`EndpointProcess` whose child replies with TCP_NODELAY set."""

    def start(self, timeout_s: float = 60.0) -> EndpointProcess:
        """Start the child and wait (at most ``timeout_s`` s) until it listens.

        Raises:
            RuntimeError: the child did not report its port in time.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        with (self.path / "endpoint.log").open("w") as log:
            self._process = subprocess.Popen(
                [sys.executable, __file__, str(self.path / "chdb"), str(self.port)],
                stdout=subprocess.PIPE, stderr=log, text=True)
        assert self._process.stdout is not None
        deadline = time.monotonic() + timeout_s
        line = self._process.stdout.readline()  # "listening <host> <port>"
        if not line.startswith("listening ") or time.monotonic() > deadline:
            self.stop()
            raise RuntimeError(f"ClickHouse test endpoint did not start: {line!r}")
        _, self.host, port = line.split()
        self.port = int(port)
        return self


def endpoint_process(path: Path, *, nodelay: bool) -> EndpointProcess:
    """The test endpoint on folder ``path`` (not started), with or without TCP_NODELAY."""
    return NoDelayEndpointProcess(path) if nodelay else EndpointProcess(path)


if __name__ == "__main__":
    clickhouse_endpoint._Handler.disable_nagle_algorithm = True
    clickhouse_endpoint.main(sys.argv[1:])
