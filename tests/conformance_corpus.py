"""Where the shared conformance corpus is, for every test module that reads it.

The corpus (real span payloads and price cases from public test suites) lives in
``../shared/conformance`` beside the checkout, which CI provides; it is not copied into
the repo. ``MENTATLAB_CONFORMANCE_DIR`` points elsewhere.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

CONFORMANCE_DIR = Path(os.environ.get(
    "MENTATLAB_CONFORMANCE_DIR", Path(__file__).resolve().parents[2] / "shared" / "conformance"))


def require(sub: str = "") -> Path:
    """``CONFORMANCE_DIR / sub``; when it is missing, skips the calling module naming the
    folder looked for and how to provide it, except under ``CI``, which always has the
    corpus: there a missing folder fails."""
    folder = CONFORMANCE_DIR / sub if sub else CONFORMANCE_DIR
    if not folder.is_dir() and os.environ.get("CI"):
        pytest.fail(f"conformance corpus missing under CI: no folder {folder}")
    if not folder.is_dir():
        pytest.skip(f"conformance corpus missing: no folder {folder} (CI has ../shared beside "
                    "the checkout; set MENTATLAB_CONFORMANCE_DIR to run these here)",
                    allow_module_level=True)
    return folder


def payloads() -> list[Path]:
    """The corpus's span payload files (``otel-genai/*.json``), sorted; [] when missing,
    except under ``CI``, where a missing corpus fails (as :func:`require` does)."""
    found = sorted((CONFORMANCE_DIR / "otel-genai").glob("*.json"))
    if not found and os.environ.get("CI"):
        pytest.fail(f"conformance corpus missing under CI: no payloads in {CONFORMANCE_DIR}")
    return found


def _hex_ids_to_base64(node: Any) -> Any:
    """OTLP/JSON ids are hex; protobuf's JSON parser wants base64."""
    if isinstance(node, list):
        return [_hex_ids_to_base64(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("traceId", "spanId", "parentSpanId", "trace_id", "span_id",
                   "parent_span_id") and isinstance(value, str):
            if value:
                out[key] = base64.b64encode(bytes.fromhex(value)).decode()
        else:
            out[key] = _hex_ids_to_base64(value)
    return out


def protobuf_body(path: Path) -> bytes:
    """A corpus payload file's ``otlp`` request as OTLP protobuf bytes."""
    otlp = json.loads(path.read_text())["otlp"]
    msg = json_format.ParseDict(_hex_ids_to_base64(otlp), ExportTraceServiceRequest(),
                                ignore_unknown_fields=True)
    return bytes(msg.SerializeToString())
