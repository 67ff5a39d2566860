"""Keep SDK failures out of the user's program.

Every piece of SDK machinery that runs inside user code (span start and end, meters,
attribute helpers, propagation) runs under :func:`handle_internal_errors`: an SDK bug is
logged and counted, never raised into the host program. Under pytest (detected by the
``PYTEST_CURRENT_TEST`` environment variable pytest sets while a test runs) the error is
re-raised so SDK bugs fail our tests instead of hiding. The pattern follows Logfire's
``handle_internal_errors`` and Sentry's ``capture_internal_exceptions``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["handle_internal_errors", "log_internal_error", "num_internal_errors"]

logger = logging.getLogger("mentatlab.sdk")

_num_internal_errors = 0


def num_internal_errors() -> int:
    """Count of SDK-internal errors swallowed in this process since start."""
    return _num_internal_errors


def log_internal_error() -> None:
    """Log the exception being handled as an SDK-internal error, and count it.

    Call from an ``except`` block.

    Raises:
        BaseException: the exception being handled, re-raised when running under pytest.
    """
    global _num_internal_errors
    _num_internal_errors += 1
    if "PYTEST_CURRENT_TEST" in os.environ:
        raise
    logger.exception("Internal error in the MentatLab SDK; your program is unaffected")


@contextmanager
def handle_internal_errors() -> Iterator[None]:
    """Run a block of SDK machinery; log and swallow any ``Exception`` it raises.

    Raises:
        Exception: the block's exception, only when running under pytest.
    """
    try:
        yield
    except Exception:
        log_internal_error()
