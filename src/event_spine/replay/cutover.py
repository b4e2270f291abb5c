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
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from event_spine.backends.factory import StoreFactory, check_route_allowed
from event_spine.errors import ConfigurationError, SpineError
from event_spine.kafka.clients import make_consumer
from event_spine.kafka.settings import KafkaTarget, as_kafka
from event_spine.replay.filters import EventFilter
from event_spine.replay.progress import ReplayProgress
from event_spine.replay.reader import DEFAULT_MAX_RECORDS, StartFrom
from event_spine.replay.replayer import ProgressCallback, ReplayConfig, Replayer
from event_spine.replay.target import ReplayTarget
from event_spine.replay.verify import VerifyReport, discover_streams, streams_of_scope, verify
from event_spine.routing.registry import RoutingRegistry
from event_spine.schemas.routes import BackendType, ResourceKind, ResourceRoute, RouteKey
from event_spine.schemas.scope import Scope


class CutoverFailed(SpineError):
    """A step could not complete; the report says which and whether the route moved."""


class CutoverStep(StrEnum):
    """The steps, in order."""

    REPLAY = "replay"
    VERIFY = "verify"
    SWITCH = "switch"
    WAIT_WORKERS = "wait-workers"
    CATCH_UP = "catch-up"
    FINAL_VERIFY = "final-verify"


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

    @property
    def ok(self) -> bool:
        """Switched, caught up, and the final verify passed."""
        return self.failed is None and self.final_verify is not None


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
        new = old.model_copy(
            update={"backend_type": self.plan.backend_type, "config": self.plan.config}
        )
        try:
            await self._steps(old, new)
        except CutoverFailed as exc:
            self.report.failed = str(exc)
        except (SpineError, KafkaError) as exc:
            self.report.failed = f"{exc!r}; " + (
                f"the route WAS switched: rerun the catch-up (replay {self.plan.replay_name!r} "
                f"into the new backend) and verify"
                if self.report.switched is not None
                else "the route was not switched"
            )
        finally:
            await self._stores.close()
        return self.report

    async def _steps(self, old: ResourceRoute, new: ResourceRoute) -> None:
        # The backend spec's rules first (e.g. no non-durable store outside lab):
        # refused before anything is replayed, as the registry would refuse the switch.
        check_route_allowed(new)
        ends = await self._replay(CutoverStep.REPLAY, new)
        first = await self._verify(CutoverStep.VERIFY, old, new, ends, wait_live=True)
        if not first.identical:
            raise CutoverFailed("the new backend differs from the old one: route not switched")
        await self._hold_readers(old)
        await self._switch()
        ends = await self._replay(CutoverStep.CATCH_UP, new)
        final = await self._verify(CutoverStep.FINAL_VERIFY, old, new, ends, wait_live=False)
        if not final.consistent(allow_extra_in_target=True):
            raise CutoverFailed(
                "after the switch, events of the old store are missing in the new one"
            )
        await self._release_readers(new)

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
        old = await self.registry.get_route(
            k.resource_kind, k.tenant_id, k.env, k.project_id, k.mode
        )
        if (old.backend_type, old.config) == (self.plan.backend_type, self.plan.config):
            raise ConfigurationError(f"{old.describe()} already points at that backend.")
        return old

    async def _replay(self, step: CutoverStep, new: ResourceRoute) -> dict[int, int]:
        """Replay (resuming the shared group) and return the end per partition."""
        p = self.plan
        config = ReplayConfig(
            kafka=p.kafka,
            topic=p.topic,
            name=p.replay_name,
            target=ReplayTarget.of_route(new),
            start=StartFrom.resume(),
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
        found = await discover_streams(p.kafka, p.topic, EventFilter.of(tenants=[old.tenant_id]))
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
        verdict = "identical" if report.identical else f"{len(report.differing)} stream(s) differ"
        self._step(step, f"{len(streams)} stream(s), {report.total('target')} events: {verdict}")
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
        wait_s = p.live_route_ttl_s + p.settle_s
        self._step(
            CutoverStep.WAIT_WORKERS, f"waiting {wait_s:.1f}s for live route caches to expire"
        )
        # The TTL is the workers' contract for picking up a switch: a known duration.
        await asyncio.sleep(wait_s)


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
