"""Document ids, and the writes of one event packed into commits."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote


def _hashed(text: str, size: int) -> str:
    return hashlib.blake2b(text.encode(), digest_size=size).hexdigest()


def event_doc_id(scope: tuple[str, ...], event_id: str) -> str:
    """The document id of an event: a 4-hex spread prefix, then its identity
    ``<tenant>|<env>|<mode>|<project>|<event_id>`` (no id format holds ``|`` or ``/``)."""
    ident = "|".join((*scope, event_id))
    return f"{_hashed(ident, 2)}-{ident}"


def _part(event_ref: Any, index: int) -> Any:
    return event_ref.collection("parts").document(f"{index:03d}")


def _doc_id(text: str) -> str:
    # Document ids cannot contain "/" (stream ids can); quoting is injective.
    return quote(text, safe="")


@dataclass(slots=True)
class _EventDoc:
    """The writes of one event: its part documents, then the event document."""

    event_id: str
    ref: Any
    fields: dict[str, Any]
    parts: list[tuple[Any, dict[str, Any]]] = field(default_factory=list)
    size: int = 0

    @property
    def writes(self) -> int:
        return len(self.parts) + 1

    def add_to(self, batch: Any) -> None:
        # Parts first: on a store whose commits are not atomic (the emulator), a
        # reader that finds the event document finds its parts too.
        for ref, data in self.parts:
            batch.set(ref, data)
        batch.create(self.ref, self.fields)


def _pack(docs: Iterable[_EventDoc], max_writes: int, max_bytes: int) -> list[list[_EventDoc]]:
    """Group events into commits under the limits; one event never spans commits."""
    commits: list[list[_EventDoc]] = []
    current: list[_EventDoc] = []
    writes = size = 0
    for doc in docs:
        if current and (writes + doc.writes > max_writes or size + doc.size > max_bytes):
            commits.append(current)
            current, writes, size = [], 0, 0
        current.append(doc)
        writes += doc.writes
        size += doc.size
    if current:
        commits.append(current)
    return commits
