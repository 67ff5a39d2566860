"""Node watermarks in the control store: where the resolver may read up to, across nodes.

Every server process sharing a span store stamps its commits with its own clock. Each
publishes here, several times a second, a stamp up to which all its commits are visible
(:meth:`~mentatlab.storage.writer.SpanWriter.committed_through_ns`). The resolver on the
elected node reads the smallest live one: every commit of every node stamped at or below it
is visible, whatever the nodes' clocks say. A node that stopped publishing for
``max_age_s`` is left out (it is dead or cut off; a cut-off node that later commits spans
stamped below the resolver's watermark has them resolved only when their trace next
changes — docs/decisions/0004-attribution-and-aggregates.md).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from mentatlab.storage.control.models import NodeWatermark, utc_now

__all__ = ["NodeWatermarks"]


class NodeWatermarks:
    """Publish and read node watermarks (through :attr:`ControlStore.watermarks`)."""

    def __init__(self, session: Callable[[], AbstractContextManager[Session]]) -> None:
        self._session = session

    def publish(self, node_id: str, committed_through_ns: int) -> None:
        """Record that every commit of ``node_id`` stamped up to the given ns is visible.

        Raises:
            StoreError: the control store failed.
        """
        with self._session() as session:
            row = session.get(NodeWatermark, node_id)
            if row is None:
                session.add(NodeWatermark(node_id=node_id,
                                          committed_through_ns=committed_through_ns,
                                          heartbeat_at=utc_now()))
            else:
                row.committed_through_ns = max(row.committed_through_ns, committed_through_ns)
                row.heartbeat_at = utc_now()

    def remove(self, node_id: str) -> None:
        """Forget a node (at its clean shutdown: it commits nothing more).

        Raises:
            StoreError: the control store failed.
        """
        with self._session() as session:
            session.execute(delete(NodeWatermark).where(NodeWatermark.node_id == node_id))

    def min_live(self, max_age_s: float) -> int | None:
        """The smallest watermark of the nodes heard from in the last ``max_age_s`` s.

        Returns:
            ns since the epoch, or None when no node is live.

        Raises:
            StoreError: the control store failed.
        """
        since = utc_now() - timedelta(seconds=max_age_s)
        with self._session() as session:
            value = session.scalar(select(func.min(NodeWatermark.committed_through_ns))
                                   .where(NodeWatermark.heartbeat_at >= since))
            return None if value is None else int(value)
