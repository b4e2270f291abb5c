"""RouteChecker: emit-time "does this scope have an ``event_spine`` route?".

The hot path (``check``) is one dict lookup on an answer computed earlier: no clock
read, no lock, no registry call. The answers are kept fresh by a daemon thread with
an event loop of its own, which owns the registry connection and a ``RouteCache``
(the sink's TTL cache with its negative cache):

- a scope seen for the first time is looked up on the emit thread, waiting for the
  checker's thread at most ``lookup_timeout_ms`` (once per scope, not per call);
- every ``refresh_s`` the thread re-resolves every known scope, so a route removed or
  switched is seen within ``refresh_s``; a missing route is forgotten after
  ``miss_ttl_s``, so a route added later is seen by the next emit after that;
- every lookup, the first one and each refresh, goes through the registry's audit
  hook (``audit``, required: ``None`` is the explicit opt-out), so a refresh is a
  ``routing.lookup`` audit event like any other lookup;
- a registry that does not answer in time leaves the scope unverified: the event is
  accepted (the sink still dead-letters or holds it) and ``unverified`` is counted.
  Why accept: the registry is a control plane; its outage must not stop every
  producer of every tenant. A scope whose route is *known* missing always fails.

Which scopes are checked: modes ``saas``, ``enterprise`` and ``system`` always; mode
``lab`` and env ``dev`` only with ``lab_and_dev="enforce"`` (default ``"skip"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Final, Literal, TypeVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from event_spine.backends.factory import StoreFactory
from event_spine.backends.seams import RegistryStore
from event_spine.errors import RouteNotFound, SpineError
from event_spine.routing.cache import RouteCache
from event_spine.routing.registry import AuditHook, RoutingRegistry
from event_spine.routing.stores import open_registry_store
from event_spine.schemas.routes import BackendType, ResourceKind, ResourceRoute, RouteKey
from event_spine.schemas.scope import ScopeTuple

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Answer stored for scopes the check does not apply to, or whose lookup timed out.
_PASS: Final = None
#: ``_answers.get`` default: a scope never seen (compared by identity, never raised).
_UNSEEN: Final = RouteNotFound("event_spine", "", "", "", None)
_MAX_SCOPES: Final = 100_000


class RouteCheckSettings(BaseSettings):
    """Where the registry is and how fresh answers stay (env prefix ``SPINE_ROUTE_CHECK_``)."""

    model_config = SettingsConfigDict(env_prefix="SPINE_ROUTE_CHECK_", frozen=True, extra="forbid")

    registry_backend: BackendType
    registry_config: dict[str, Any]
    refresh_s: float = Field(
        default=5.0, gt=0, description="Known scopes are re-resolved this often (background)."
    )
    miss_ttl_s: float = Field(
        default=1.0, gt=0, description="A missing route is re-checked after this long."
    )
    lookup_timeout_ms: int = Field(
        default=250,
        ge=1,
        description="Longest an emit waits for the first lookup of a new scope; past it "
        "the event is accepted unverified.",
    )
    lab_and_dev: Literal["enforce", "skip"] = Field(
        default="skip",
        description="Mode `lab` and env `dev`: also hard-fail on a missing route, or skip.",
    )


class RouteChecker:
    """Thread-safe, synchronous route check for producers (see the module doc)."""

    def __init__(self, settings: RouteCheckSettings, *, audit: AuditHook | None) -> None:
        """``audit``: the hook every lookup goes through, first sights and refreshes
        alike (``registry_audit_hook`` on a producer *without* this checker, so an
        audit event never waits on the checker's own thread); ``None`` opts out."""
        self.settings = settings
        #: scope -> None (route found, or check skipped) or the RouteNotFound to raise.
        self._answers: dict[ScopeTuple, RouteNotFound | None] = {}
        self._routes: dict[ScopeTuple, ResourceRoute] = {}
        self._missing_since: dict[ScopeTuple, float] = {}
        self.unverified = 0
        self.lookups = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="spine-route-check", daemon=True
        )
        self._thread.start()
        self._store: RegistryStore | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._audit = audit
        self.cache: RouteCache | None = None
        #: Event stores read on this loop (strict audit confirms its writes with them).
        self.stores = StoreFactory()
        self.run(self._open(), timeout_s=30)

    # -- the hot path -------------------------------------------------------------

    def check(self, key: ScopeTuple) -> None:
        """Raise RouteNotFound when ``key``'s scope is known to have no route."""
        error = self._answers.get(key, _UNSEEN)
        if error is None:
            return
        if error is _UNSEEN:
            self._first_sight(key)
            return
        raise error

    # -- off the hot path ---------------------------------------------------------

    def route(self, key: ScopeTuple) -> ResourceRoute:
        """The scope's event_spine route, looked up now (raises RouteNotFound)."""
        route = self.run(self._lookup(key), self.settings.lookup_timeout_ms / 1000 + 5)
        if isinstance(route, RouteNotFound):
            raise route
        return route

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float) -> T:
        """Run ``coro`` on the checker's loop, waiting at most ``timeout_s``."""
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout_s)
        except FutureTimeout:
            future.cancel()
            raise

    def exempt(self, key: ScopeTuple) -> bool:
        """True for scopes the check skips (mode lab or env dev, unless enforced)."""
        _, env, mode, _ = key
        return self.settings.lab_and_dev == "skip" and (mode == "lab" or env == "dev")

    def close(self) -> None:
        """Stop the refresher and close the registry connection."""
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self.run(self._close(), timeout_s=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def _first_sight(self, key: ScopeTuple) -> None:
        if self.exempt(key):
            self._answers[key] = _PASS
            return
        try:
            found = self.run(self._lookup(key), self.settings.lookup_timeout_ms / 1000)
        except (FutureTimeout, SpineError, OSError) as exc:
            self.unverified += 1
            log.warning("route check for %s unverified (registry: %r); accepted", key, exc)
            self._answers[key] = _PASS  # re-resolved by the next refresh
            return
        if isinstance(found, RouteNotFound):
            raise found

    async def _open(self) -> None:
        s = self.settings
        self._store = await open_registry_store(s.registry_backend, s.registry_config)
        registry = RoutingRegistry(self._store, self._audit)
        # TTL below the refresh period: every refresh really reads the registry.
        self.cache = RouteCache(registry, ttl_s=s.refresh_s / 2, miss_ttl_s=s.miss_ttl_s)
        self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def _close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        await self.stores.close()
        if self._store is not None:
            await self._store.close()

    async def _lookup(self, key: ScopeTuple) -> ResourceRoute | RouteNotFound:
        """Resolve one scope and publish the answer (runs on the checker's loop)."""
        assert self.cache is not None
        self.lookups += 1
        if len(self._answers) >= _MAX_SCOPES:
            self._answers.clear()
        try:
            route = await self.cache.get(RouteKey.for_scope(ResourceKind.EVENT_SPINE, key))
        except RouteNotFound as exc:
            self._missing_since.setdefault(key, time.monotonic())
            self._routes.pop(key, None)
            self._answers[key] = exc
            return exc
        self._missing_since.pop(key, None)
        self._routes[key] = route
        self._answers[key] = _PASS
        return route

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(min(self.settings.refresh_s, self.settings.miss_ttl_s))
            try:
                await self._refresh()
            except Exception:  # the refresher must survive a registry outage
                log.warning("route check refresh failed; answers kept", exc_info=True)

    async def _refresh(self) -> None:
        now = time.monotonic()
        for key, since in list(self._missing_since.items()):
            if now - since >= self.settings.miss_ttl_s:
                # Forget the miss: the next emit of this scope looks it up again.
                self._missing_since.pop(key, None)
                self._answers.pop(key, None)
        # copy() is one C call (atomic under the GIL): emit threads insert meanwhile.
        snapshot = self._answers.copy()
        for key in [k for k, v in snapshot.items() if v is None and not self.exempt(k)]:
            await self._lookup(key)
