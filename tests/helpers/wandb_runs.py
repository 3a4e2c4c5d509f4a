"""Read back what an offline W&B run recorded: its history rows (from the run's ``.wandb`` file) and media.

The ``.wandb`` file is the LevelDB log format wandb writes (a 7-byte file header ``:W&B``, magic 0xBEE1,
version 0; then 32 KiB blocks of records, each with a 7-byte header: CRC-32, length, type FULL/FIRST/MIDDLE/
LAST), each record a ``wandb_internal_pb2.Record``. wandb 0.31 no longer ships a Python reader, so this is one.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from pathlib import Path
from typing import Any

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _chunks(data: bytes):
    """(type, payload) of every physical record after the file header, checking each CRC."""
    ident, magic, version = struct.unpack("<4sHB", data[:HEADER])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), f"not a W&B log: {data[:HEADER]!r}"
    i = HEADER
    while i + HEADER <= len(data):
        left = BLOCK - i % BLOCK
        if left < HEADER:  # block trailer: zero padding
            i += left
            continue
        checksum, length, kind = struct.unpack("<IHB", data[i : i + HEADER])
        if length == 0 and kind == 0:
            break  # preallocated, unwritten tail
        payload = data[i + HEADER : i + HEADER + length]
        assert zlib.crc32(bytes([kind]) + payload) & 0xFFFFFFFF == checksum, f"bad CRC at byte {i}"
        yield kind, payload
        i += HEADER + length


def records(path: Path) -> list[Any]:
    """Every ``Record`` of a run's ``.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2

    out, parts = [], []
    for kind, payload in _chunks(Path(path).read_bytes()):
        parts.append(payload)
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(parts))
            out.append(record)
            parts = []
    return out


def finished_records(run_dir: Path, timeout: float = 60.0) -> list[Any]:
    """The records of a run that has finished: ``wandb.finish()`` can return before wandb's service has
    written the run's last records, so wait (up to ``timeout`` seconds) for its ``exit`` record."""
    (log,) = Path(run_dir).glob("run-*.wandb")
    deadline = time.monotonic() + timeout
    while True:
        found = records(log)
        if any(r.WhichOneof("record_type") == "exit" for r in found):
            return found
        assert time.monotonic() < deadline, f"{log}: no exit record after {timeout} s (the run never finished)"
        time.sleep(0.2)


def history(run_dir: Path) -> list[dict[str, Any]]:
    """The finished run's history rows (``wandb.log`` calls) as ``{key: value}``, values decoded from JSON."""
    rows = []
    for record in finished_records(run_dir):
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                         for item in record.history.item})
    return rows


def offline_run(root: Path) -> Path:
    """The one offline run folder under ``root`` (searched recursively)."""
    runs = sorted(Path(root).rglob("offline-run-*"))
    assert len(runs) == 1, f"expected one offline W&B run under {root}, found {runs}"
    return runs[0]
