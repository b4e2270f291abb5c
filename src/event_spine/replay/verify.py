"""Compare two stores stream by stream: counts, positions, payloads and a digest.

Per stream, both stores are paged with ``list_after`` (what readers see: events up
to the stream's watermark) in position order. The digest is sha256 over each
event's id and canonical payload JSON (sorted keys) in position order, so two
stores with the same digest hold the same events with the same payloads in the same
order. Differences are classified per event id: missing in target, extra in target,
payload mismatch (payload, event type, time or metadata differ), position mismatch.

Which streams: given by the caller, or found by scanning the topic
(``discover_streams``), since the EventStore protocol has no "list streams".
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Final

import orjson

from event_spine.backends.base import MAX_PAGE, StreamKey
from event_spine.backends.seams import EventStore
from event_spine.kafka.settings import KafkaTarget
from event_spine.replay.filters import ReplayFilter, probe_stream
from event_spine.replay.reader import ReaderSettings, StartFrom, TopicReader
from event_spine.schemas.scope import Scope
from event_spine.schemas.wire import EventRecord

_COMPARED: Final = ("payload", "event_type", "ts", "metadata")


@dataclass(frozen=True, slots=True)
class DiffSample:
    """One differing event: its id and what differs."""

    event_id: str
    detail: str = ""


@dataclass(slots=True)
class Differences:
    """How many events differ one way, with the first few as samples."""

    count: int = 0
    samples: list[DiffSample] = field(default_factory=list)

    def add(self, sample: DiffSample, max_samples: int) -> None:
        """Count one, keep it if there is room."""
        self.count += 1
        if len(self.samples) < max_samples:
            self.samples.append(sample)

    @property
    def event_ids(self) -> list[str]:
        """The sampled ids."""
        return [s.event_id for s in self.samples]


@dataclass(slots=True)
class StreamReport:
    """One stream compared."""

    stream_id: str
    source_count: int = 0
    target_count: int = 0
    source_digest: str = ""
    target_digest: str = ""
    positions_equal: bool = True
    missing_in_target: Differences = field(default_factory=Differences)
    extra_in_target: Differences = field(default_factory=Differences)
    payload_mismatch: Differences = field(default_factory=Differences)
    position_mismatch: Differences = field(default_factory=Differences)

    @property
    def identical(self) -> bool:
        """Same events, positions and payloads."""
        return (
            self.source_digest == self.target_digest
            and self.positions_equal
            and not self.missing_in_target.count
            and not self.extra_in_target.count
            and not self.payload_mismatch.count
            and not self.position_mismatch.count
        )

    def lines(self) -> list[str]:
        """Human-readable differences (empty when identical)."""
        if self.identical:
            return []
        out = [
            f"stream {self.stream_id!r}: source {self.source_count} events "
            f"(sha256 {self.source_digest[:12]}), target {self.target_count} "
            f"(sha256 {self.target_digest[:12]})"
        ]
        for label, diff in (
            ("missing in target", self.missing_in_target),
            ("extra in target", self.extra_in_target),
            ("payload mismatch", self.payload_mismatch),
            ("position mismatch", self.position_mismatch),
        ):
            if diff.count:
                shown = ", ".join(
                    f"{s.event_id}{' ' + s.detail if s.detail else ''}" for s in diff.samples
                )
                out.append(f"  {label}: {diff.count} (e.g. {shown})")
        return out


@dataclass(slots=True)
class VerifyReport:
    """Every stream of one scope compared."""

    scope: Scope
    streams: list[StreamReport] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        """Every stream identical."""
        return all(s.identical for s in self.streams)

    def consistent(self, *, allow_extra_in_target: bool = False) -> bool:
        """Nothing missing or mismatched; extra target events only if allowed.

        After a cutover the new store also holds what live workers wrote to it
        directly: extra there is expected, missing never is.
        """
        return all(
            s.identical
            or (
                allow_extra_in_target
                and not s.missing_in_target.count
                and not s.payload_mismatch.count
                and not s.position_mismatch.count
            )
            for s in self.streams
        )

    @property
    def differing(self) -> list[StreamReport]:
        """The streams that are not identical."""
        return [s for s in self.streams if not s.identical]

    def total(self, side: str) -> int:
        """Events compared on one side ("source" or "target")."""
        return sum(getattr(s, f"{side}_count") for s in self.streams)

    def lines(self) -> list[str]:
        """Every difference, stream by stream."""
        return [line for s in self.streams for line in s.lines()]

    def count(self, kind: str) -> int:
        """Events of one kind of difference over all streams (e.g. "missing_in_target")."""
        return sum(getattr(s, kind).count for s in self.streams)

    def verdict(self, *, allow_extra_in_target: bool = False) -> str:
        """What differs and whether that is fine, in one sentence."""
        if self.identical:
            return f"identical: {len(self.streams)} stream(s), {self.total('target')} events"
        extra = self.count("extra_in_target")
        if self.consistent(allow_extra_in_target=allow_extra_in_target):
            return (
                f"consistent: {len(self.differing)} stream(s) differ only by {extra} newer "
                f"event(s) in the target, written there by live workers after the switch; "
                f"nothing of the source is missing or different"
            )
        problems = ", ".join(
            f"{self.count(kind)} {kind.replace('_', ' ')}"
            for kind in ("missing_in_target", "payload_mismatch", "position_mismatch")
            if self.count(kind)
        )
        allowed = " (extra events in the target would be fine)" if allow_extra_in_target else ""
        return f"DIFFERENT: {problems or f'{extra} extra in target'}{allowed}"

    def as_dict(self, *, allow_extra_in_target: bool = False) -> dict[str, object]:
        """JSON-ready: the verdict, totals and every stream's differences with samples."""
        return {
            "scope": self.scope.model_dump(mode="json"),
            "identical": self.identical,
            "consistent": self.consistent(allow_extra_in_target=allow_extra_in_target),
            "verdict": self.verdict(allow_extra_in_target=allow_extra_in_target),
            "source_events": self.total("source"),
            "target_events": self.total("target"),
            "streams": [asdict(s) for s in self.streams],
        }


