"""Fixtures of the ingest-throughput tests: OTLP bodies shaped like the benchmark's."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from _otlp_payload import make_request  # noqa: E402


@pytest.fixture
def otlp_body() -> bytes:
    """A 200-span OTLP protobuf body (GenAI chat spans over four models)."""
    return make_request(200, seed=7)
