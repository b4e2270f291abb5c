"""One table through one aioboto3 client: mapped errors and batch helpers."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Coroutine, Iterable
from typing import Any, ClassVar, Final, TypeVar

import aioboto3
import botocore.exceptions as boto  # type: ignore[import-untyped, unused-ignore]
from aiobotocore.config import AioConfig  # type: ignore[import-untyped, unused-ignore]

from event_spine.backends.base import DelegatedLifecycle
from event_spine.backends.dynamodb.config import DynamoConfig
from event_spine.backends.dynamodb.layout import Item
from event_spine.errors import (
    ConfigurationError,
    StoreError,
    StorePermanentError,
    StoreUnavailable,
)

T = TypeVar("T")

_WRITE_CHUNK: Final = 25  # BatchWriteItem limit
_GET_CHUNK: Final = 100  # BatchGetItem limit

# Retriable error codes (any 5xx too) and the pause they suggest. Setup problems (a
# missing table, refused credentials) are held, not dead-lettered: fixable, no loss.
_RETRY_AFTER_S: Final = {
    "ProvisionedThroughputExceededException": 1.0,
    "ThrottlingException": 1.0,
    "RequestLimitExceeded": 1.0,
    "LimitExceededException": 1.0,
    "ResourceNotFoundException": 30.0,
    "AccessDeniedException": 30.0,
    "UnrecognizedClientException": 30.0,
    "ExpiredTokenException": 30.0,
    "InvalidSignatureException": 30.0,
}


def _map_error(exc: Exception, what: str) -> Exception:
    """An SDK error as the spine's tree; anything unknown is returned unchanged."""
    if isinstance(exc, boto.ClientError):
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "?"), error.get("Message", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        retry_after = _RETRY_AFTER_S.get(code, 1.0 if status >= 500 else None)
        if retry_after is not None:
            hint = "" if retry_after < 30 else "; check the table and the credentials"
            return StoreUnavailable(f"DynamoDB {what}: {code}: {message}{hint}", retry_after)
        return StorePermanentError(f"DynamoDB {what} refused the request ({code}): {message}")
    if isinstance(exc, boto.ConnectionError | boto.HTTPClientError):
        return StoreUnavailable(f"DynamoDB {what} is unreachable: {exc}", 1.0)
    if isinstance(
        exc, boto.NoCredentialsError | boto.PartialCredentialsError | boto.CredentialRetrievalError
    ):
        return StoreUnavailable(f"DynamoDB {what}: no usable AWS credentials: {exc}", 30.0)
    if isinstance(exc, boto.NoRegionError):
        return ConfigurationError(f"DynamoDB {what}: no region (set `region` or AWS_REGION)")
    if isinstance(exc, boto.BotoCoreError):
        return StorePermanentError(f"DynamoDB {what} refused the request: {exc}")
    return exc


def _error_code(exc: BaseException | None) -> str:
    response = exc.response if isinstance(exc, boto.ClientError) else {}
    return str(response.get("Error", {}).get("Code", ""))


async def _all(coros: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Run concurrently; the first failure cancels the rest and is raised as itself."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(coro) for coro in coros]
    except ExceptionGroup as failed:
        errors = failed.exceptions
        # Prefer a retriable error: a permanent one will show again on the retry.
        raise next((e for e in errors if isinstance(e, StoreUnavailable)), errors[0]) from None
    return [task.result() for task in tasks]


class DynamoTable:
    """One table through one aioboto3 client: mapped errors and batch helpers."""

    def __init__(self, config: DynamoConfig, table: str, sort_type: str, session: Any) -> None:
        """``sort_type``: "S" or "N"; ``session``: aioboto3's, None for the default chain."""
        self.config = config
        self.name = table
        self._sort_type = sort_type
        self._session = session or aioboto3.Session()
        self._opened: Any = None  # the client's async context manager
        self._client: Any = None
        self._slots = asyncio.Semaphore(config.max_concurrency)
        self.what = f"table {table!r}"

    async def open(self) -> None:
        """Create the client (and the table when ``create_tables`` is set). Idempotent."""
        if self._client is not None:
            return
        cfg = self.config
        aio_config = AioConfig(
            retries={"mode": "standard", "max_attempts": cfg.max_attempts},
            connect_timeout=cfg.connect_timeout_s,
            read_timeout=cfg.read_timeout_s,
            max_pool_connections=cfg.max_concurrency,
            parameter_validation=False,  # the service validates; saves ~20% client CPU
        )
        opened = self._session.client(
            "dynamodb", region_name=cfg.region, endpoint_url=cfg.endpoint_url, config=aio_config
        )
        try:
            self._client = await opened.__aenter__()
        except Exception as exc:
            raise _map_error(exc, self.what) from exc
        self._opened = opened
        if cfg.create_tables:
            await self._ensure_table()

    async def close(self) -> None:
        """Close the client's connections."""
        opened, self._opened, self._client = self._opened, None, None
        if opened is not None:
            await opened.__aexit__(None, None, None)

    async def _ensure_table(self) -> None:
        """Create the table on-demand if missing and wait until it is active."""
        try:
            await self._raw("create_table", **self.schema())
        except StoreError as exc:
            if _error_code(exc.__cause__) != "ResourceInUseException":
                raise
        waiter = self._client.get_waiter("table_exists")
        try:
            await waiter.wait(TableName=self.name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        except Exception as exc:
            raise StoreUnavailable(f"DynamoDB {self.what} did not become active: {exc}") from exc

    def schema(self) -> dict[str, Any]:
        """CreateTable arguments: the key schema real deployments create."""
        keys = (("pk", "HASH", "S"), ("sk", "RANGE", self._sort_type))
        return {
            "TableName": self.name,
            "KeySchema": [{"AttributeName": n, "KeyType": k} for n, k, _ in keys],
            "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t} for n, _, t in keys],
            "BillingMode": "PAY_PER_REQUEST",
        }

    async def _raw(self, operation: str, **kwargs: Any) -> Item:
        if self._client is None:
            raise RuntimeError(f"DynamoDB {self.what}: the store is not open")
        try:
            response: Item = await getattr(self._client, operation)(**kwargs)
        except Exception as exc:
            raise _map_error(exc, self.what) from exc
        return response

    async def call(self, operation: str, **kwargs: Any) -> Item:
        """One single-table operation (get_item, query, ...) on this table."""
        async with self._slots:  # bounds fan-out such as one watermark write per stream
            return await self._raw(operation, TableName=self.name, **kwargs)

    async def conditional(self, operation: str, **kwargs: Any) -> bool:
        """A conditional write; False when its condition did not hold."""
        try:
            await self.call(operation, **kwargs)
        except StoreError as exc:
            if _error_code(exc.__cause__) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    async def get(self, key: Item) -> Item | None:
        """One item, strongly consistent."""
        response = await self.call("get_item", Key=key, ConsistentRead=True)
        item: Item | None = response.get("Item")
        return item

    def _backoff(self, attempt: int) -> float:
        # Full jitter: spreads retries of concurrent writers apart.
        cap = min(self.config.backoff_cap_s, self.config.backoff_base_s * 2**attempt)
        return random.uniform(0, cap)

    def _gave_up(self, left: int, verb: str) -> StoreUnavailable:
        return StoreUnavailable(
            f"DynamoDB {self.what}: {left} items still un{verb} after "
            f"{self.config.unprocessed_retries + 1} attempts (throttled)",
            self.config.backoff_cap_s,
        )

    async def put_all(self, items: list[Item]) -> None:
        """BatchWriteItem every item: 25 a call, calls in parallel, bounded retries."""
        requests = [{"PutRequest": {"Item": item}} for item in items]
        chunks = [requests[i : i + _WRITE_CHUNK] for i in range(0, len(requests), _WRITE_CHUNK)]
        await _all(self._write_chunk(chunk) for chunk in chunks)

    async def _write_chunk(self, requests: list[Item]) -> None:
        pending: Item = {self.name: requests}
        async with self._slots:  # held while backing off: a throttled table gets less load
            for attempt in range(self.config.unprocessed_retries + 1):
                response = await self._raw("batch_write_item", RequestItems=pending)
                pending = response.get("UnprocessedItems") or {}
                if not pending.get(self.name):
                    return
                await asyncio.sleep(self._backoff(attempt))
        raise self._gave_up(len(pending[self.name]), "processed")

    async def get_all(self, keys: list[Item], projection: str | None = None) -> list[Item]:
        """BatchGetItem (consistent) every key: 100 a call; missing keys are absent."""
        chunks = [keys[i : i + _GET_CHUNK] for i in range(0, len(keys), _GET_CHUNK)]
        pages = await _all(self._get_chunk(chunk, projection) for chunk in chunks)
        return [item for page in pages for item in page]

    async def _get_chunk(self, keys: list[Item], projection: str | None) -> list[Item]:
        request: Item = {"Keys": keys, "ConsistentRead": True}
        if projection:
            request["ProjectionExpression"] = projection
        found: list[Item] = []
        async with self._slots:
            for attempt in range(self.config.unprocessed_retries + 1):
                response = await self._raw("batch_get_item", RequestItems={self.name: request})
                found.extend(response.get("Responses", {}).get(self.name, []))
                unprocessed = (response.get("UnprocessedKeys") or {}).get(self.name)
                if not unprocessed:
                    return found
                request = unprocessed  # keeps ConsistentRead and the projection
                await asyncio.sleep(self._backoff(attempt))
        raise self._gave_up(len(request["Keys"]), "read")

    async def pages(self, operation: str, **kwargs: Any) -> AsyncIterator[list[Item]]:
        """Every page of a scan or query (ExclusiveStartKey continuation)."""
        while True:
            response = await self.call(operation, ConsistentRead=True, **kwargs)
            yield response.get("Items", [])
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last


class _OneTable(DelegatedLifecycle):
    """A store that lives in one table: its client, open and close."""

    _table_field: ClassVar[str]  # the DynamoConfig field naming the table
    _sort_type: ClassVar[str] = "S"

    def __init__(self, config: DynamoConfig, session: aioboto3.Session | None = None) -> None:
        """``session``: an aioboto3 session; None uses the SDK's default chain."""
        self.config = config
        table = getattr(config, self._table_field)
        self._table = self._resource = DynamoTable(config, table, self._sort_type, session)
