"""Give back the pages of shared libraries that only start-up touched (Linux).

Loading chDB runs ClickHouse's static initialisers (every function, format and codec
registers itself), which reads ~170 MiB of its 555 MB library into the process; a serving
process then uses ~50–70 MiB of it (bench/RESULTS.md "Footprint (issue 18)"). Those pages
are clean copies of the file: ``madvise(MADV_DONTNEED)`` unmaps them, and a page touched
again is read back from the file (the page cache) on its next access, unchanged.

Only mappings that cannot differ from their file are released: a shared library's
read-only or executable private mappings without a single dirty or anonymous (copied on
write) page. Writable mappings, relocated read-only data (RELRO) and anything not backed
by a library file are left alone.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LibraryMapping", "clean_library_mappings", "release_startup_pages"]

_log = logging.getLogger(__name__)
_MADV_DONTNEED = 4
_SMAPS = Path("/proc/self/smaps")


@dataclass(frozen=True, slots=True)
class LibraryMapping:
    """One mapping of ``/proc/self/smaps``."""

    start: int
    """First address."""
    end: int
    """Address after the last byte."""
    perms: str
    """``r-xp``-style permissions."""
    path: str
    """The mapped file."""
    rss_kib: int
    """Resident, in KiB."""
    dirty_kib: int
    """Private and shared dirty pages, in KiB."""
    anonymous_kib: int
    """Pages copied on write (no longer the file's), in KiB."""


def _is_library(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name.endswith(".so") or ".so." in name


def clean_library_mappings(smaps: str | None = None) -> list[LibraryMapping]:
    """The mappings of shared libraries that hold nothing but clean file pages.

    Args:
        smaps: the text of ``/proc/<pid>/smaps``; None reads this process's.

    Returns:
        Read-only or executable private mappings of ``*.so`` files with resident pages and
        no dirty or anonymous page; [] where ``/proc`` has no ``smaps`` (not Linux).
    """
    if smaps is None:
        try:
            smaps = _SMAPS.read_text()
        except OSError:
            return []
    found: list[LibraryMapping] = []
    head: list[str] | None = None
    fields: dict[str, int] = {}

    def close() -> None:
        if head is None or len(head) < 6:
            return
        perms, path = head[1], " ".join(head[5:])
        if "w" in perms or not perms.endswith("p") or not _is_library(path):
            return
        dirty = fields.get("Private_Dirty", 0) + fields.get("Shared_Dirty", 0)
        anonymous = fields.get("Anonymous", 0)
        if fields.get("Rss", 0) and not dirty and not anonymous:
            start, end = (int(x, 16) for x in head[0].split("-"))
            found.append(LibraryMapping(start, end, perms, path, fields["Rss"], dirty,
                                        anonymous))

    for line in smaps.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0].endswith(":") and parts[0][0].isupper():
            if len(parts) >= 2 and parts[1].isdigit():
                fields[parts[0][:-1]] = int(parts[1])
            continue
        close()
        head, fields = parts, {}
    close()
    return found


def release_startup_pages() -> int:
    """Unmap the clean library pages of this process; they fault back in when used.

    Returns:
        KiB of resident library pages released (0 on a system without ``/proc/self/smaps``
        or ``madvise``).
    """
    mappings = clean_library_mappings()
    if not mappings or not sys.platform.startswith("linux"):
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    madvise = libc.madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    released = 0
    for m in mappings:
        if madvise(m.start, m.end - m.start, _MADV_DONTNEED) == 0:
            released += m.rss_kib
    _log.info("Released %s MiB of library pages touched at start-up", released // 1024)
    return released
