"""Audit chain and anchor checks in the standard library alone (the offline verifier).

This one module is both the checker ``spine audit verify`` runs on a store and the
script an export bundle ships as ``verify_bundle.py``: it imports nothing outside
the standard library, so ``python -I -S verify_bundle.py BUNDLE`` works on a
machine without the project. Formats are defined in docs/audit.md.

Links (one per audit record, in position order):

- v1 (unkeyed, written before keys existed or with no key configured):
  ``audit_hash = sha256(prev_hash || canonical)``.
- v2 (keyed, ``audit_key_id`` present): ``audit_hash = sha256(prev_hash || "\\n" ||
  position || "\\n" || canonical)`` and ``audit_mac = HMAC-SHA256(key[key_id],
  audit_hash)``. The key id is inside ``canonical``, so the hash covers it.

``canonical`` is the record without ``audit_hash``, ``audit_prev_hash`` and
``audit_mac``, as the sink encoded it; a bundle carries it verbatim.

Anchors: signed statements ``(scope, stream, position, event_id, head_hash, count,
time_s, every_events, every_s, prev_signature, key_id)``, Ed25519 over the JSON of
those fields with sorted keys and no whitespace. ``anchor_due`` says where the sink
must write one; a verifier expects one at exactly those records.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

GENESIS = "0" * 64
MEMBER_FIELDS = ("audit_hash", "audit_prev_hash", "audit_mac")
ANCHOR_FIELDS = (
    "scope", "stream", "position", "event_id", "head_hash", "count", "time_s",
    "every_events", "every_s", "prev_signature", "key_id",
)  # fmt: skip

# --- Ed25519 verification (RFC 8032, section 5.1.7), tested against `cryptography` ---
_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
Point = tuple[int, int, int, int]


def _recover_x(y: int, sign: int) -> int | None:
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P:
        return None
    return _P - x if (x & 1) != sign else x


def _add(a: Point, b: Point) -> Point:
    e1, f1 = (a[1] - a[0]) * (b[1] - b[0]) % _P, (a[1] + a[0]) * (b[1] + b[0]) % _P
    c, dd = 2 * a[3] * b[3] * _D % _P, 2 * a[2] * b[2] % _P
    e, f, g, h = f1 - e1, dd - c, dd + c, f1 + e1
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(s: int, point: Point) -> Point:
    out: Point = (0, 1, 1, 0)
    while s:
        if s & 1:
            out = _add(out, point)
        point, s = _add(point, point), s >> 1
    return out


def _decompress(raw: bytes) -> Point | None:
    y = int.from_bytes(raw, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    x = _recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % _P)


_GY = 4 * pow(5, _P - 2, _P) % _P
_G: Point = (_recover_x(_GY, 0) or 0, _GY, 1, (_recover_x(_GY, 0) or 0) * _GY % _P)


@lru_cache(maxsize=4096)  # ~12 ms each in pure Python; a re-check of one anchor is free
def ed25519_verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``message``."""
    if len(public) != 32 or len(signature) != 64:
        return False
    a, r = _decompress(public), _decompress(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= _L:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little")
    left, right = _mul(s, _G), _add(r, _mul(h % _L, a))
    return (left[0] * right[2] - right[0] * left[2]) % _P == 0 and (
        left[1] * right[2] - right[1] * left[2]
    ) % _P == 0


# --- links and anchors ---
def link_hash(prev: str, canonical: bytes, position: int, keyed: bool) -> str:
    """The audit_hash of a record (v2 covers the position too)."""
    if not keyed:
        return hashlib.sha256(prev.encode("ascii") + canonical).hexdigest()
    head = f"{prev}\n{position}\n".encode("ascii")
    return hashlib.sha256(head + canonical).hexdigest()


def link_mac(key: bytes, digest: str) -> str:
    """HMAC-SHA256 of the hash under the record's key."""
    return hmac.new(key, digest.encode("ascii"), hashlib.sha256).hexdigest()


def anchor_message(anchor: dict[str, Any]) -> bytes:
    """The bytes an anchor's signature covers."""
    body = {k: anchor.get(k) for k in ANCHOR_FIELDS}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def anchor_due(count: int, time_s: float, base_s: float, every_events: int, every_s: float) -> bool:
    """Whether the member with chain count ``count`` gets an anchor.

    ``base_s`` is the event time of the last anchored member (of the first member
    before any anchor). Event time, not wall-clock: every worker that links the
    chain, a redelivery or a zombie included, decides the same, and signatures are
    deterministic, so they write identical anchors.
    """
    return count % every_events == 0 or time_s - base_s >= every_s


def event_time_s(canonical: bytes) -> tuple[dict[str, Any], float]:
    """The canonical record parsed, and its ``ts`` in epoch seconds."""
    record = json.loads(canonical)
    if not isinstance(record, dict):
        raise TypeError("the record is not a JSON object")
    ts = datetime.fromisoformat(str(record["ts"]).replace("Z", "+00:00"))
    return record, ts.timestamp()


#: The event type of the registry's audit event for a route change (``routing.update``).
SWITCH_RECORD = "audit.routing.update"


def _link_key(link: dict[str, Any], at: str) -> tuple[str, str, str, str, str]:
    """What identifies a switch link: the switch's time (as an instant) and the head."""
    try:
        when = _instant(at).isoformat()
    except (ValueError, TypeError):
        when = at
    stream, position = str(link.get("stream")), str(link.get("position"))
    return (when, stream, position, str(link.get("head_hash")), str(link.get("count")))


_COLUMN_KEYS = frozenset({"event_type", "ts", "ts_type"})
#: Every key a record of a bundle (or of the store walk) may carry.
_RECORD_KEYS = frozenset(
    {"position", "event_id", "canonical", "columns", "malformed", *MEMBER_FIELDS}
)


def check_columns(columns: Any, parsed: dict[str, Any], position: int, name: str) -> None:
    """The store's own ``event_type`` and ``ts`` columns must say what the hashed record
    says: operators query those columns, so a changed one would mislead them unseen."""
    if (
        not isinstance(columns, dict)
        or set(columns) != _COLUMN_KEYS
        or (columns["ts_type"] not in ("text", "instant"))
    ):
        raise Found(
            "modified", position, name, f"its operator columns are not readable: {columns!r}"
        )
    for column in ("event_type", "ts"):
        stored, hashed = columns.get(column), parsed.get(column)
        same = stored == hashed
        if column == "ts" and not same:
            # A text column (SQLite) must hold exactly what the sink wrote (isoformat):
            # operators compare it as text. A timestamp column (PostgreSQL) holds an
            # instant: equal instants are equal values.
            try:
                if columns["ts_type"] == "instant":
                    # ... written in its one canonical form (a bundle is text too).
                    moment = _instant(stored)
                    same = moment == _instant(hashed) and stored == moment.isoformat()
                else:
                    same = stored == _instant(hashed).isoformat()
            except (ValueError, TypeError):
                same = False
        if not same:
            raise Found(
                "modified", position, name,
                f"the store's {column} column holds {stored!r}, the hashed record {hashed!r}: "
                f"the column was changed",
            )  # fmt: skip


def _instant(value: Any) -> datetime:
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("no time zone")
    return moment


@dataclass
class Problem:
    """The first thing that does not hold."""

    kind: str
    position: int | None
    name: str
    message: str

    def describe(self) -> str:
        """One line naming the kind and the bad record or anchor."""
        where = f"position {self.position}, " if self.position is not None else ""
        return f"{self.kind}: at {where}{self.name}: {self.message}"


@dataclass
class Report:
    """What one check found."""

    checked: int = 0
    keyed: int = 0
    unkeyed: int = 0
    macs_unchecked: int = 0
    anchors_checked: int = 0
    head_hash: str = GENESIS
    problem: Problem | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing was found."""
        return self.problem is None

    def describe(self) -> str:
        """A short paragraph: the counts, then the problem or OK."""
        counts = (
            f"{self.checked} audit records ({self.keyed} keyed, {self.unkeyed} unkeyed, "
            f"{self.macs_unchecked} MACs unchecked for want of the key), "
            f"{self.anchors_checked} anchors; head {self.head_hash}"
        )
        notes = "".join(f"\nnote: {n}" for n in self.notes)
        if self.problem is None:
            return f"OK: {counts}{notes}"
        return f"BROKEN after {counts}\n{self.problem.describe()}{notes}"


@dataclass
class Settings:
    """What the checker knows from outside the records."""

    hmac_keys: dict[str, bytes] | None
    public_keys: dict[str, bytes]
    every_events: int = 100
    every_s: float = 60.0
    expect_anchors: bool = False
    #: The project passes `cryptography`'s (same answers, ~100x faster).
    signature_valid: Callable[[bytes, bytes, bytes], bool] = ed25519_verify


class Found(Exception):
    """Stops the walk at the first problem."""

    def __init__(self, kind: str, position: int | None, name: str, message: str) -> None:
        super().__init__(message)
        self.problem = Problem(kind, position, name, message)


class ChainChecker:
    """Feed records in position order, then finish(); stops at the first problem."""

    def __init__(self, anchors: list[dict[str, Any]], settings: Settings, count: int = 0) -> None:
        self.s = settings
        self.report = Report()
        self.anchors = sorted(anchors, key=lambda a: int(a.get("position", -1)))
        self.count = count
        self.prev = GENESIS
        self.seen: set[str] = set()
        self.base_s: float | None = None
        self.rule = (settings.every_events, settings.every_s)
        self.next_anchor = 0
        self.keyed_seen = False
        #: False until the rule's base is known (an export starting mid-chain, no anchor before).
        self.synced = True
        self.mid_chain = False
        self.first_position: int | None = None
        self.last_prev: str | None = None
        self.last_at: tuple[int, str] | None = None
        self._anchors_checked = False
        #: Route switches the chain crosses, by position (``set_links``).
        self.links: dict[int, dict[str, Any]] = {}
        self.known_links: set[tuple[str, str, str, str, str]] = set()

    def set_links(self, links: Iterable[dict[str, Any]]) -> None:
        """Switch links (position, head_hash, count, at): the chain must pass through each,
        and each switch the chain itself records must be one of them."""
        self.links = {int(link["position"]): link for link in links}
        self.known_links = {_link_key(link, str(link.get("at"))) for link in self.links.values()}

    def recorded_links(self, links: Iterable[dict[str, Any]]) -> None:
        """More links the route's history holds (``at`` included) that the chain does
        not cross (e.g. before a later switch that recorded none): records of their
        switches are not broken."""
        self.known_links |= {_link_key(link, str(link.get("at"))) for link in links}

    def start_after(self, prev_hash: str) -> None:
        """Begin mid-chain (an export from a later record): trust ``prev_hash``."""
        self.prev = prev_hash
        self.mid_chain = True
        self.synced = False

    def feed(self, record: dict[str, Any]) -> bool:
        """Check one record; False once a problem was found."""
        if self.report.problem is not None:
            return False
        try:
            self._check_anchor_chain()
            self._feed(record)
        except Found as found:
            self.report.problem = found.problem
        return self.report.problem is None

    def reached(self, position: int) -> bool:
        """A store's part ends here: every switch link up to ``position`` must be passed."""
        if self.report.problem is None:
            try:
                self._check_switches(position + 1)
            except Found as found:
                self.report.problem = found.problem
        return self.report.problem is None

    def finish(self) -> Report:
        """Anchors past the last record; the report."""
        if self.report.problem is None:
            try:
                self._check_anchor_chain()
                self._finish()
            except Found as found:
                self.report.problem = found.problem
        return self.report

    def _check_anchor_chain(self) -> None:
        """Signatures and the anchors' own chain (once, before the first record)."""
        if self._anchors_checked:
            return
        self._anchors_checked = True
        # From the chain's start, the first anchor names no predecessor.
        prev_sig = None if self.mid_chain else ""
        for a in self.anchors:
            name = f"anchor at position {a.get('position')}"
            key = self.s.public_keys.get(str(a.get("key_id")))
            try:
                sig = base64.b64decode(str(a.get("signature")), validate=True)
            except ValueError:
                sig = b""
            if key is None:
                raise Found("forged anchor", a.get("position"), name, "signed by an unknown key")
            if not self.s.signature_valid(key, anchor_message(a), sig):
                raise Found("forged anchor", a.get("position"), name, "bad signature")
            if prev_sig is not None and a.get("prev_signature") != prev_sig:
                raise Found(
                    "missing anchor", a.get("position"), name,
                    "does not follow the anchor before it: an anchor between them was deleted",
                )  # fmt: skip
            prev_sig = a.get("signature")
            self.report.anchors_checked += 1

    def _feed(self, record: dict[str, Any]) -> None:
        if "malformed" in record:
            raise Found("malformed", None, str(record["event_id"]), str(record["malformed"]))
        position, name = int(record["position"]), f"event {record.get('event_id')}"
        if self.first_position is None:
            self.first_position = position
        canonical = str(record.get("canonical", "")).encode()
        try:
            parsed, time_s = event_time_s(canonical)
        except (ValueError, KeyError, TypeError) as exc:
            raise Found("malformed", position, name, f"not a valid record: {exc}") from None
        self._check_switches(position)
        self._check_link(record, parsed, canonical, position, name)
        self._check_recorded_switch(parsed, position, name)
        unknown = set(record) - _RECORD_KEYS
        if unknown:
            raise Found("modified", position, name, f"unknown fields {sorted(unknown)}")
        if "columns" in record:  # only stores that keep such columns give them
            check_columns(record["columns"], parsed, position, name)
        self._check_switch(position, name, str(record["audit_hash"]))
        self._check_anchor(position, name, time_s, str(record["audit_hash"]))

    def _check_link(
        self, record: dict[str, Any], parsed: dict[str, Any], canonical: bytes, pos: int, name: str
    ) -> None:
        digest, prev = record.get("audit_hash"), record.get("audit_prev_hash")
        if not isinstance(digest, str) or not isinstance(prev, str):
            raise Found("modified", pos, name, "no audit_hash/audit_prev_hash")
        key_id = (parsed.get("metadata") or {}).get("audit_key_id")
        if str(parsed.get("event_id")) != str(record.get("event_id")):
            raise Found("modified", pos, name, "its event id differs from the record's")
        if link_hash(prev, canonical, pos, key_id is not None) != digest:
            raise Found("modified", pos, name, "audit_hash does not match the record")
        if key_id is None and self.keyed_seen:
            raise Found(
                "rewritten without the key", pos, name,
                "an unkeyed record after keyed ones: the chain was rewritten from here",
            )  # fmt: skip
        if key_id is not None:
            self._check_mac(record, str(key_id), digest, pos, name)
        else:
            self.report.unkeyed += 1
        if prev != self.prev:
            self._broken_order(prev, pos, name)
        self.last_prev, self.last_at = prev, (pos, name)
        self.seen.add(self.prev)
        self.prev = digest
        self.count += 1
        self.report.checked += 1
        self.report.head_hash = digest

    def _check_recorded_switch(self, parsed: dict[str, Any], position: int, name: str) -> None:
        """A record of a route switch (the registry's audit event, inside the chain and
        so tamper-evident) names the link the switch recorded: the route's switch history
        must still hold it. Removing a link from the registry (which after a cutover
        leaves a chain that verifies from the new store alone) is caught here."""
        payload = parsed.get("payload")
        if parsed.get("event_type") != SWITCH_RECORD or not isinstance(payload, dict):
            return
        out, given = payload.get("output"), payload.get("input")
        if not isinstance(out, dict) or out.get("change") != "switch":
            return
        if not isinstance(given, dict) or given.get("resource_kind") != "event_spine":
            return
        for link in out.get("audit_links") or []:
            if not isinstance(link, dict) or link.get("stream") != parsed.get("stream_id"):
                continue
            if _link_key(link, str(out.get("at"))) not in self.known_links:
                raise Found(
                    "broken switch link", position, name,
                    f"this record of the route switch at {out.get('at')} names the audit "
                    f"link {link.get('stream')}@{link.get('position')} #{link.get('count')}, "
                    f"and the route's switch history holds no such link: it was removed or "
                    f"changed in the registry",
                )  # fmt: skip

    def _check_switches(self, before: int | None) -> None:
        """A link at a position the chain skipped: the old store's head is gone."""
        for pos in sorted(self.links):
            if before is not None and pos >= before:
                return
            if self.mid_chain and pos < (self.first_position or 0):
                continue
            link = self.links[pos]
            raise Found(
                "broken switch link", pos, f"event {link.get('event_id')}",
                f"the route switch at {link.get('at')} recorded this record as the old "
                f"store's head, and the chain does not hold it",
            )  # fmt: skip

    def _check_switch(self, position: int, name: str, digest: str) -> None:
        link = self.links.pop(position, None)
        if link is None:
            return
        if (link.get("head_hash"), link.get("count")) != (digest, self.count):
            raise Found(
                "broken switch link", position, name,
                f"the route switch at {link.get('at')} recorded head "
                f"{str(link.get('head_hash'))[:16]}… (count {link.get('count')}) here, the "
                f"chain has {digest[:16]}… (count {self.count})",
            )  # fmt: skip

    def _broken_order(self, prev: str, pos: int, name: str) -> None:
        if prev == self.last_prev and self.last_at is not None:
            raise Found(
                "inserted", *self.last_at,
                "this record and the next one name the same predecessor: it was inserted",
            )  # fmt: skip
        kind = "deleted" if prev in self.seen else "reordered or inserted"
        raise Found(
            kind, pos, name,
            f"audit_prev_hash {prev[:16]}… but the previous record's hash is {self.prev[:16]}…",
        )  # fmt: skip

    def _check_mac(
        self, record: dict[str, Any], key_id: str, digest: str, pos: int, name: str
    ) -> None:
        self.keyed_seen = True
        self.report.keyed += 1
        if self.s.hmac_keys is None:
            self.report.macs_unchecked += 1
            return
        key = self.s.hmac_keys.get(key_id)
        if key is None:
            raise Found("rewritten without the key", pos, name, f"unknown key id {key_id!r}")
        mac = record.get("audit_mac")
        if not isinstance(mac, str) or not hmac.compare_digest(mac, link_mac(key, digest)):
            raise Found(
                "rewritten without the key", pos, name,
                f"audit_mac does not match under key {key_id!r}: rewritten without the key",
            )  # fmt: skip

    def _check_anchor(self, position: int, name: str, time_s: float, digest: str) -> None:
        anchor = self._anchor_at(position)
        if self.base_s is None:
            self.base_s = time_s
        due = self.synced and self._expecting()
        due = due and anchor_due(self.count, time_s, self.base_s, *self.rule)
        if anchor is None:
            if due:
                raise Found(
                    "missing anchor", position, name,
                    f"record number {self.count} must be anchored, and no anchor names it",
                )  # fmt: skip
            return
        if anchor.get("head_hash") != digest or anchor.get("count") != self.count:
            raise Found(
                "modified", position, name,
                f"the anchor at this position signs head {str(anchor.get('head_hash'))[:16]}… "
                f"(count {anchor.get('count')}), the chain has {digest[:16]}… "
                f"(count {self.count}): a record up to here was changed",
            )  # fmt: skip
        self._adopt(anchor)
        self.next_anchor += 1

    def _adopt(self, anchor: dict[str, Any]) -> None:
        """The next anchor is due by this one's rule, from its event time."""
        self.base_s = float(anchor["time_s"])
        self.rule = (int(anchor["every_events"]), float(anchor["every_s"]))
        self.synced = True

    def _expecting(self) -> bool:
        return self.s.expect_anchors or bool(self.anchors)

    def _anchor_at(self, position: int) -> dict[str, Any] | None:
        while self.next_anchor < len(self.anchors):
            anchor = self.anchors[self.next_anchor]
            if int(anchor["position"]) > position:
                return None
            if int(anchor["position"]) == position:
                return anchor
            if not (self.mid_chain and int(anchor["position"]) < (self.first_position or 0)):
                raise Found(
                    "deleted", int(anchor["position"]), f"event {anchor.get('event_id')}",
                    "an anchor names this record, and the chain does not hold it",
                )  # fmt: skip
            self._adopt(anchor)  # an anchor before an export's first record
            self.next_anchor += 1
        return None

    def _finish(self) -> None:
        self._check_switches(None)
        if self.next_anchor < len(self.anchors):
            a = self.anchors[self.next_anchor]
            raise Found(
                "truncated", int(a["position"]), f"event {a.get('event_id')}",
                "an anchor names this record, and the chain ends before it: records were "
                "deleted at the end",
            )  # fmt: skip
        if self.report.unkeyed and self.report.keyed == 0:
            self.report.notes.append("every record is unkeyed (written before audit keys)")


# --- bundles ---
def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            try:
                value = json.loads(line)
            except ValueError as exc:
                yield {"event_id": f"line {number}", "malformed": f"not JSON: {exc}"}
                continue
            if not _well_formed(value):
                problem = "not an object with an integer `position` and a string `event_id`"
                yield {"event_id": f"line {number}", "malformed": problem}
                continue
            yield value


def _well_formed(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and type(value.get("position")) is int
        and isinstance(value.get("event_id"), str)
    )


def verify_bundle(bundle: Path, hmac_keys: dict[str, bytes] | None) -> Report:
    """Check an export bundle (docs/audit.md) with the standard library alone."""
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    keys = json.loads((bundle / "keys.json").read_text(encoding="utf-8"))
    public = {k: base64.b64decode(v) for k, v in keys.get("anchor_public_keys", {}).items()}
    anchors = list(_lines(bundle / "anchors.jsonl"))
    settings = Settings(hmac_keys, public, **manifest.get("anchoring", {}))
    checker = ChainChecker(anchors, settings, int(manifest.get("count_before", 0)))
    checker.set_links(manifest.get("switches", []))
    if checker.count:
        checker.start_after(str(manifest.get("prev_hash", GENESIS)))
    records: Iterable[dict[str, Any]] = _lines(bundle / "records.jsonl")
    seen = 0
    for record in records:
        seen += 1
        if not checker.feed(record):
            break
    report = checker.finish()
    expected = manifest.get("records")
    if report.problem is None and expected is not None and seen != expected:
        report.problem = Problem(
            "truncated", None, "records.jsonl",
            f"holds {seen} records, the manifest says {expected}: records were removed or added",
        )  # fmt: skip
    return report


def load_hmac_keys(path: Path) -> dict[str, bytes]:
    """A JSON object {key_id: secret}; secrets are used as their UTF-8 bytes."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return {str(k): str(v).encode() for k, v in data.items()}


def main(argv: list[str] | None = None) -> int:
    """`python verify_bundle.py BUNDLE [--hmac-keys FILE]`: exit 0 valid, 1 broken, 2 unusable."""
    parser = argparse.ArgumentParser(description="Verify an event-spine audit export bundle.")
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--hmac-keys", type=Path, help="JSON {key_id: secret}, out of band")
    args = parser.parse_args(argv)
    try:
        keys = load_hmac_keys(args.hmac_keys) if args.hmac_keys else None
        report = verify_bundle(args.bundle, keys)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"error: cannot read the bundle or keys: {exc}", file=sys.stderr)
        return 2
    print(report.describe())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
