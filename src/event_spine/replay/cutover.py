"""Move one scope's event_spine route to a new backend while events keep flowing.

The flow (each step reported through ``on_step``):

1. replay: the scope's history from the topic into the new backend, up to the end
   captured at its start (E), in the replay group ``spine-replay-<name>``;
2. verify: wait until the live sink group has committed E (so the old store holds
   everything below E), then compare old and new below E: must be identical, or the
   cutover stops here and the route is not touched;
3. switch: ``RoutingRegistry.switch_route`` (who and why go in the route's history);
4. wait the live workers' route cache TTL: from then on every batch they fetch is
   written to the new backend, without a restart;
5. catch-up: resume the same replay group from E to the end now (E2), so every event
   the workers still wrote to the old store between E and the switch is in the new
   one; then a final verify below E2: nothing the old store holds may be missing or
   different in the new one (the new one also holds what workers wrote there).

Readers: from just before the switch until the final verify, the scope's
``event_stream`` route (which reads prefer) points at the OLD store, complete below
the switch point; it moves to the new store last. Without that, a reader paging the
new store during the catch-up could skip events the catch-up writes below a
watermark the live workers already moved.

Why E2 covers the window: a record at or above E2 was produced after E2 was read,
hence fetched by a worker after the TTL had passed, hence routed to the new backend.

A failed cutover leaves its state in the registry: after the switch, writers
(event_spine) are on the new store and readers (event_stream) on the old one.
``resume`` finishes it from there (catch-up, final verify, readers moved);
``abort`` undoes it (writers back, wait the TTL, replay the scope from the topic
start into the old store so what workers wrote only to the new one is there too,
verify). Either way readers and writers end on one store.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from event_spine.backends.catalog import check_route_allowed
from event_spine.backends.factory import StoreFactory
from event_spine.errors import ConfigurationError, CutoverFailed, SpineError
from event_spine.kafka.clients import make_consumer
from event_spine.kafka.settings import KafkaTarget, as_kafka
from event_spine.replay.filters import ReplayFilter
from event_spine.replay.progress import ReplayProgress
from event_spine.replay.reader import DEFAULT_MAX_RECORDS, StartFrom
from event_spine.replay.replayer import ProgressCallback, ReplayConfig, Replayer
from event_spine.replay.target import ReplayTarget
from event_spine.replay.verify import VerifyReport, discover_streams, streams_of_scope, verify
from event_spine.routing.registry import RoutingRegistry
from event_spine.schemas.routes import BackendType, ResourceKind, ResourceRoute, RouteKey
from event_spine.schemas.scope import Scope


class CutoverStep(StrEnum):
    """The steps, in order."""

    REPLAY = "replay"
    VERIFY = "verify"
    SWITCH = "switch"
    WAIT_WORKERS = "wait-workers"
    CATCH_UP = "catch-up"
    FINAL_VERIFY = "final-verify"
    RESUME = "resume"
    ABORT = "abort"


StepCallback = Callable[[CutoverStep, str], None]


@dataclass(frozen=True)
class CutoverPlan:
    """What to move where, and what the live side looks like."""

    kafka: KafkaTarget
    topic: str
    route: RouteKey
    backend_type: BackendType
    config: dict[str, Any]
    actor: str
    reason: str
    name: str | None = None
    live_group: str | None = "spine-sink"
    live_route_ttl_s: float = 5.0
    settle_s: float = 0.5
    live_wait_timeout_s: float = 120.0
    max_records: int = DEFAULT_MAX_RECORDS

    @property
    def replay_name(self) -> str:
        """The replay (and its group) both replay steps share.

        The default names the scope and the exact new store, so a rerun of the same
        cutover resumes, and a cutover to another store never inherits its offsets.
        """
        if self.name:
            return self.name
        k = self.route
        store = orjson.dumps([self.backend_type.value, self.config], option=orjson.OPT_SORT_KEYS)
        digest = hashlib.sha256(store).hexdigest()[:10]
        return f"cutover-{k.tenant_id}-{k.env}-{k.project_id}-{k.mode}-{digest}"


@dataclass(slots=True)
class CutoverReport:
    """What happened; ``ok`` only when the final verify found nothing missing."""

    replay: ReplayProgress | None = None
    verify: VerifyReport | None = None
    switched: ResourceRoute | None = None
    catch_up: ReplayProgress | None = None
    final_verify: VerifyReport | None = None
    failed: str | None = None
    steps: list[tuple[CutoverStep, str]] = field(default_factory=list)
    #: True when resume/abort found nothing to do (readers and writers on one store).
    settled: bool = False

    @property
    def ok(self) -> bool:
        """Switched, caught up, and the final verify passed (or nothing was left to do)."""
        return self.failed is None and (self.final_verify is not None or self.settled)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: outcome, steps, replay counts and both verify reports."""

        def progress(p: ReplayProgress | None) -> dict[str, Any] | None:
            if p is None:
                return None
            return {
                "name": p.name,
                "written": p.written,
                "duplicates": p.duplicates,
                "filtered": p.filtered,
                "skipped": p.skipped_total,
            }

        return {
            "ok": self.ok,
            "failed": self.failed,
            "settled": self.settled,
            "switched_to": None
            if self.switched is None
            else {
                "backend": self.switched.backend_type.value,
                "config": self.switched.config,
                "version": self.switched.version,
            },
            "steps": [{"step": step.value, "message": text} for step, text in self.steps],
            "replay": progress(self.replay),
            "catch_up": progress(self.catch_up),
            "verify": None if self.verify is None else self.verify.as_dict(),
            "final_verify": None
            if self.final_verify is None
            else self.final_verify.as_dict(allow_extra_in_target=True),
        }


