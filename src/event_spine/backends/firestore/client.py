"""One AsyncClient per store, bounded fan-out, and SDK errors mapped to the spine's tree."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, Final, TypeVar

from google.api_core import exceptions as gexc
from google.api_core.retry import if_exception_type
from google.api_core.retry_async import AsyncRetry
from google.auth import exceptions as auth_exceptions
from google.cloud.firestore_v1.async_client import AsyncClient

from event_spine.backends.firestore.config import FirestoreConfig
from event_spine.errors import ConfigurationError, StorePermanentError, StoreUnavailable

T = TypeVar("T")
_READ_CHUNK: Final = 200  # document references per BatchGetDocuments call
# Worth retrying inside one call: the same request may succeed a moment later.
_RETRIED: Final = (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.ResourceExhausted)
_RETRIED_TOO: Final = (gexc.InternalServerError, gexc.Aborted)
# Mapped to StoreUnavailable once the call's own retries ran out.
_TRANSIENT: Final = (*_RETRIED, *_RETRIED_TOO, gexc.Unknown, gexc.Cancelled, gexc.RetryError)


class _FirestoreStore:
    """One AsyncClient per store: creation, collections, call options, closing."""

    _collection: ClassVar[str]

    def __init__(self, config: FirestoreConfig) -> None:
        self.config = config
        self._client: AsyncClient | None = None
        self._lock = asyncio.Lock()
        self._what = self._describe(self._collection)
        retry = AsyncRetry(
            predicate=if_exception_type(*_RETRIED, *_RETRIED_TOO),
            initial=0.1,
            maximum=2.0,
            multiplier=2.0,
            timeout=config.retry_timeout_s,
        )
        self._rpc: dict[str, Any] = {"retry": retry, "timeout": config.timeout_s}

    def _describe(self, suffix: str) -> str:
        project = self.config.project or "<default project>"
        name = self.config.collection_prefix + suffix
        return f"collection {name!r} ({project}/{self.config.database})"

    async def open(self) -> None:
        """Create the client (collections need no creation; indexes are deployed)."""
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    # Default credentials may query the metadata server: off the loop.
                    self._client = await asyncio.to_thread(self._make_client)

    def _make_client(self) -> AsyncClient:
        try:
            return AsyncClient(project=self.config.project, database=self.config.database)
        except (auth_exceptions.DefaultCredentialsError, OSError) as exc:
            raise ConfigurationError(
                f"Firestore backend: no credentials or project ({exc}). Use application "
                f"default credentials and set `project` in the route or GOOGLE_CLOUD_PROJECT."
            ) from exc

    async def close(self) -> None:
        """Close the client and its gRPC channel (``AsyncClient.close()`` does not)."""
        client, self._client = self._client, None
        if client is None:
            return
        # Private attribute: the only handle on the channel (None if never used).
        api = client._firestore_api_internal
        if api is not None:
            await api.transport.close()
        client.close()  # type: ignore[no-untyped-call]

    async def _db(self) -> AsyncClient:
        await self.open()
        assert self._client is not None
        return self._client

    async def _col(self, suffix: str | None = None) -> Any:
        name = self.config.collection_prefix + (suffix or self._collection)
        return (await self._db()).collection(name)

    async def _get_all(
        self, refs: Sequence[Any], *, field_paths: list[str] | None = None, transaction: Any = None
    ) -> list[Any]:
        """Snapshots of ``refs`` (missing ones included), in chunks, in parallel."""
        client = await self._db()

        async def read(chunk: Sequence[Any]) -> list[Any]:
            options = {"field_paths": field_paths, "transaction": transaction, **self._rpc}
            return [snap async for snap in client.get_all(list(chunk), **options)]

        chunks = [refs[i : i + _READ_CHUNK] for i in range(0, len(refs), _READ_CHUNK)]
        pages = await _bounded(self.config.concurrency, [read(c) for c in chunks])
        return [snap for page in pages for snap in page]


async def _bounded(limit: int, jobs: Sequence[Awaitable[T]]) -> list[T]:
    """Await ``jobs`` with at most ``limit`` running at once, results in order."""
    if len(jobs) <= 1:
        return [await job for job in jobs]
    gate = asyncio.Semaphore(limit)

    async def run(job: Awaitable[T]) -> T:
        async with gate:
            return await job

    return list(await asyncio.gather(*(run(job) for job in jobs)))


@contextmanager
def _mapped(what: str) -> Iterator[None]:
    """SDK errors become the spine's tree at the boundary."""
    try:
        yield
    except _TRANSIENT as exc:
        cause = exc.cause if isinstance(exc, gexc.RetryError) else exc
        throttled = isinstance(cause, gexc.ResourceExhausted)
        raise StoreUnavailable(
            f"Firestore {what} is {'throttling' if throttled else 'unavailable'}: {cause or exc}",
            retry_after_s=5.0 if throttled else 1.0,
        ) from exc
    except gexc.GoogleAPICallError as exc:
        raise StorePermanentError(f"Firestore {what} refused the request: {exc}") from exc
    except OSError as exc:  # includes TimeoutError
        raise StoreUnavailable(f"Firestore {what} is unreachable: {exc}", 1.0) from exc
