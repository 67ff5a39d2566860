"""Exporters: send what MentatLab received on to other backends (OTLP forwarding)."""

from __future__ import annotations

from mentatlab.exporters.otlp_forward import ForwardConfig, ForwardStats, OtlpForwarder
from mentatlab.exporters.otlp_payload import ForwardTarget, parse_forward_endpoint

__all__ = [
    "ForwardConfig",
    "ForwardStats",
    "ForwardTarget",
    "OtlpForwarder",
    "parse_forward_endpoint",
]
