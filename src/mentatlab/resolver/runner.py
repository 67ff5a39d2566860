"""Running resolver passes in the background: woken by commits, one thread, one leader.

:class:`ResolverLoop` owns a thread that runs :meth:`Resolver.run_pass` whenever it is
woken (:meth:`ResolverLoop.notify`, called after each commit on the embedded store) or
every ``idle_interval_s`` (a shared store, where other nodes commit too). Commits wake it
at most every ``min_gap_s``, so under load one pass takes many commits (a pass has a
fixed cost of a few statements); a reader waiting for the resolver
(:meth:`ResolverLoop.wait_through`) wakes it at once. With a
:class:`~mentatlab.storage.control.leader.LeaderLock`, only the process holding it runs
passes: the resolver must never run twice at once on one store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from mentatlab.resolver.resolver import ResolverState
from mentatlab.storage.control.leader import ACQUIRE_PERIOD_MAX_S, LeaderLock

__all__ = ["PassRunner", "ResolverLoop"]

_log = logging.getLogger(__name__)
_RETRY_AFTER_FAILURE_S = 1.0


class PassRunner(Protocol):
    """What the loop drives: the resolver, or the settle job (resolver/settle.py)."""

    @property
    def state(self) -> ResolverState:
        """The watermark (``through_ns``) reached so far."""
        ...

    def run_pass(self, through_ns: int) -> Any:
        """Do the work up to ``through_ns``; returns a report for ``on_pass``."""
        ...

    def flush_state(self) -> None:
        """Persist the watermark now."""
        ...

    def forget_state(self) -> None:
        """Re-read the watermark from the store on next use."""
        ...


class ResolverLoop:
    """A thread running resolver passes up to a watermark.

    Args:
        resolver: the store's resolver (or another :class:`PassRunner`).
        watermark: returns a stamp (ns) up to which every commit is visible, or None when
            it is not known yet; called before each pass, on the loop's thread.
        idle_interval_s: a pass runs at least this often (s) even without :meth:`notify`.
        min_gap_s: least time (s) from one pass to the next when only commits ask for it,
            so a stream of commits is resolved in a few large passes; a waiting reader
            does not wait for it.
        leader: the ``resolver`` job lock; None runs unconditionally (embedded store).
        on_pass: called with each pass's report (metrics).
        on_leadership: called with True/False when this process gains/loses the lock.
        name: the thread's name.
    """

    def __init__(self, resolver: PassRunner, watermark: Callable[[], int | None], *,
                 idle_interval_s: float = 1.0, min_gap_s: float = 1.0,
                 leader: LeaderLock | None = None,
                 on_pass: Callable[[Any], None] | None = None,
                 on_leadership: Callable[[bool], None] | None = None,
                 name: str = "mentatlab-resolver") -> None:
        self.resolver = resolver
        self._watermark = watermark
        self._idle_interval_s = idle_interval_s
        self._min_gap_s = min_gap_s
        self._leader = leader
        self._on_pass = on_pass
        self._on_leadership = on_leadership
        self._wake = threading.Event()
        self._urgent = threading.Event()
        self._stop = threading.Event()
        self._passed = threading.Condition()
        self.leading = leader is None
        self.num_failures = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def notify(self, *, urgent: bool = False) -> None:
        """Ask for a pass (thread-safe, cheap: called after every commit).

        Args:
            urgent: a reader is waiting: run it now rather than after ``min_gap_s``.
        """
        if urgent:
            self._urgent.set()
        self._wake.set()

    def wait_through(self, stamp_ns: int, timeout_s: float) -> bool:
        """Block until the resolver has passed ``stamp_ns`` (True) or ``timeout_s`` ran out."""
        deadline = time.monotonic() + timeout_s
        self.notify(urgent=True)
        with self._passed:
            while self.resolver.state.through_ns < stamp_ns:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self._passed.wait(remaining)
        return True

    def stop(self, wait_s: float = 30.0) -> None:
        """Stop after the running pass; persist the watermark; give up leadership."""
        self._stop.set()
        self._wake.set()
        self._urgent.set()
        if self._thread.is_alive():
            self._thread.join(wait_s)
        try:
            if self.leading:
                self.resolver.flush_state()
        except Exception:  # noqa: BLE001 — the next start redoes at most a few passes
            _log.warning("could not persist the resolver watermark at shutdown", exc_info=True)
        if self._leader is not None:
            self._leader.close()

    def _lead(self) -> bool:
        if self._leader is None:
            return True
        leading = self._leader.try_acquire()
        if leading != self.leading:
            self.leading = leading
            _log.info("%s: %s", self._thread.name,
                      "this node leads" if leading else "another node leads")
            if leading:  # another node may have moved the watermark meanwhile
                self.resolver.forget_state()
            if self._on_leadership is not None:
                self._on_leadership(leading)
        return leading

    def _run(self) -> None:
        last_pass_s = 0.0
        while not self._stop.is_set():
            self._wake.wait(self._idle_interval_s)
            # A stream of commits waits out the gap; a waiting reader cuts it short.
            self._urgent.wait(max(0.0, last_pass_s + self._min_gap_s - time.monotonic()))
            self._wake.clear()
            self._urgent.clear()
            if self._stop.is_set():
                return
            last_pass_s = time.monotonic()
            try:
                if not self._lead():
                    self._stop.wait(min(self._idle_interval_s, ACQUIRE_PERIOD_MAX_S))
                    continue
                through_ns = self._watermark()
                if through_ns is None:
                    continue
                report = self.resolver.run_pass(through_ns)
            except Exception:  # noqa: BLE001 — keep resolving; the next pass redoes the work
                self.num_failures += 1
                _log.exception("resolver pass failed; retrying in %s s", _RETRY_AFTER_FAILURE_S)
                self._stop.wait(_RETRY_AFTER_FAILURE_S)
                continue
            with self._passed:
                self._passed.notify_all()
            if self._on_pass is not None:
                self._on_pass(report)
