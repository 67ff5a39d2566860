"""Where the shared conformance corpus is, for every test module that reads it.

The corpus (real span payloads and price cases from public test suites) lives in
``../shared/conformance`` beside the checkout, which CI provides; it is not copied into
the repo. ``MENTATLAB_CONFORMANCE_DIR`` points elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
