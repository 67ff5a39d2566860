"""The disk scan the redaction and encryption tests rely on finds what a store holds."""

from __future__ import annotations

import sys
from pathlib import Path

from disk_scan import decompressed_blocks, find_values

from mentatlab.storage.chdb_store import ChdbSpanStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "storage"))
from spanfactory import make_table  # noqa: E402


def test_a_value_in_a_compressed_attribute_column_is_found(chdb_store: ChdbSpanStore,
                                                           tmp_path: Path) -> None:
    stored = "dana.scully@fbi.example"
    chdb_store.append_batch(make_table(range(200), attributes=f'{{"note": "{stored}"}}'))
    chdb_store.close()

    found = find_values(tmp_path / "spans", [stored, "never-ingested-value@nowhere.example"])

    assert list(found) == [stored]
    assert any(path.suffix == ".bin" for path in found[stored])


def test_blocks_are_decompressed(chdb_store: ChdbSpanStore, tmp_path: Path) -> None:
    chdb_store.append_batch(make_table(range(50)))
    chdb_store.close()
    bins = [p for p in (tmp_path / "spans").rglob("*.bin") if p.stat().st_size > 0]

    payloads = [b"".join(decompressed_blocks(p.read_bytes())) for p in bins]

    assert bins and sum(len(p) for p in payloads) > sum(p.stat().st_size for p in bins) / 2
    assert list(decompressed_blocks(b"not a compressed column file at all, just text")) == []
