"""An on-disk overflow for the emit buffer: FIFO segment files with a size cap.

When the in-memory buffer is full (broker down or slow), events spill here instead
of being dropped; once spilling has started, every new event goes here too until
the sender has moved the backlog back, so order is kept. Segments left by a
crashed process are sent on the next start (at-least-once: a segment may be sent
again, the stores absorb it by event_id). Files are not fsynced per event: the
spill protects against broker outages, not against losing the host.
"""

from __future__ import annotations

import os
import shutil
import struct
import threading
from collections import deque
from pathlib import Path
from typing import BinaryIO, Final

from event_spine.producers.buffer import EmitBuffer, Item

_LEN: Final = struct.Struct(">I")
_SUFFIX: Final = ".spill"


class SpillQueue:
    """Length-prefixed (key, value, traceparent) records across numbered segment files."""

    def __init__(
        self, directory: Path, max_bytes: int, segment_bytes: int = 16 * 1024 * 1024
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)
        self._segments: deque[Path] = deque(sorted(directory.glob(f"*{_SUFFIX}")))
        self._next_number = int(self._segments[-1].stem) + 1 if self._segments else 0
        self._writer: BinaryIO | None = None
        self._reader: BinaryIO | None = None
        self.bytes = sum(p.stat().st_size for p in self._segments)
        self.pending = sum(_count(p) for p in self._segments)
        self.spilled_total = 0

    def append(self, item: Item) -> bool:
        """Write one record; False when the size cap would be passed (call with lock held)."""
        record = _encode(item)
        size = len(record)
        if self.bytes + size > self.max_bytes:
            return False
        writer = self._current_writer()
        writer.write(record)
        writer.flush()  # visible to the reader's handle; fsync is not the point here
        self.bytes += size
        self.pending += 1
        self.spilled_total += 1
        return True

    def _current_writer(self) -> BinaryIO:
        if self._writer is not None and self._writer.tell() < self.segment_bytes:
            return self._writer
        if self._writer is not None:
            self._writer.close()
        path = self.directory / f"{self._next_number:012d}{_SUFFIX}"
        self._next_number += 1
        self._segments.append(path)
        self._writer = path.open("ab")
        return self._writer

    def move_to(self, buffer: EmitBuffer, max_items: int) -> int:
        """Move up to ``max_items`` of the oldest records to the buffer's end."""
        with self.lock:
            moved = 0
            while moved < max_items and self.pending:
                item = self._read_one()
                if item is None:
                    break
                buffer.append_unbounded(item)
                # Only now: a reader of `pending` never sees the item in neither place.
                self.pending -= 1
                self.bytes -= _size(item)
                moved += 1
            return moved

    def _read_one(self) -> Item | None:
        while self._segments:
            if self._reader is None:
                self._reader = self._segments[0].open("rb")
            item = _read_record(self._reader)
            if item is not None:
                return item
            if self._segments[0] == self._writer_path():
                return None  # caught up with the writer
            # A finished segment (or the torn tail a crash left) is done.
            self._reader.close()
            self._reader = None
            os.unlink(self._segments.popleft())
        return None

    def _writer_path(self) -> Path | None:
        return Path(self._writer.name) if self._writer is not None else None

    def keep_with_prefix(self, items: list[Item]) -> int:
        """At close: ``items`` (older than the backlog) then the unread backlog, in order,
        rewritten as one segment for the next start. Returns how many records it holds."""
        with self.lock:
            tmp = self.directory / "rewrite.tmp"
            with tmp.open("wb") as out:
                for item in items:
                    out.write(_encode(item))
                for index, segment in enumerate(self._segments):
                    with segment.open("rb") as source:
                        if index == 0 and self._reader is not None:
                            source.seek(self._reader.tell())
                        shutil.copyfileobj(source, out)
                out.flush()
                os.fsync(out.fileno())
            self._close_handles()
            for segment in self._segments:
                segment.unlink(missing_ok=True)
            kept = self.directory / f"{0:012d}{_SUFFIX}"
            tmp.replace(kept)
            self._segments = deque([kept])
            self._next_number = 1
            self.pending = _count(kept)
            self.bytes = kept.stat().st_size
            return self.pending

    def _close_handles(self) -> None:
        for handle in (self._writer, self._reader):
            if handle is not None:
                handle.close()
        self._writer = self._reader = None

    def close(self) -> None:
        """Close file handles (segments stay for the next start)."""
        with self.lock:
            self._close_handles()


def _encode(item: Item) -> bytes:
    return b"".join(_LEN.pack(len(part)) + part for part in item)


def _size(item: Item) -> int:
    return 12 + len(item[0]) + len(item[1]) + len(item[2])


def _read_record(handle: BinaryIO) -> Item | None:
    """One record, or None at the end (or at a record torn by a crash mid-write)."""
    start = handle.tell()
    parts: list[bytes] = []
    for _ in range(3):
        header = handle.read(4)
        if len(header) < 4:
            break
        size = _LEN.unpack(header)[0]
        part = handle.read(size)
        if len(part) < size:
            break
        parts.append(part)
    if len(parts) == 3:
        return (parts[0], parts[1], parts[2])
    handle.seek(start)
    return None


def _count(path: Path) -> int:
    count = 0
    with path.open("rb") as handle:
        while _read_record(handle) is not None:
            count += 1
    return count
