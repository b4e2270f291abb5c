"""`spine audit export`: a bundle an auditor verifies with the standard library alone.

Layout (docs/audit.md): ``manifest.json``, ``records.jsonl`` (one link per line,
the canonical record verbatim), ``anchors.jsonl``, ``keys.json`` (anchor public
keys, HMAC key ids: the secrets go out of band), ``README.md`` and
``verify_bundle.py`` (a copy of ``event_spine.audit.offline``).
"""

from __future__ import annotations

import base64
import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO

from event_spine.audit import offline
from event_spine.audit.chain import AUDIT_PREV_HASH, GENESIS, is_audit_event
from event_spine.audit.keys import AuditKeys
from event_spine.audit.verify import as_link, pages_with_columns
from event_spine.backends.seams import EventStore
from event_spine.errors import ConfigurationError
from event_spine.schemas.scope import Scope

_PAGE: Final = 500

README: Final = """# Audit export bundle

Verify it with Python 3.11+ and nothing else:

    python -I -S verify_bundle.py .                       # links and anchors
    python -I -S verify_bundle.py . --hmac-keys HMAC_KEYS.json  # also the HMACs

`records.jsonl` holds one audit record per line, in chain order: `canonical` is the
record exactly as hashed. For each record (`keyed` = its canonical metadata has
`audit_key_id`):

    unkeyed: audit_hash = sha256(audit_prev_hash || canonical)
    keyed:   audit_hash = sha256(audit_prev_hash || "\\n" || position || "\\n" || canonical)
             audit_mac  = HMAC-SHA256(key[audit_key_id], audit_hash)

and `audit_prev_hash` equals the previous record's `audit_hash` (the first one's is
`prev_hash` in `manifest.json`). Where the records cross a route switch (from one
store to another), `switches` in `manifest.json` gives the head the switch recorded
(position, head_hash, count): the record at that position must have exactly that
hash and count. `anchors.jsonl` holds Ed25519-signed statements of
the chain's head (position, head_hash, count); each names the previous anchor's
signature; the public keys are in `keys.json`. An anchor is due wherever
`count % every_events == 0` or `every_s` seconds of event time passed since the last
anchored record. The HMAC keys are not in the bundle: ask the operator for them
(JSON `{key_id: secret}`). Exit status: 0 valid, 1 broken (the first bad record or
anchor is named), 2 unreadable. Full description: docs/audit.md of event-spine.
"""


@dataclass(frozen=True, slots=True)
class Window:
    """The records exported: audit records with ``start <= ts <= end``, and between."""

    start: datetime
    end: datetime


async def export_bundle(
    store: EventStore,
    scope: Scope,
    stream_id: str,
    window: Window,
    anchors: list[dict[str, Any]],
    keys: AuditKeys,
    out: Path,
    *,
    history: list[Part] | None = None,
    switches: list[dict[str, Any]] | None = None,
) -> int:
    """Write the bundle into ``out`` (created, must be empty); the number of records.

    ``history``: the stores of the chain across route switches, oldest first, each
    with its ``(lo, hi]`` positions (``event_spine.audit.history``), and
    ``switches`` their links; without them, ``store`` alone.
    """
    prepare_out(out)
    parts = history if history is not None else [(store, (-1, None))]
    state = _Cursor()
    with (out / "records.jsonl").open("w", encoding="utf-8") as handle:
        for part_store, span in parts:
            await _export_part(part_store, (scope, stream_id), span, window, state, handle)
    counts = (state.count_before, state.written, state.last_position)
    crossed = [s for s in switches or [] if int(s["position"]) <= state.last_position]
    _write_rest(out, (scope, stream_id), window, (anchors, crossed), keys, counts, state.prev_hash)
    return state.written


Part = tuple[EventStore, tuple[int, int | None]]


@dataclass
class _Cursor:
    count_before: int = 0
    prev_hash: str = GENESIS
    last_position: int = -1
    written: int = 0


async def _export_part(
    store: EventStore,
    where: tuple[Scope, str],
    span: tuple[int, int | None],
    window: Window,
    state: _Cursor,
    handle: TextIO,
) -> None:
    (scope, stream_id), (lo, hi) = where, span
    async for page, columns in pages_with_columns(store, scope, stream_id):
        for event in page:
            if not is_audit_event(event.record) or event.record.ts > window.end:
                continue
            if event.position <= lo or (hi is not None and event.position > hi):
                continue
            if event.record.ts < window.start and state.written == 0:
                state.count_before += 1
                continue
            if state.written == 0:
                state.prev_hash = str(event.record.metadata.get(AUDIT_PREV_HASH, GENESIS))
            own = columns.get(event.event_id, {}) if columns is not None else None
            handle.write(json.dumps(as_link(event, own), ensure_ascii=False) + "\n")
            state.written, state.last_position = state.written + 1, event.position


def prepare_out(out: Path) -> None:
    """Create the bundle directory; refuse one that holds anything."""
    if out.exists() and any(out.iterdir()):
        raise ConfigurationError(f"--out: {out} exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)


def _write_rest(
    out: Path,
    where: tuple[Scope, str],
    window: Window,
    signed: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    keys: AuditKeys,
    counts: tuple[int, int, int],
    prev_hash: str,
) -> None:
    count_before, written, last_position = counts
    (scope, stream_id), (anchors, switches) = where, signed
    settings = getattr(keys, "settings", None)
    manifest = {
        "format": 1,
        "scope": list(scope.key()),
        "stream": stream_id,
        "from": window.start.isoformat(),
        "to": window.end.isoformat(),
        "count_before": count_before,
        "records": written,
        "prev_hash": prev_hash,
        "switches": switches,
        "exported_at": datetime.now(UTC).isoformat(),
        "anchoring": {
            "every_events": getattr(settings, "anchor_every_events", 100),
            "every_s": getattr(settings, "anchor_every_s", 3600.0),
            "expect_anchors": bool(anchors),
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    kept = [a for a in anchors if int(a["position"]) <= last_position]
    (out / "anchors.jsonl").write_text(
        "".join(json.dumps(a, sort_keys=True) + "\n" for a in kept), encoding="utf-8"
    )
    public = {k: base64.b64encode(v).decode() for k, v in keys.anchor_public_keys().items()}
    material = {"anchor_public_keys": public, "hmac_key_ids": sorted(keys.link_keys())}
    (out / "keys.json").write_text(json.dumps(material, indent=2) + "\n", encoding="utf-8")
    (out / "README.md").write_text(README, encoding="utf-8")
    shutil.copyfile(offline.__file__, out / "verify_bundle.py")