@dataclass(frozen=True, slots=True)
class _Seen:
    position: int
    content: tuple[bytes, ...]


@dataclass(slots=True)
class _Side:
    events: dict[str, _Seen] = field(default_factory=dict)
    positions: list[int] = field(default_factory=list)
    digest: str = ""


def _canonical(record: EventRecord) -> tuple[bytes, ...]:
    """Canonical JSON of each compared field, payload first."""
    return (
        orjson.dumps(record.payload, option=orjson.OPT_SORT_KEYS),
        record.event_type.encode(),
        record.ts.isoformat().encode(),
        orjson.dumps(record.metadata, option=orjson.OPT_SORT_KEYS),
    )


async def _read_side(store: EventStore, scope: Scope, stream_id: str, until: int | None) -> _Side:
    """Every visible event of a stream below ``until``, fingerprinted in position order."""
    side = _Side()
    digest = hashlib.sha256()
    after: str | None = None
    while page := await store.list_after(scope, stream_id, after, MAX_PAGE):
        for event in page:
            if until is not None and event.position >= until:
                side.digest = digest.hexdigest()
                return side
            content = _canonical(event.record)
            side.events[event.event_id] = _Seen(event.position, content)
            side.positions.append(event.position)
            digest.update(event.event_id.encode())
            digest.update(content[0])
            digest.update(b"\n")
        after = page[-1].event_id
    side.digest = digest.hexdigest()
    return side


def _compare(stream_id: str, source: _Side, target: _Side, max_samples: int) -> StreamReport:
    report = StreamReport(
        stream_id,
        len(source.events),
        len(target.events),
        source.digest,
        target.digest,
        source.positions == target.positions,
    )
    for event_id, seen in source.events.items():
        other = target.events.get(event_id)
        if other is None:
            report.missing_in_target.add(DiffSample(event_id, f"at {seen.position}"), max_samples)
            continue
        if other.position != seen.position:
            detail = f"{seen.position} -> {other.position}"
            report.position_mismatch.add(DiffSample(event_id, detail), max_samples)
        if other.content != seen.content:
            fields_ = [
                n for n, a, b in zip(_COMPARED, seen.content, other.content, strict=True) if a != b
            ]
            report.payload_mismatch.add(DiffSample(event_id, ",".join(fields_)), max_samples)
    for event_id, seen in target.events.items():
        if event_id not in source.events:
            report.extra_in_target.add(DiffSample(event_id, f"at {seen.position}"), max_samples)
    return report


async def verify(
    source_store: EventStore,
    target_store: EventStore,
    scope: Scope,
    streams: Iterable[str],
    *,
    until: Mapping[str, int] | None = None,
    max_samples: int = 20,
) -> VerifyReport:
    """Compare ``streams`` of ``scope`` in two stores.

    ``until`` bounds a stream to positions below a value (exclusive): a live store
    keeps growing, so a cutover compares only what the replay covered.
    """
    report = VerifyReport(scope)
    for stream_id in sorted(set(streams)):
        bound = None if until is None else until.get(stream_id)
        source = await _read_side(source_store, scope, stream_id, bound)
        target = await _read_side(target_store, scope, stream_id, bound)
        report.streams.append(_compare(stream_id, source, target, max_samples))
    return report


async def discover_streams(
    kafka: KafkaTarget, topic: str, filters: ReplayFilter | None = None
) -> dict[StreamKey, int]:
    """Every stream the topic holds (that ``filters`` keeps), with its partition.

    Reads the topic from the beginning to its current end without a consumer group.
    The keys carry the scope, so ``{k for k in found if k.scope_key() == ...}`` gives
    the (scope, stream_id) pairs of one scope.
    """
    keep = filters or ReplayFilter()
    found: dict[StreamKey, int] = {}
    settings = ReaderSettings(kafka, topic, client_id="spine-verify", max_records=20_000)
    async with TopicReader(settings) as reader:
        await reader.open(StartFrom.beginning())
        while not reader.done:
            for rec in await reader.poll(follow=False):
                probed = probe_stream(rec.value)
                if probed is not None and keep.matches(*probed):
                    found.setdefault(probed[0], rec.partition)
            await reader.advance(follow=False)
    return found


def streams_of_scope(found: Mapping[StreamKey, int], scope: Scope) -> dict[str, int]:
    """stream_id -> partition for the streams of one scope."""
    wanted = scope.key()
    return {key.stream_id: p for key, p in found.items() if key.scope_key() == wanted}
