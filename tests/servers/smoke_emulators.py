"""Smoke-test the local emulators with the Python SDKs the backends use.

Run: ``python tests/servers/smoke_emulators.py`` (from the repo root, in the venv).

For each emulator: start it, do real writes and reads, probe the features the
backends rely on, stop it, and print a table of what works plus timings.
Exit code 0 when every emulator started and every "required" check behaved as
the real service does; known emulator gaps are reported as ``GAP`` and do not
fail the run.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import traceback
import uuid
import warnings
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.servers.emulators import (
    COSMOS_EMULATOR_KEY,
    DYNAMODB_ACCESS_KEY_ID,
    DYNAMODB_REGION,
    DYNAMODB_SECRET_ACCESS_KEY,
    FIRESTORE_PROJECT,
    CosmosEmulator,
    DynamoDBLocal,
    FirestoreEmulator,
    ServerUnavailable,
)

# Status of one check: OK = behaves like the real service; GAP = known emulator
# gap (reported, not fatal); FAIL = unexpected.
OK, GAP, FAIL = "OK", "GAP", "FAIL"


@dataclass
class Result:
    server: str
    check: str
    status: str
    detail: str
    seconds: float


RESULTS: list[Result] = []
TIMINGS: dict[str, dict[str, float]] = {}


def qualname(exc: BaseException) -> str:
    return f"{type(exc).__module__}.{type(exc).__qualname__}"


async def run_check(
    server: str,
    name: str,
    body: Callable[[], Awaitable[tuple[str, str]]],
) -> None:
    began = time.perf_counter()
    try:
        status, detail = await body()
    except Exception as exc:
        status, detail = FAIL, f"unexpected {qualname(exc)}: {str(exc)[:300]}"
        traceback.print_exc()
    RESULTS.append(Result(server, name, status, detail, time.perf_counter() - began))


# --------------------------------------------------------------------------- DynamoDB


async def smoke_dynamodb(server: DynamoDBLocal) -> None:
    import aioboto3  # noqa: PLC0415

    session = aioboto3.Session(
        aws_access_key_id=DYNAMODB_ACCESS_KEY_ID,
        aws_secret_access_key=DYNAMODB_SECRET_ACCESS_KEY,
        region_name=DYNAMODB_REGION,
    )
    name = "dynamodb"
    table = "smoke_events"
    async with session.client("dynamodb", endpoint_url=server.endpoint) as ddb:

        async def create_table() -> tuple[str, str]:
            await ddb.create_table(
                TableName=table,
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "pos", "AttributeType": "N"},
                ],
                KeySchema=[
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "pos", "KeyType": "RANGE"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
            desc = await ddb.describe_table(TableName=table)
            return OK, f"TableStatus={desc['Table']['TableStatus']}"

        async def put_get() -> tuple[str, str]:
            item = {"pk": {"S": "t1#s1"}, "pos": {"N": "1"}, "body": {"B": b"\x00hello"}}
            await ddb.put_item(TableName=table, Item=item)
            got = await ddb.get_item(
                TableName=table, Key={"pk": {"S": "t1#s1"}, "pos": {"N": "1"}}, ConsistentRead=True
            )
            same = got.get("Item") == item
            return (OK if same else FAIL), f"round trip equal={same}"

        async def conditional_put() -> tuple[str, str]:
            try:
                await ddb.put_item(
                    TableName=table,
                    Item={"pk": {"S": "t1#s1"}, "pos": {"N": "1"}},
                    ConditionExpression="attribute_not_exists(pk)",
                )
            except ddb.exceptions.ClientError as exc:
                code = exc.response["Error"]["Code"]
                http = exc.response["ResponseMetadata"]["HTTPStatusCode"]
                ok = code == "ConditionalCheckFailedException"
                return (OK if ok else FAIL), f"{qualname(exc)} Code={code} HTTP {http}"
            return FAIL, "no error on conflicting conditional put"

        async def transact_write() -> tuple[str, str]:
            ok_tx = await ddb.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": table, "Item": {"pk": {"S": "tx"}, "pos": {"N": "1"}}}},
                    {"Put": {"TableName": table, "Item": {"pk": {"S": "tx"}, "pos": {"N": "2"}}}},
                ]
            )
            assert "ResponseMetadata" in ok_tx
            try:
                await ddb.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": table,
                                "Item": {"pk": {"S": "tx"}, "pos": {"N": "3"}},
                                "ConditionExpression": "attribute_not_exists(pk)",
                            }
                        },
                        {
                            "Put": {
                                "TableName": table,
                                "Item": {"pk": {"S": "tx"}, "pos": {"N": "1"}, "v": {"S": "x"}},
                                "ConditionExpression": "attribute_not_exists(pk)",
                                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                            }
                        },
                    ]
                )
            except ddb.exceptions.ClientError as exc:
                code = exc.response["Error"]["Code"]
                http = exc.response["ResponseMetadata"]["HTTPStatusCode"]
                reasons = exc.response.get("CancellationReasons")
                leaked = await ddb.get_item(
                    TableName=table, Key={"pk": {"S": "tx"}, "pos": {"N": "3"}}, ConsistentRead=True
                )
                atomic = "Item" not in leaked
                ok = (
                    code == "TransactionCanceledException"
                    and isinstance(reasons, list)
                    and [r.get("Code") for r in reasons] == ["None", "ConditionalCheckFailed"]
                    and "Item" in reasons[1]
                    and atomic
                )
                return (OK if ok else FAIL), (
                    f"{qualname(exc)} Code={code} HTTP {http}; "
                    f"response['CancellationReasons']={json.dumps(reasons)}; atomic={atomic}"
                )
            return FAIL, "no error on failing transaction"

        async def batch_get() -> tuple[str, str]:
            keys = [{"pk": {"S": "tx"}, "pos": {"N": str(i)}} for i in (1, 2, 99)]
            got = await ddb.batch_get_item(
                RequestItems={table: {"Keys": keys, "ConsistentRead": True}}
            )
            found = sorted(int(i["pos"]["N"]) for i in got["Responses"][table])
            unprocessed = got.get("UnprocessedKeys")
            ok = found == [1, 2]
            return (OK if ok else FAIL), f"found pos={found}, UnprocessedKeys={unprocessed}"

        async def query_numeric() -> tuple[str, str]:
            for pos in range(1, 11):
                await ddb.put_item(TableName=table, Item={"pk": {"S": "q"}, "pos": {"N": str(pos)}})
            page = await ddb.query(
                TableName=table,
                KeyConditionExpression="pk = :pk AND pos > :after",
                ExpressionAttributeValues={":pk": {"S": "q"}, ":after": {"N": "3"}},
                ScanIndexForward=True,
                ConsistentRead=True,
                Limit=4,
            )
            got = [int(i["pos"]["N"]) for i in page["Items"]]
            lek = page.get("LastEvaluatedKey")
            page2 = await ddb.query(
                TableName=table,
                KeyConditionExpression="pk = :pk AND pos > :after",
                ExpressionAttributeValues={":pk": {"S": "q"}, ":after": {"N": "3"}},
                ExclusiveStartKey=lek,
                Limit=4,
            )
            got2 = [int(i["pos"]["N"]) for i in page2["Items"]]
            ok = got == [4, 5, 6, 7] and got2 == [8, 9, 10]
            return (OK if ok else FAIL), f"page1={got} LastEvaluatedKey={lek} page2={got2}"

        async def batch_write_limit() -> tuple[str, str]:
            items = [
                {"PutRequest": {"Item": {"pk": {"S": "bw"}, "pos": {"N": str(i)}}}}
                for i in range(26)
            ]
            try:
                await ddb.batch_write_item(RequestItems={table: items})
            except ddb.exceptions.ClientError as exc:
                code = exc.response["Error"]["Code"]
                return (OK if code == "ValidationException" else FAIL), f"26 items: Code={code}"
            return FAIL, "26-item BatchWriteItem accepted"

        await run_check(name, "create_table", create_table)
        await run_check(name, "put_item/get_item", put_get)
        await run_check(name, "conditional put conflict", conditional_put)
        await run_check(name, "TransactWriteItems+Condition", transact_write)
        await run_check(name, "BatchGetItem ConsistentRead", batch_get)
        await run_check(name, "Query numeric sort key", query_numeric)
        await run_check(name, "BatchWriteItem >25", batch_write_limit)


# -------------------------------------------------------------------------- Firestore


async def smoke_firestore(server: FirestoreEmulator) -> None:
    import os  # noqa: PLC0415

    from google.api_core import exceptions as gexc  # noqa: PLC0415
    from google.cloud import firestore  # noqa: PLC0415
    from google.cloud.firestore_v1.base_query import FieldFilter  # noqa: PLC0415

    os.environ.update(server.env())
    client = firestore.AsyncClient(project=FIRESTORE_PROJECT)
    name = "firestore"
    run = uuid.uuid4().hex[:8]
    col = client.collection(f"smoke_{run}")

    async def set_get() -> tuple[str, str]:
        ref = col.document("a")
        await ref.set({"stream": "s1", "pos": 1, "body": b"\x00hi"})
        snap = await ref.get()
        ok = snap.exists and snap.to_dict() == {"stream": "s1", "pos": 1, "body": b"\x00hi"}
        return (OK if ok else FAIL), f"exists={snap.exists} data={snap.to_dict()}"

    async def batch_commit() -> tuple[str, str]:
        batch = client.batch()
        for pos in range(1, 21):
            batch.set(col.document(f"e{pos:04d}"), {"stream": "s2", "pos": pos})
        results = await batch.commit()
        snaps = [s async for s in col.where(filter=FieldFilter("stream", "==", "s2")).stream()]
        ok = len(results) == 20 and len(snaps) == 20
        return (OK if ok else FAIL), f"write_results={len(results)} docs_read={len(snaps)}"

    async def batch_atomic() -> tuple[str, str]:
        batch = client.batch()
        batch.set(col.document("atomic-new"), {"stream": "s3", "pos": 1})
        batch.create(col.document("e0001"), {"stream": "s2", "pos": 1})  # exists already
        try:
            await batch.commit()
        except gexc.GoogleAPICallError as exc:
            leaked = (await col.document("atomic-new").get()).exists
            status = GAP if leaked else OK
            return status, f"commit raised {qualname(exc)}; earlier write applied={leaked}"
        return FAIL, "batch with conflicting create() committed"

    async def create_conflict() -> tuple[str, str]:
        try:
            await col.document("a").create({"stream": "s1", "pos": 1})
        except gexc.GoogleAPICallError as exc:
            ok = isinstance(exc, gexc.AlreadyExists)
            detail = f"{qualname(exc)} code={exc.code} grpc={exc.grpc_status_code}"
            return (OK if ok else FAIL), detail
        return FAIL, "create() over existing doc succeeded"

    async def range_query() -> tuple[str, str]:
        query = (
            col.where(filter=FieldFilter("stream", "==", "s2"))
            .where(filter=FieldFilter("pos", ">", 5))
            .order_by("pos")
            .limit(4)
        )
        got = [s.get("pos") async for s in query.stream()]
        ok = got == [6, 7, 8, 9]
        return (OK if ok else FAIL), f"pos={got}"

    async def get_all() -> tuple[str, str]:
        refs = [col.document("e0003"), col.document("missing"), col.document("e0001")]
        snaps = [s async for s in client.get_all(refs)]
        seen = {s.id: s.exists for s in snaps}
        ok = seen == {"e0003": True, "missing": False, "e0001": True}
        return (OK if ok else FAIL), f"exists by id={seen} (order not guaranteed)"

    async def transaction() -> tuple[str, str]:
        ref = col.document("counter")
        await ref.set({"n": 0})

        @firestore.async_transactional
        async def bump(tx: Any) -> int:
            snap = await ref.get(transaction=tx)
            n = int(snap.get("n")) + 1
            tx.update(ref, {"n": n})
            return n

        first = await bump(client.transaction())
        await asyncio.gather(*(bump(client.transaction()) for _ in range(5)))
        final = (await ref.get()).get("n")
        status = OK if (first == 1 and final == 6) else GAP
        return status, f"single tx committed n={first}; after 5 concurrent bumps n={final} (want 6)"

    async def cursor_ignored() -> tuple[str, str]:
        base = col.where(filter=FieldFilter("stream", "==", "s2")).order_by("pos")
        got = [s.get("pos") async for s in base.start_after({"pos": 15}).limit(3).stream()]
        ok = got == [16, 17, 18]
        return (OK if ok else GAP), f"start_after(pos=15) gave {got}"

    await run_check(name, "set/get", set_get)
    await run_check(name, "WriteBatch commit (20)", batch_commit)
    await run_check(name, "WriteBatch atomicity", batch_atomic)
    await run_check(name, "create() conflict", create_conflict)
    await run_check(name, "where==,where>,order_by,limit", range_query)
    await run_check(name, "get_all(refs)", get_all)
    await run_check(name, "transactions", transaction)
    await run_check(name, "start_after cursor", cursor_ignored)
    await client._firestore_api.transport.close()  # AsyncClient.close() leaves gRPC open
    client.close()  # type: ignore[no-untyped-call]


# ----------------------------------------------------------------------------- Cosmos


async def smoke_cosmos(server: CosmosEmulator) -> None:
    from azure.core import MatchConditions  # noqa: PLC0415
    from azure.cosmos import PartitionKey  # noqa: PLC0415
    from azure.cosmos import exceptions as cexc  # noqa: PLC0415
    from azure.cosmos.aio import CosmosClient  # noqa: PLC0415

    name = "cosmos"
    async with CosmosClient(
        server.endpoint, credential=COSMOS_EMULATOR_KEY, connection_verify=False
    ) as client:
        db = await client.create_database_if_not_exists("smoke")
        container = await db.create_container_if_not_exists(
            "events", partition_key=PartitionKey(path="/pk")
        )

        async def create_if_not_exists() -> tuple[str, str]:
            db2 = await client.create_database_if_not_exists("smoke")
            c2 = await db2.create_container_if_not_exists(
                "events", partition_key=PartitionKey(path="/pk")
            )
            props = await c2.read()
            return OK, f"idempotent; partitionKey={props.get('partitionKey')}"

        async def upsert_read() -> tuple[str, str]:
            doc = {"id": "e1", "pk": "t1|s1", "position": 1, "body": "x"}
            await container.upsert_item(doc)
            await container.upsert_item({**doc, "body": "y"})
            got = await container.read_item("e1", partition_key="t1|s1")
            ok = got["body"] == "y" and got["position"] == 1
            return (OK if ok else FAIL), f"read back body={got['body']} _etag={got.get('_etag')}"

        async def read_missing() -> tuple[str, str]:
            try:
                await container.read_item("nope", partition_key="t1|s1")
            except cexc.CosmosHttpResponseError as exc:
                ok = isinstance(exc, cexc.CosmosResourceNotFoundError)
                return (OK if ok else GAP), f"{qualname(exc)} status_code={exc.status_code}"
            return FAIL, "no error"

        async def read_missing_by_query() -> tuple[str, str]:
            sql = "SELECT * FROM c WHERE c.pk = @pk AND c.id = @id"
            params: list[dict[str, object]] = [
                {"name": "@pk", "value": "t1|s1"},
                {"name": "@id", "value": "nope"},
            ]
            found = [i async for i in container.query_items(sql, parameters=params)]
            params[1]["value"] = "e1"
            hit = [i["id"] async for i in container.query_items(sql, parameters=params)]
            ok = found == [] and hit == ["e1"]
            return (OK if ok else FAIL), f"missing -> {found}, present -> {hit}"

        async def create_conflict() -> tuple[str, str]:
            try:
                await container.create_item({"id": "e1", "pk": "t1|s1", "position": 1})
            except cexc.CosmosHttpResponseError as exc:
                ok = isinstance(exc, cexc.CosmosResourceExistsError)
                return (OK if ok else FAIL), f"{qualname(exc)} status_code={exc.status_code}"
            return FAIL, "no error"

        async def etag_precondition() -> tuple[str, str]:
            got = await container.read_item("e1", partition_key="t1|s1")
            stale = got["_etag"]
            await container.upsert_item({**got, "body": "z"})
            try:
                await container.replace_item(
                    "e1",
                    {**got, "body": "w"},
                    etag=stale,
                    match_condition=MatchConditions.IfNotModified,
                )
            except cexc.CosmosHttpResponseError as exc:
                ok = isinstance(exc, cexc.CosmosAccessConditionFailedError)
                return (OK if ok else FAIL), f"{qualname(exc)} status_code={exc.status_code}"
            return FAIL, "stale etag accepted"

        async def query_ordered() -> tuple[str, str]:
            for pk in ("t1|s2", "t1|s3"):
                for pos in (5, 3, 1, 4, 2):
                    await container.upsert_item({"id": f"{pk}-{pos}", "pk": pk, "position": pos})
            sql = "SELECT * FROM c WHERE c.pk = @pk AND c.position > @after ORDER BY c.position"
            params: list[dict[str, object]] = [
                {"name": "@pk", "value": "t1|s2"},
                {"name": "@after", "value": 1},
            ]
            items = [
                (i["pk"], i["position"])
                async for i in container.query_items(sql, parameters=params, partition_key="t1|s2")
            ]
            ok = items == [("t1|s2", p) for p in (2, 3, 4, 5)]
            # partition_key= alone (no pk in WHERE): does the emulator honour it?
            only_pk_arg = [
                i["pk"]
                async for i in container.query_items(
                    "SELECT * FROM c WHERE c.position > @after ORDER BY c.position",
                    parameters=[{"name": "@after", "value": 1}],
                    partition_key="t1|s2",
                )
            ]
            honoured = set(only_pk_arg) == {"t1|s2"}
            return (OK if ok else FAIL), (
                f"WHERE c.pk=@pk ... ORDER BY c.position -> {[p for _, p in items]}; "
                f"partition_key= kwarg without pk in WHERE honoured={honoured} "
                f"(pks seen {sorted(set(only_pk_arg))})"
            )

        async def query_pages() -> tuple[str, str]:
            sql = "SELECT * FROM c WHERE c.pk = @pk ORDER BY c.position"
            params: list[dict[str, object]] = [{"name": "@pk", "value": "t1|s3"}]
            pager = container.query_items(
                sql, parameters=params, partition_key="t1|s3", max_item_count=2
            ).by_page()
            pages = [[i["position"] async for i in page] async for page in pager]
            ok = [p for page in pages for p in page] == [1, 2, 3, 4, 5]
            return (OK if ok else FAIL), f"max_item_count=2 pages={pages}"

        async def no_where() -> tuple[str, str]:
            try:
                n = len([i async for i in container.query_items("SELECT * FROM c")])
            except cexc.CosmosHttpResponseError as exc:
                return GAP, f"{qualname(exc)} status_code={exc.status_code}"
            return OK, f"returned {n} items"

        async def item_batch() -> tuple[str, str]:
            ops: list[tuple[Any, ...]] = [
                ("upsert", ({"id": "b1", "pk": "t1|b", "position": 1},)),
                ("upsert", ({"id": "b2", "pk": "t1|b", "position": 2},)),
            ]
            try:
                res = await container.execute_item_batch(ops, partition_key="t1|b")
            except (cexc.CosmosHttpResponseError, cexc.CosmosBatchOperationError) as exc:
                return GAP, f"{qualname(exc)} status_code={exc.status_code}"
            return OK, f"{len(res)} results"

        await run_check(name, "create_*_if_not_exists /pk", create_if_not_exists)
        await run_check(name, "upsert_item/read_item", upsert_read)
        await run_check(name, "read_item missing", read_missing)
        await run_check(name, "point read via query", read_missing_by_query)
        await run_check(name, "create_item conflict", create_conflict)
        await run_check(name, "replace_item stale etag", etag_precondition)
        await run_check(name, "query params+ORDER BY", query_ordered)
        await run_check(name, "query paging", query_pages)
        await run_check(name, "query without WHERE", no_where)
        await run_check(name, "execute_item_batch", item_batch)
    await run_check(name, "429 surface (fake server)", cosmos_throttle_surface)


class _ThrottlingHandler(BaseHTTPRequestHandler):
    """Answers the account read, then 429 to everything (Cosmos wire format)."""

    account: bytes = b""

    def _reply(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.command == "GET" and self.path == "/":
            body, code, extra = self.account, 200, {}
        else:
            body = json.dumps({"code": "TooManyRequests", "message": "throttled"}).encode()
            code, extra = 429, {"x-ms-retry-after-ms": "10", "x-ms-substatus": "3200"}
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _reply  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        return


async def cosmos_throttle_surface() -> tuple[str, str]:
    from azure.cosmos import exceptions as cexc  # noqa: PLC0415
    from azure.cosmos.aio import CosmosClient  # noqa: PLC0415

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _ThrottlingHandler)
    port = httpd.server_address[1]
    _ThrottlingHandler.account = json.dumps(
        {
            "id": "localhost",
            "_rid": "localhost",
            "writableLocations": [
                {"name": "South Central US", "databaseAccountEndpoint": f"http://127.0.0.1:{port}/"}
            ],
            "readableLocations": [
                {"name": "South Central US", "databaseAccountEndpoint": f"http://127.0.0.1:{port}/"}
            ],
            "enableMultipleWriteLocations": False,
            "userReplicationPolicy": {"minReplicaSetSize": 1, "maxReplicasetSize": 4},
            "userConsistencyPolicy": {"defaultConsistencyLevel": "Session"},
            "systemReplicationPolicy": {"minReplicaSetSize": 1, "maxReplicasetSize": 4},
            "readPolicy": {"primaryReadCoefficient": 1, "secondaryReadCoefficient": 1},
        }
    ).encode()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        async with CosmosClient(
            f"http://127.0.0.1:{port}/",
            credential=COSMOS_EMULATOR_KEY,
            retry_throttle_total=2,
        ) as client:
            db = client.get_database_client("db")
            began = time.perf_counter()
            try:
                await db.read()
            except cexc.CosmosHttpResponseError as exc:
                waited = time.perf_counter() - began
                headers = {
                    k: v
                    for k, v in exc.headers.items()
                    if k.lower() in {"x-ms-retry-after-ms", "x-ms-substatus"}
                }
                last: Mapping[str, Any] = client.client_connection.last_response_headers or {}
                retries = {k: v for k, v in last.items() if "throttle" in k.lower()}
                ok = exc.status_code == 429
                return (OK if ok else FAIL), (
                    f"{qualname(exc)} status_code={exc.status_code} sub_status={exc.sub_status} "
                    f"headers={headers} after SDK retries {retries} in {waited:.2f}s"
                )
            return FAIL, "no error"
    finally:
        httpd.shutdown()
        httpd.server_close()


# ------------------------------------------------------------------------------- main


async def smoke(
    server_name: str,
    server: DynamoDBLocal | FirestoreEmulator | CosmosEmulator,
    body: Callable[[Any], Awaitable[None]],
) -> None:
    began = time.perf_counter()
    try:
        server.start()
    except ServerUnavailable as exc:
        RESULTS.append(Result(server_name, "start", FAIL, str(exc)[:500], 0.0))
        return
    timing = TIMINGS.setdefault(server_name, {})
    timing["start_s"] = time.perf_counter() - began
    try:
        began = time.perf_counter()
        await body(server)
        timing["checks_s"] = time.perf_counter() - began
    finally:
        began = time.perf_counter()
        server.stop()
        timing["stop_s"] = time.perf_counter() - began


async def main() -> int:
    warnings.simplefilter("ignore")  # SDK deprecation noise
    await smoke("dynamodb", DynamoDBLocal(), smoke_dynamodb)
    await smoke("firestore", FirestoreEmulator(), smoke_firestore)
    await smoke("cosmos", CosmosEmulator(), smoke_cosmos)

    width = max(len(r.check) for r in RESULTS)
    for r in RESULTS:
        ms = r.seconds * 1000
        print(f"{r.server:<9} {r.status:<4} {r.check:<{width}} {ms:7.0f} ms  {r.detail}")
    print()
    for server_name, timing in TIMINGS.items():
        parts = ", ".join(f"{k}={v:.2f}" for k, v in timing.items())
        print(f"timings {server_name}: {parts}")
    counts = {s: sum(r.status == s for r in RESULTS) for s in (OK, GAP, FAIL)}
    print(
        f"\nsummary: {counts[OK]} ok, {counts[GAP]} known emulator gaps, {counts[FAIL]} unexpected"
    )
    failed = counts[FAIL]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
