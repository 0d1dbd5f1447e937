"""Reading an offline W&B run back from its files, for tests: the records of ``run-<id>.wandb`` and the run tables.

wandb >= 0.2x writes the ``.wandb`` file from its Go core and ships no Python reader, so this reads the format
itself: a 7-byte header (``:W&B``, magic, version), then LevelDB-log blocks of 32 KiB whose chunks (7-byte header:
CRC, length, type FULL / FIRST / MIDDLE / LAST) carry serialized ``wandb.proto.wandb_internal_pb2.Record`` messages.
A logged ``wandb.Table`` with media is a ``run_table`` artifact: its manifest maps ``<key>.table.json`` and every
``media/images/*.png`` to the staged local files that ``wandb sync`` uploads.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[Any]:
    """Every record of a ``.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path}: not a W&B transaction log"
    pos, buffer = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # block trailer padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if length == 0 and kind == 0:  # zero padding to the end of the block
            pos += left
            continue
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        buffer = chunk if kind in (FULL, FIRST) else buffer + chunk
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(buffer)
            yield record


def finished(run_dir: Path, timeout: float = 60.0) -> Path:
    """The run's ``.wandb`` file once its ``exit`` record is written: ``wandb.finish()`` can return while the wandb
    service is still writing the last records."""
    deadline = time.monotonic() + timeout
    while True:
        logs = list(run_dir.glob("run-*.wandb"))
        if logs and any(r.WhichOneof("record_type") == "exit" for r in records(logs[0])):
            return logs[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"{run_dir}: no finished run-*.wandb after {timeout:.0f} s")
        time.sleep(0.2)


def run_tables(run_dir: Path) -> dict[str, tuple[dict[str, Any], dict[str, Path]]]:
    """Artifact name -> (the table JSON, manifest path -> local file) of every ``run_table`` artifact of the run."""
    log = finished(run_dir)
    tables = {}
    for record in records(log):
        if record.WhichOneof("record_type") != "artifact" or record.artifact.type != "run_table":
            continue
        files = {entry.path: Path(entry.local_path) for entry in record.artifact.manifest.contents}
        (table_json,) = [p for name, p in files.items() if name.endswith(".table.json")]
        tables[record.artifact.name] = (json.loads(table_json.read_text()), files)
    return tables


def history_values(run_dir: Path) -> list[dict[str, Any]]:
    """Each history row as ``{"a/b": value}`` (nested keys joined by ``/``, values decoded from JSON)."""
    log = finished(run_dir)
    rows = []
    for record in records(log):
        if record.WhichOneof("record_type") == "history":
            items = record.history.item
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items})
    return rows
