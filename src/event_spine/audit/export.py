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
from typing import Any, Final

from event_spine.audit import offline
from event_spine.audit.chain import AUDIT_PREV_HASH, GENESIS, is_audit_event
from event_spine.audit.keys import AuditKeys
from event_spine.audit.verify import as_link
from event_spine.backends.base import EventStore
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
`prev_hash` in `manifest.json`). `anchors.jsonl` holds Ed25519-signed statements of
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
) -> int:
    """Write the bundle into ``out`` (created, must be empty); the number of records."""
    prepare_out(out)
    count_before, prev_hash, last_position, written = 0, GENESIS, -1, 0
    with (out / "records.jsonl").open("w", encoding="utf-8") as handle:
        after: str | None = None
        while page := await store.list_after(scope, stream_id, after, _PAGE):
            after = page[-1].event_id
            for event in page:
                if not is_audit_event(event.record) or event.record.ts > window.end:
                    continue
                if event.record.ts < window.start and written == 0:
                    count_before += 1
                    continue
                if written == 0:
                    prev_hash = str(event.record.metadata.get(AUDIT_PREV_HASH, GENESIS))
                handle.write(json.dumps(as_link(event), ensure_ascii=False) + "\n")
                written, last_position = written + 1, event.position
    counts = (count_before, written, last_position)
    _write_rest(out, scope, stream_id, window, anchors, keys, counts, prev_hash)
    return written


def prepare_out(out: Path) -> None:
    """Create the bundle directory; refuse one that holds anything."""
    if out.exists() and any(out.iterdir()):
        raise ConfigurationError(f"--out: {out} exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)


def _write_rest(
    out: Path,
    scope: Scope,
    stream_id: str,
    window: Window,
    anchors: list[dict[str, Any]],
    keys: AuditKeys,
    counts: tuple[int, int, int],
    prev_hash: str,
) -> None:
    count_before, written, last_position = counts
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
