"""The embedded (chDB) span store on a ClickHouse ``encrypted`` disk.

How chDB is given the disk (found by trying, chDB 4.4 / ClickHouse 26.9): the session's
connection string takes ClickHouse start-up arguments (``<folder>?config-file=<path>``),
and a ``storage_configuration`` in that config file may redefine the ``default`` storage
policy. The policy here holds one volume on an ``encrypted`` disk (AES-256-CTR) over a
local disk at ``<folder>/encrypted/``, so every MergeTree table created without a
``storage_policy`` setting, i.e. all of ours, writes its parts there. Nothing in the table
DDL names the disk or the key: ``metadata/*.sql`` files are the same as an unencrypted
store's. (An inline ``SETTINGS disk = disk(type = encrypted, key = ...)`` would write the
key into the table's ``.sql`` file; we do not use it.)

Where the key lives: the config file is an anonymous in-memory file (``memfd_create``),
passed as ``/proc/self/fd/<n>``; it is never on disk, and ClickHouse writes no
preprocessed copy of it (checked: no ``preprocessed_configs`` anywhere). The keys are the
HKDF-derived disk keys of :mod:`mentatlab.governance.encryption`, all listed (so parts
written with an older key still read) with the newest as ``current_key_id``. Temporary
data of big queries goes through the same encrypted disk (``tmp_policy``), and insert
batches are staged in memfds too instead of ``<folder>/_ingest`` files.

The marker ``<folder>/encryption.json`` records that the store is encrypted and the ids
(one-way HKDF derivations) of the keys that have encrypted it, so opening with no key or a
wrong key fails with a clear message before ClickHouse does.

Linux only (``os.memfd_create``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from mentatlab.errors import ConfigError
from mentatlab.governance.encryption import EncryptionKeys

__all__ = ["MARKER_FILE", "EncryptedDisk", "is_encrypted_store", "open_encrypted_disk",
           "refuse_unkeyed_open"]

MARKER_FILE = "encryption.json"
"""In the store folder: ``{"format": 1, "algorithm": ..., "key_ids": [...]}`` (no key)."""
_ALGORITHM = "AES_256_CTR"
_DISK_FOLDER = "encrypted"
_MIGRATION_HINT = ("create a new encrypted store and copy the spans into it (docs/governance.md,"
                   " \"Encryption at rest\")")


def is_encrypted_store(folder: Path) -> bool:
    """True when ``folder`` holds a span store created with an encryption key."""
    return (folder / MARKER_FILE).exists()


def _has_tables(folder: Path) -> bool:
    store = folder / "store"
    return store.is_dir() and any(store.iterdir())


def refuse_unkeyed_open(folder: Path) -> None:
    """Raise when an encrypted store is about to be opened without a key.

    Raises:
        ConfigError: ``folder`` is an encrypted store.
    """
    if is_encrypted_store(folder):
        raise ConfigError(
            f"The span store at {folder} is encrypted: set MENTATLAB_ENCRYPTION_KEY (or "
            "MENTATLAB_ENCRYPTION_KEY_FILE) to the key it was created with")


def _config_xml(folder: Path, keys: EncryptionKeys) -> str:
    disk_path = escape(str(folder / _DISK_FOLDER) + "/")
    key_lines = "".join(f'<key_hex id="{i}">{key}</key_hex>'
                        for i, key in enumerate(keys.disk_keys_hex()))
    volume = "<volumes><main><disk>mentatlab_encrypted</disk></main></volumes>"
    return (
        "<clickhouse><storage_configuration><disks>"
        f"<mentatlab_local><type>local</type><path>{disk_path}</path></mentatlab_local>"
        "<mentatlab_encrypted><type>encrypted</type><disk>mentatlab_local</disk>"
        f"<path>data/</path><algorithm>{_ALGORITHM}</algorithm>{key_lines}"
        "<current_key_id>0</current_key_id></mentatlab_encrypted>"
        f"</disks><policies><default>{volume}</default>"
        f"<mentatlab_tmp>{volume}</mentatlab_tmp></policies>"
        "</storage_configuration><tmp_policy>mentatlab_tmp</tmp_policy></clickhouse>")


@dataclass(slots=True)
class EncryptedDisk:
    """An open in-memory config for one chDB session; :meth:`close` after the session."""

    config_fd: int
    key_ids: tuple[str, ...]

    @property
    def connection_args(self) -> str:
        """The query string to append to the session's folder: ``?config-file=...``."""
        return f"?config-file=/proc/self/fd/{self.config_fd}"

    def close(self) -> None:
        """Close the config file (idempotent)."""
        if self.config_fd >= 0:
            os.close(self.config_fd)
            self.config_fd = -1


def _check_marker(folder: Path, keys: EncryptionKeys) -> list[str]:
    marker = folder / MARKER_FILE
    if not marker.exists():
        if _has_tables(folder):
            raise ConfigError(
                f"The span store at {folder} was created without encryption and an encryption "
                f"key is set: it cannot be encrypted in place; {_MIGRATION_HINT}, or unset the "
                "key for this store")
        return []
    try:
        recorded = json.loads(marker.read_text())
        known = [str(k) for k in recorded["key_ids"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"Unreadable {marker}: {exc}") from exc
    if not set(known) & set(keys.key_ids()):
        raise ConfigError(
            f"None of the configured encryption keys (ids {list(keys.key_ids())}) has "
            f"encrypted the span store at {folder} (its keys: {known}): a wrong key")
    return known


def open_encrypted_disk(folder: Path, keys: EncryptionKeys, *,
                        record_key: bool = True) -> EncryptedDisk:
    """Check the store's marker, record the newest key id in it, and build the config.

    Args:
        folder: the store folder (created by the caller).
        keys: the configured keys, newest first.
        record_key: add the newest key's id to the marker (False for a store opened only
            to be read, e.g. the source of a copy: nothing will be written with it).

    Raises:
        ConfigError: not Linux; an unencrypted store with tables; no configured key has
            encrypted this store.
    """
    if not hasattr(os, "memfd_create"):
        raise ConfigError("Encryption at rest of the embedded span store needs Linux "
                          "(memfd_create); use a ClickHouse server with encrypted disks")
    known = _check_marker(folder, keys)
    if record_key and keys.current_key_id not in known:
        body = {"format": 1, "algorithm": _ALGORITHM, "key_ids": [*known, keys.current_key_id]}
        tmp = folder / (MARKER_FILE + ".tmp")
        tmp.write_text(json.dumps(body, indent=1) + "\n")
        os.replace(tmp, folder / MARKER_FILE)
    (folder / _DISK_FOLDER).mkdir(exist_ok=True, mode=0o700)
    fd = os.memfd_create("mentatlab-chdb-config", os.MFD_CLOEXEC)
    try:
        os.write(fd, _config_xml(folder, keys).encode())
    except OSError:
        os.close(fd)
        raise
    return EncryptedDisk(fd, keys.key_ids())
