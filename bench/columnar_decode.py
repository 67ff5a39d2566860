"""CPU per span of the OTLP decoders: decode.py's RawSpans against the columnar decoders.

Issue 18, columnar ingest, first stage. For 4 bodies of ``make_request(500, seed=i)``
(and again with ``content=True``: message content in the chat spans), the CPU time of
one thread (``time.thread_time``) per span, minimum of ``--repeat`` runs over all 4
bodies, of:

* ``decode.py``: ``decode_otlp_protobuf`` (upb parse, then a RawSpan per span);
* ``columns C``: ``decode_columns_c`` (the C extension, Arrow tables);
* ``columns py``: ``decode_columns_py`` (upb parse, Python lists, Arrow tables);
* ``C + adapter``: ``columns_to_raw_spans(decode_columns_c(body))`` (what today's
  pipeline would pay to read the columns as RawSpans).

Usage::

    PYTHONPATH=src .venv/bin/python bench/columnar_decode.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _otlp_payload import make_request  # noqa: E402

from mentatlab.receivers import columnar  # noqa: E402
from mentatlab.receivers.decode import decode_otlp_protobuf  # noqa: E402

NUM_SPANS = 500
NUM_BODIES = 4


def cpu_us_per_span(decode: Callable[[bytes], Any], bodies: list[bytes], repeat: int) -> float:
    decode(bodies[0])  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t0 = time.thread_time()
        for body in bodies:
            decode(body)
        best = min(best, time.thread_time() - t0)
    return best / (len(bodies) * NUM_SPANS) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    decoders: dict[str, Callable[[bytes], Any]] = {"decode.py": decode_otlp_protobuf}
    if columnar.HAVE_C_DECODER:
        decoders["columns C"] = columnar.decode_columns_c
    decoders["columns py"] = columnar.decode_columns_py
    if columnar.HAVE_C_DECODER:
        decoders["C + adapter"] = lambda b: columnar.columns_to_raw_spans(
            columnar.decode_columns_c(b))
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{NUM_BODIES} bodies x {NUM_SPANS} spans, min of {args.repeat}, thread CPU")
    print(f"{'payload':<10} {'bytes/span':>10} " + " ".join(f"{n:>12}" for n in decoders))
    for content in (False, True):
        bodies = [make_request(NUM_SPANS, seed=i, content=content) for i in range(NUM_BODIES)]
        size = sum(len(b) for b in bodies) / (NUM_BODIES * NUM_SPANS)
        row = [cpu_us_per_span(fn, bodies, args.repeat) for fn in decoders.values()]
        label = "content" if content else "plain"
        print(f"{label:<10} {size:>10.0f} " + " ".join(f"{us:>9.2f} us" for us in row))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
