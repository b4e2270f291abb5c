"""One client on one container, and SDK errors mapped to the spine's tree."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from azure.core import MatchConditions
from azure.core.exceptions import AzureError
from azure.cosmos import PartitionKey
from azure.cosmos.aio import CosmosClient
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosResourceExistsError,
)

from event_spine.backends.cosmos.config import CosmosConfig
from event_spine.backends.cosmos.layout import Item
from event_spine.errors import (
    ConfigurationError,
    StoreError,
    StorePermanentError,
    StoreUnavailable,
)

_RETRIABLE_STATUS: Final = frozenset({408, 410, 429, 449, 500, 502, 503, 504})

_BY_ID_IN_PK: Final = "SELECT * FROM c WHERE c.pk = @pk AND c.id = @id"


class _Container:
    """One client on one container of the account, opened by the store's open()."""

    def __init__(self, config: CosmosConfig, name: str, indexing: dict[str, Any] | None) -> None:
        self.config = config
        self.name = name
        self.what = f"Cosmos container {config.database}/{name}"
        self._indexing = indexing
        self._client: Any = None
        self._credential: Any = None
        self.proxy: Any = None  # the SDK's ContainerProxy, once open

    async def open(self) -> None:
        """Connect, create the database and container if allowed, check the key path."""
        if self.proxy is not None:
            return
        self._credential = _credential(self.config)
        cfg = self.config
        try:
            with _mapped(self.what):
                self._client = CosmosClient(
                    cfg.endpoint,
                    self._credential,
                    connection_verify=cfg.verify_tls,
                    connection_timeout=cfg.request_timeout_s,
                    read_timeout=cfg.request_timeout_s,
                    retry_throttle_total=cfg.throttle_retries,
                    retry_throttle_backoff_max=cfg.throttle_max_wait_s,
                    user_agent_suffix="event-spine",
                )
                await self._client.__aenter__()
                proxy = await self._container()
                properties = await proxy.read()
        except BaseException:
            await self.close()
            raise
        paths = properties.get("partitionKey", {}).get("paths")
        if paths != ["/pk"]:
            await self.close()
            raise StorePermanentError(f"{self.what} is partitioned on {paths}, not ['/pk']")
        self.proxy = proxy

    async def _container(self) -> Any:
        cfg = self.config
        if not cfg.create_if_missing:
            return self._client.get_database_client(cfg.database).get_container_client(self.name)
        database = await self._client.create_database_if_not_exists(cfg.database)
        return await database.create_container_if_not_exists(
            self.name,
            partition_key=PartitionKey(path="/pk", kind="Hash", version=2),
            indexing_policy=self._indexing,
        )

    async def close(self) -> None:
        """Close the client (and a token credential, if one was made)."""
        client, credential = self._client, self._credential
        self._client = self._credential = self.proxy = None
        if client is not None:
            await client.close()
        if credential is not None and not isinstance(credential, str):
            await credential.close()

    async def query(
        self, sql: str, params: dict[str, Any], pk: str | None, limit: int | None = None
    ) -> list[Any]:
        """Run a parameterized query; single-partition when ``pk`` is given."""
        kwargs: dict[str, Any] = {"partition_key": pk} if pk is not None else {}
        parameters = [{"name": name, "value": value} for name, value in params.items()]
        out: list[Any] = []
        with _mapped(self.what):
            pages = self.proxy.query_items(
                sql, parameters=parameters, max_item_count=limit, **kwargs
            )
            async for item in pages:
                out.append(item)
                if limit is not None and len(out) >= limit:
                    break
        return out

    async def find(self, pk: str, item_id: str) -> Item | None:
        """One item by partition and id (a query: answered alike by every server)."""
        found = await self.query(_BY_ID_IN_PK, {"@pk": pk, "@id": item_id}, pk, 1)
        return found[0] if found else None

    async def swap(self, body: Item, current: Item | None) -> bool:
        """Create ``body``, or replace ``current`` if unchanged (etag); False if raced."""
        with _mapped(self.what):
            try:
                if current is None:
                    await self.proxy.create_item(body)
                else:
                    await self.proxy.replace_item(
                        body["id"],
                        body,
                        etag=current["_etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
            except (CosmosResourceExistsError, CosmosAccessConditionFailedError):
                return False
        return True


def _credential(config: CosmosConfig) -> Any:
    key = os.environ.get(config.key_env)
    if key:
        return key
    try:
        from azure.identity.aio import DefaultAzureCredential  # noqa: PLC0415 - optional
    except ImportError as exc:
        raise ConfigurationError(
            f"Cosmos store at {config.endpoint}: no account key in ${config.key_env} and "
            f"azure-identity is not installed; set `{config.key_env}` or install azure-identity."
        ) from exc
    return DefaultAzureCredential()


@contextmanager
def _mapped(what: str) -> Iterator[None]:
    """SDK errors become the spine's tree at the boundary."""
    try:
        yield
    except (AzureError, OSError, TimeoutError) as exc:
        raise _store_error(exc, what) from exc


def _store_error(exc: BaseException, what: str) -> StoreError:
    status = getattr(exc, "status_code", None)
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if not status:  # no answer at all: refused, reset, timed out
        return StoreUnavailable(f"{what} is unreachable: {reason}")
    if status == 429:
        return StoreUnavailable(
            f"{what} is throttling (429) after the SDK's retries; slow down or add RU/s",
            retry_after_s=_retry_after_s(exc),
        )
    if status in _RETRIABLE_STATUS:
        return StoreUnavailable(f"{what} is unavailable ({status}): {reason}")
    return StorePermanentError(f"{what} refused the request ({status}): {reason}")


def _retry_after_s(exc: BaseException) -> float | None:
    headers = {k.lower(): v for k, v in (getattr(exc, "headers", None) or {}).items()}
    try:
        return float(headers["x-ms-retry-after-ms"]) / 1000.0
    except (KeyError, ValueError):
        return None