class Cutover:
    """Runs one CutoverPlan against a registry."""

    def __init__(
        self,
        plan: CutoverPlan,
        registry: RoutingRegistry,
        *,
        on_step: StepCallback | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.plan = plan
        self.registry = registry
        self.report = CutoverReport()
        self._on_step = on_step
        self._on_progress = on_progress
        self._stores = StoreFactory()

    def _step(self, step: CutoverStep, message: str) -> None:
        self.report.steps.append((step, message))
        if self._on_step is not None:
            self._on_step(step, message)

    async def run(self) -> CutoverReport:
        """All steps; stops before the switch when the first verify differs."""
        old = await self._current_route()
        return await self._guarded(self._steps(old, self._target_of(old)))

    async def resume(self) -> CutoverReport:
        """Finish a cutover that failed after the switch (or run it, if it never switched)."""
        return await self._guarded(self._resume())

    async def abort(self) -> CutoverReport:
        """Undo a cutover that failed after the switch: everything back on the old store."""
        return await self._guarded(self._abort())

    async def _guarded(self, steps: Coroutine[Any, Any, None]) -> CutoverReport:
        try:
            await steps
        except CutoverFailed as exc:
            self.report.failed = str(exc)
        except (SpineError, KafkaError) as exc:
            self.report.failed = f"{exc!r}; " + (
                "the route WAS switched (writers on the new store, readers on the old one): "
                "finish with `spine cutover --resume` or undo with `spine cutover --abort` "
                "(an interrupted abort: rerun it with --into-backend/--into-config naming the "
                "abandoned store)"
                if self.report.switched is not None
                else "the route was not switched"
            )
        finally:
            await self._stores.close()
        return self.report

    def _target_of(self, old: ResourceRoute) -> ResourceRoute:
        return old.model_copy(
            update={"backend_type": self.plan.backend_type, "config": self.plan.config}
        )

    async def _steps(self, old: ResourceRoute, new: ResourceRoute) -> None:
        # The backend spec's rules first (e.g. no non-durable store outside lab):
        # refused before anything is replayed, as the registry would refuse the switch.
        check_route_allowed(new)
        ends = await self._replay(CutoverStep.REPLAY, new)
        first = await self._verify(CutoverStep.VERIFY, old, new, ends, wait_live=True)
        if not first.identical:
            raise CutoverFailed(
                f"the new backend differs from the old one ({first.verdict()}): route not switched"
            )
        await self._hold_readers(old)
        await self._switch()
        await self._finish(old, new)

    async def _finish(self, old: ResourceRoute, new: ResourceRoute) -> None:
        """Catch-up, final verify, readers moved: the part a resume repeats."""
        ends = await self._replay(CutoverStep.CATCH_UP, new)
        await self._final_verify(
            old,
            new,
            ends,
            "readers stay on the old store; `spine cutover --resume` retries, `--abort` goes back",
        )
        await self._release_readers(new)

    async def _final_verify(
        self, source: ResourceRoute, target: ResourceRoute, ends: Mapping[int, int], advice: str
    ) -> None:
        """Nothing of ``source`` may be missing in ``target`` (newer events there are fine)."""
        final = await self._verify(CutoverStep.FINAL_VERIFY, source, target, ends, wait_live=False)
        if not final.consistent(allow_extra_in_target=True):
            raise CutoverFailed(
                f"{target.backend_type.value} {target.config} lacks events of "
                f"{source.backend_type.value} {source.config} "
                f"({final.verdict(allow_extra_in_target=True)}): {advice}"
            )

    async def _scope_routes(self) -> tuple[ResourceRoute, ResourceRoute | None]:
        """The writers' route and, when it points elsewhere, the readers' (as event_spine)."""
        k = self.plan.route
        writers = await self.registry.get_route(k)
        readers = await self.registry.store.load(
            k._replace(resource_kind=ResourceKind.EVENT_STREAM)
        )
        if readers is None or _store_of(readers) == _store_of(writers):
            return writers, None
        return writers, readers.model_copy(update={"resource_kind": k.resource_kind})

    async def _resume(self) -> None:
        writers, held_on = await self._scope_routes()
        if held_on is not None:
            self.report.switched = writers
            self._step(
                CutoverStep.RESUME,
                f"writers on {writers.backend_type.value} {writers.config}, readers held on "
                f"{held_on.backend_type.value} {held_on.config}: finishing the catch-up",
            )
            await self._finish(held_on, writers)
        elif _store_of(writers) == (self.plan.backend_type, self.plan.config):
            self.report.settled = True
            self._step(
                CutoverStep.RESUME, "nothing to resume: readers and writers are on the target"
            )
        else:
            self._step(CutoverStep.RESUME, "the route was never switched: running the cutover")
            await self._steps(writers, self._target_of(writers))

    async def _abort(self) -> None:
        p = self.plan
        writers, old = await self._scope_routes()
        if old is None:
            abandoned = self._target_of(writers)
            if _store_of(abandoned) == _store_of(writers):
                self.report.settled = True
                self._step(CutoverStep.ABORT, "nothing to undo: readers and writers on one store")
                return
            # An abort that stopped after moving the writers back, named the abandoned
            # store with --into-*: finish its copy-back.
            old, writers = writers, abandoned
            self.report.switched = old
        else:
            self.report.switched = await self.registry.switch_route(
                p.route,
                old.backend_type,
                old.config,
                actor=p.actor,
                reason=f"cutover aborted: {p.reason}",
            )
            self._step(CutoverStep.ABORT, f"writers back on {old.backend_type.value} {old.config}")
            await self._wait_route_caches()
        # Workers wrote to the abandoned store from the switch on: bring all of it back.
        # From the topic start, because the switch point is not recorded (writes are
        # idempotent, so what the old store holds counts as duplicates).
        name = f"{p.replay_name}-abort-{int(time.time())}"
        ends = await self._replay(CutoverStep.CATCH_UP, old, name=name, start=StartFrom.beginning())
        await self._final_verify(
            writers,
            old,
            ends,
            "rerun `spine cutover --abort` with --into-backend/--into-config naming the "
            "abandoned store",
        )

    async def _hold_readers(self, old: ResourceRoute) -> None:
        """Pin readers (the event_stream route) to the old store until the catch-up is done.

        Between the switch and the end of the catch-up, workers move the new store's
        watermarks past events only the catch-up writes: a reader paging the new store
        then could skip them. The old store is complete below the switch point.
        """
        reads = self.plan.route._replace(resource_kind=ResourceKind.EVENT_STREAM)
        held = old.model_copy(update={"resource_kind": ResourceKind.EVENT_STREAM, "history": ()})
        await self.registry.set_route(
            held,
            actor=self.plan.actor,
            reason=f"cutover: readers stay on the old store ({reads.describe()})",
        )
        self._step(CutoverStep.SWITCH, "readers (event_stream) held on the old store")

    async def _release_readers(self, new: ResourceRoute) -> None:
        reads = self.plan.route._replace(resource_kind=ResourceKind.EVENT_STREAM)
        await self.registry.switch_route(
            reads,
            new.backend_type,
            new.config,
            actor=self.plan.actor,
            reason=f"cutover complete: {self.plan.reason}",
        )
        self._step(CutoverStep.FINAL_VERIFY, "readers (event_stream) moved to the new store")

    async def _current_route(self) -> ResourceRoute:
        k = self.plan.route
        old = await self.registry.get_route(k)
        if (old.backend_type, old.config) == (self.plan.backend_type, self.plan.config):
            raise ConfigurationError(f"{old.describe()} already points at that backend.")
        return old

    async def _replay(
        self,
        step: CutoverStep,
        new: ResourceRoute,
        *,
        name: str | None = None,
        start: StartFrom | None = None,
    ) -> dict[int, int]:
        """Replay (by default resuming the shared group) and return the end per partition."""
        p = self.plan
        config = ReplayConfig(
            kafka=p.kafka,
            topic=p.topic,
            name=name or p.replay_name,
            target=ReplayTarget.of_route(new),
            start=start or StartFrom.resume(),
            max_records=p.max_records,
        )
        self._step(step, f"replaying into {config.target.describe()} (group {config.group_id})")
        progress = await Replayer(config, on_progress=self._on_progress).run()
        if step is CutoverStep.REPLAY:
            self.report.replay = progress
        else:
            self.report.catch_up = progress
        self._step(step, progress.summary())
        return {n: part.end for n, part in progress.partitions.items()}

    async def _verify(
        self,
        step: CutoverStep,
        old: ResourceRoute,
        new: ResourceRoute,
        ends: Mapping[int, int],
        *,
        wait_live: bool,
    ) -> VerifyReport:
        p = self.plan
        if wait_live and p.live_group is not None:
            self._step(step, f"waiting for live group {p.live_group!r} to commit the replay's end")
            behind = await wait_for_group(
                p.kafka, p.topic, p.live_group, ends, p.live_wait_timeout_s
            )
            if behind:
                raise CutoverFailed(
                    f"live group {p.live_group!r} did not commit the replay's end within "
                    f"{p.live_wait_timeout_s}s (behind on partitions {behind}): is it running? "
                    f"Without live workers, pass live_group=None (--no-live-group)."
                )
        scope = Scope(
            tenant_id=old.tenant_id, env=old.env, mode=old.mode, project_id=old.project_id
        )
        found = await discover_streams(p.kafka, p.topic, ReplayFilter.of(tenants=[old.tenant_id]))
        streams = streams_of_scope(found, scope)
        until = {stream: ends[partition] for stream, partition in streams.items()}
        report = await verify(
            await self._stores.event_store(old),
            await self._stores.event_store(new),
            scope,
            streams,
            until=until,
        )
        if step is CutoverStep.VERIFY:
            self.report.verify = report
        else:
            self.report.final_verify = report
        verdict = report.verdict(allow_extra_in_target=step is not CutoverStep.VERIFY)
        self._step(step, verdict)
        return report

    async def _switch(self) -> None:
        p = self.plan
        self.report.switched = await self.registry.switch_route(
            p.route, p.backend_type, p.config, actor=p.actor, reason=p.reason
        )
        self._step(
            CutoverStep.SWITCH,
            f"route switched to {p.backend_type.value} (v{self.report.switched.version})",
        )
        await self._wait_route_caches()

    async def _wait_route_caches(self) -> None:
        wait_s = self.plan.live_route_ttl_s + self.plan.settle_s
        self._step(
            CutoverStep.WAIT_WORKERS, f"waiting {wait_s:.1f}s for live route caches to expire"
        )
        # The TTL is the workers' contract for picking up a switch: a known duration.
        await asyncio.sleep(wait_s)


def _store_of(route: ResourceRoute) -> tuple[BackendType, dict[str, Any]]:
    return route.backend_type, route.config


async def wait_for_group(
    kafka: KafkaTarget, topic: str, group_id: str, ends: Mapping[int, int], timeout_s: float
) -> list[int]:
    """Wait until ``group_id`` has committed at least ``ends`` on every partition.

    Returns the partitions still behind at the deadline (empty: caught up). Reads
    committed offsets only (assign, no join, no commit): live members are undisturbed.
    """
    tps = {p: TopicPartition(topic, p) for p, end in ends.items() if end > 0}
    if not tps:
        return []
    settings = as_kafka(kafka)
    consumer = make_consumer(
        settings,
        client_id=settings.client_id_for(f"{group_id}-watch"),
        group_id=group_id,  # only to read its committed offsets: never joins
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        consumer.assign(list(tps.values()))
        deadline = time.monotonic() + timeout_s
        while True:
            behind = [p for p, tp in tps.items() if (await consumer.committed(tp) or 0) < ends[p]]
            if not behind or time.monotonic() >= deadline:
                return behind
            await asyncio.sleep(0.2)
    finally:
        await consumer.stop()


async def run_cutover(
    plan: CutoverPlan,
    registry: RoutingRegistry,
    *,
    on_step: StepCallback | None = None,
    on_progress: ProgressCallback | None = None,
) -> CutoverReport:
    """Run every step of a cutover."""
    return await Cutover(plan, registry, on_step=on_step, on_progress=on_progress).run()
