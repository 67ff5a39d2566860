"""Encode AWS event-stream messages (``application/vnd.amazon.eventstream``).

botocore ships only the decoder (``botocore.eventstream``); a fake Bedrock needs the
encoder. Wire format (AWS "Event stream encoding"): a 12-byte prelude (total length,
headers length, both big-endian u32, then the prelude's CRC32), the headers, the payload,
and the CRC32 of everything before it. Header values here are strings (type 7).
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

_STRING = 7


def _headers(headers: dict[str, str]) -> bytes:
    out = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack("!B", len(raw_name)) + raw_name
        out += struct.pack("!BH", _STRING, len(raw_value)) + raw_value
    return out


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message with string ``headers`` and raw ``payload`` bytes."""
    head = _headers(headers)
    total = 12 + len(head) + len(payload) + 4
    prelude = struct.pack("!II", total, len(head))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    body = prelude + head + payload
    return body + struct.pack("!I", zlib.crc32(body))


def encode_event(event_type: str, data: dict[str, Any]) -> bytes:
    """A Bedrock ConverseStream event: ``:event-type`` ``event_type`` with a JSON payload."""
    return encode_message({":event-type": event_type, ":content-type": "application/json",
                           ":message-type": "event"}, json.dumps(data).encode())
