"""Fixtures of the forwarding tests: the server helpers of tests/server and OTLP targets."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from forward_target import OtlpGrpcTarget, OtlpHttpTarget  # noqa: E402


@pytest.fixture
def http_target() -> Iterator[OtlpHttpTarget]:
    target = OtlpHttpTarget().start()
    yield target
    target.stop()


@pytest.fixture
def grpc_target() -> Iterator[OtlpGrpcTarget]:
    target = OtlpGrpcTarget().start()
    yield target
    target.stop()
