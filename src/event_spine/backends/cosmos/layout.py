"""Item layout: event items (inline or compressed bodies), batch sizing, row ids."""

from __future__ import annotations

import base64
import zlib
from typing import Any, Final

from event_spine.backends.base import event_body, record_from_json
from event_spine.errors import StorePermanentError
from event_spine.schemas.scope import Scope
from event_spine.schemas.wire import StoredEvent

Item = dict[str, Any]

_CURSOR_ID: Final = "_cursor"
_BATCH_MAX_OPS: Final = 100
# Estimated request bytes per batch; the service limit is 2 MB.
_BATCH_MAX_BYTES: Final = 1_500_000
_INLINE_BODY_MAX: Final = 256 * 1024
_MAX_POSITION: Final = 2**53


def _indexing(*excluded: str) -> dict[str, Any]:
    """Index every path but the big or never-filtered ones."""
    paths = [{"path": path} for path in (*excluded, '/"_etag"/?')]
    return {"indexingMode": "consistent", "includedPaths": [{"path": "/*"}], "excludedPaths": paths}


def _event_item(pk: str, event: StoredEvent) -> Item:
    if not 0 <= event.position < _MAX_POSITION:
        raise StorePermanentError(
            f"Cosmos store: position {event.position} of event {event.event_id!r} is outside"
            f" [0, 2**53): Cosmos numbers are doubles."
        )
    raw = event_body(event)
    item: Item = {"id": event.record.event_id, "pk": pk, "position": event.position}
    if len(raw) <= _INLINE_BODY_MAX:
        item["body"] = raw.decode()
    else:
        item["bodyz"] = base64.b64encode(zlib.compress(raw, 6)).decode("ascii")
    return item


def _event_from(item: Item) -> StoredEvent:
    body = item.get("bodyz")
    raw: bytes | str = zlib.decompress(base64.b64decode(body)) if body else item["body"]
    return StoredEvent(record_from_json(raw), int(item["position"]))


def _chunks(items: list[Item]) -> list[list[Item]]:
    """Split into transactional batches: at most 100 ops and ~1.5 MB each."""
    chunks: list[list[Item]] = []
    current: list[Item] = []
    size = 0
    for item in items:
        # Upper bound of the request bytes: the SDK escapes non-ASCII (up to 3x).
        body = item.get("bodyz") or item["body"]
        item_size = len(body) + 512 if "bodyz" in item else 3 * len(body.encode()) + 512
        if current and (len(current) >= _BATCH_MAX_OPS or size + item_size > _BATCH_MAX_BYTES):
            chunks.append(current)
            current, size = [], 0
        current.append(item)
        size += item_size
    if current:
        chunks.append(current)
    return chunks


def _row_pk(scope: Scope, table: str) -> str:
    return "|".join((*scope.key(), table))


def _row_id(key: str) -> str:
    # Keys may contain "/", which ids forbid; base64url is bounded (512 -> 683 chars).
    return base64.urlsafe_b64encode(key.encode()).decode("ascii").rstrip("=")
