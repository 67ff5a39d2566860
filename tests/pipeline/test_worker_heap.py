"""The ingest processes freeze what start-up built out of the garbage collector's walks
(:func:`mentatlab.pipeline.workers.freeze_heap`), and still collect what comes later."""

from __future__ import annotations

import os
import subprocess
import sys

_PROBE = """
import gc, weakref
from mentatlab.pipeline.workers import freeze_heap
kept = [[] for _ in range(5000)]
before = gc.get_freeze_count()
freeze_heap()
frozen = gc.get_freeze_count()
more = [[] for _ in range(5000)]
freeze_heap()  # once per process: a second call freezes nothing new
again = gc.get_freeze_count()
class Node: pass
a, b = Node(), Node()
a.other, b.other = b, a  # a cycle made after the freeze
ref = weakref.ref(a)
del a, b
gc.collect()
print(before, frozen, again, ref() is None)
"""


def test_freeze_heap_freezes_start_up_once_and_later_cycles_are_collected() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], env=dict(os.environ),
                         capture_output=True, text=True, check=True, timeout=120)
    before, frozen, again, collected = out.stdout.split()
    assert int(before) == 0
    assert int(frozen) > 5000, "start-up objects are frozen"
    assert int(again) == int(frozen)
    assert collected == "True", "a cycle made after the freeze is still collected"


def test_freeze_heap_turns_the_collector_back_on_after_a_start_up_without_it() -> None:
    # `mentatctl serve` turns the collector off for its start-up (cli/serve.py); the
    # lifespan's freeze_heap is where it comes back on, on every call
    probe = ("import gc; gc.disable()\n"
             "from mentatlab.pipeline.workers import freeze_heap\n"
             "freeze_heap(); first = gc.isenabled(); gc.disable()\n"
             "freeze_heap(); print(first, gc.isenabled())\n")
    out = subprocess.run([sys.executable, "-c", probe], env=dict(os.environ),
                         capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["True", "True"]
