"""The status table's DynamoDB calls: batched reads, conditional transactions, the run index.

Writes go in ``TransactWriteItems`` of up to 100 items and reads in ``BatchGetItem`` of 100
keys; a call on more sends its chunks ``concurrency`` at a time (no two chunks touch one
item). When a transaction is cancelled, the items whose condition failed are reported as
rejected and the others are sent again. Throttling and 5xx answers are retried by the client
itself (adaptive mode on the hook); this module retries only what botocore cannot:
``UnprocessedKeys`` and the items of a cancelled transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from audio_pipeline.ledger._conditions import Condition, Placeholders

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient
    from types_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

log = logging.getLogger(__name__)

PARTITION_KEY = "uri"
RUN_INDEX = "run_id-index"
WAITING = "awaiting_summary"
"""Set (to :data:`WAITING_VALUE`) on a file exactly while it is ``completed``: transcribed, its
summary not recorded. The ledger's writes keep it so; no other attribute is written with it."""
WAITING_VALUE = "yes"
WAITING_INDEX = "awaiting_summary-index"
KEY_SCHEMA = [{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}]
ATTRIBUTE_DEFINITIONS = [
    {"AttributeName": PARTITION_KEY, "AttributeType": "S"},
    {"AttributeName": "run_id", "AttributeType": "S"},
    {"AttributeName": WAITING, "AttributeType": "S"},
    {"AttributeName": "completed_at", "AttributeType": "S"},
]
GLOBAL_SECONDARY_INDEXES = [
    {
        "IndexName": RUN_INDEX,
        "KeySchema": [{"AttributeName": "run_id", "KeyType": "HASH"}],
        "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["status", "inference_id"]},
    },
    {
        "IndexName": WAITING_INDEX,
        "KeySchema": [
            {"AttributeName": WAITING, "KeyType": "HASH"},
            {"AttributeName": "completed_at", "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    },
]
"""The table's whole schema. ``run_id-index`` finds every file a DAG run holds, so the run's
last task can settle whatever is still in flight, even when the claim task itself failed.
``awaiting_summary-index`` is sparse: it holds only the files transcribed and not yet summarised
(oldest first), so any run finds them, whatever prefix it lists, without a scan."""


def table_definition() -> dict[str, Any]:
    """``CreateTable`` arguments (less the name) that infra/ and the local bootstrap share."""
    return {
        "KeySchema": KEY_SCHEMA,
        "AttributeDefinitions": ATTRIBUTE_DEFINITIONS,
        "GlobalSecondaryIndexes": GLOBAL_SECONDARY_INDEXES,
        "BillingMode": "PAY_PER_REQUEST",
    }


BATCH_GET_LIMIT = 100
TRANSACT_LIMIT = 100
CONCURRENCY = 4
"""Chunks of one read or write in flight at once: four 100-item transactions write what a new
on-demand table sustains before it scales up, within botocore's 10 pooled connections."""
_MAX_ATTEMPTS = 8
_MAX_THROTTLED_ATTEMPTS = 24
"""Retries of a transaction cancelled for capacity: about 100 s at the 5 s ceiling, the time an
on-demand table takes to serve more."""
_THROTTLED = frozenset({"ThrottlingError", "ProvisionedThroughputExceeded"})
"""Cancellation reasons for capacity (botocore does not retry a cancelled transaction)."""

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def dump(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in item.items() if v is not None}


def load(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


@dataclass(frozen=True)
class Put:
    """Write a whole item when ``when`` holds."""

    item: Mapping[str, Any]
    when: Condition

    @property
    def uri(self) -> str:
        return str(self.item[PARTITION_KEY])


@dataclass(frozen=True)
class Update:
    """Set, add to and remove attributes of an existing item when ``when`` holds."""

    uri: str
    when: Condition
    set: Mapping[str, Any] = field(default_factory=dict)
    remove: tuple[str, ...] = ()
    add: Mapping[str, int] = field(default_factory=dict)


Write = Put | Update


@dataclass
class WriteResult:
    applied: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    """URIs whose condition failed: held elsewhere, already settled, or stale."""

    def add(self, other: WriteResult) -> None:
        self.applied.extend(other.applied)
        self.rejected.extend(other.rejected)


def _chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


class Store:
    """Reads and conditional writes of one table, on a low-level boto3 DynamoDB client."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        backoff_base: float = 0.05,
        concurrency: int = CONCURRENCY,
        page_size: int | None = None,
    ) -> None:
        self.client = client
        self.table_name = table_name
        self.backoff_base = backoff_base
        self.concurrency = concurrency
        self.page_size = page_size
        """Items per page of a query or scan (``None``: DynamoDB's 1 MB pages)."""

    # ----------------------------------------------------------------- reads

    def get(self, uris: Iterable[str]) -> dict[str, dict[str, Any]]:
        """``BatchGetItem`` in chunks of 100, retrying ``UnprocessedKeys``; absent URIs are omitted."""
        unique = list(dict.fromkeys(uris))
        found: dict[str, dict[str, Any]] = {}
        for part in self._each(self._get_chunk, _chunks(unique, BATCH_GET_LIMIT)):
            found.update(part)
        return found

    def _get_chunk(self, uris: Sequence[str]) -> dict[str, dict[str, Any]]:
        request: dict[str, Any] = {"Keys": [{PARTITION_KEY: {"S": u}} for u in uris], "ConsistentRead": True}
        found: dict[str, dict[str, Any]] = {}
        pending: dict[str, Any] | None = {self.table_name: request}
        attempt = 0
        while pending:
            response = self.client.batch_get_item(RequestItems=pending)
            for raw in response.get("Responses", {}).get(self.table_name, []):
                item = load(raw)
                found[item[PARTITION_KEY]] = item
            pending = response.get("UnprocessedKeys") or None
            if pending:
                attempt += 1
                self._sleep(attempt, "BatchGetItem returned UnprocessedKeys")
        return found

    def query_run(self, run_id: str) -> Iterator[dict[str, Any]]:
        """Every item of ``run_id`` in the run index, page after page (eventually consistent)."""
        pages = self.client.get_paginator("query").paginate(
            TableName=self.table_name,
            IndexName=RUN_INDEX,
            KeyConditionExpression="run_id = :run",
            ExpressionAttributeValues={":run": {"S": run_id}},
            PaginationConfig={"PageSize": self.page_size} if self.page_size else {},
        )
        for page in pages:
            for raw in page.get("Items", []):
                yield load(raw)

    def query_waiting(self) -> Iterator[str]:
        """The URI of every file in the waiting index, oldest transcript first (eventually consistent)."""
        pages = self.client.get_paginator("query").paginate(
            TableName=self.table_name,
            IndexName=WAITING_INDEX,
            KeyConditionExpression=f"{WAITING} = :waiting",
            ExpressionAttributeValues={":waiting": {"S": WAITING_VALUE}},
            PaginationConfig={"PageSize": self.page_size} if self.page_size else {},
        )
        for page in pages:
            for raw in page.get("Items", []):
                yield raw[PARTITION_KEY]["S"]

    def empty(self) -> bool:
        """Whether the table holds no item (one ``Scan`` of at most one item)."""
        return not self.client.scan(TableName=self.table_name, Limit=1, Select="COUNT")["Count"]

    # ---------------------------------------------------------------- writes

    def write(self, writes: Iterable[Write]) -> WriteResult:
        """Apply each write whose condition holds; a URI written twice in one call is rejected the second time."""
        result = WriteResult()
        seen: set[str] = set()
        ops: list[tuple[str, TransactWriteItemTypeDef]] = []
        for w in writes:
            if w.uri in seen:  # one transaction may touch an item once; a repeat is a duplicate
                result.rejected.append(w.uri)
                continue
            seen.add(w.uri)
            ops.append((w.uri, self._op(w)))
        for part in self._each(self._transact_chunk, _chunks(ops, TRANSACT_LIMIT)):
            result.add(part)
        return result

    def _op(self, w: Write) -> TransactWriteItemTypeDef:
        p = Placeholders()
        condition = w.when.render(p)
        if isinstance(w, Put):
            request: dict[str, Any] = {"TableName": self.table_name, "Item": dump(w.item)}
        else:
            clauses = []
            sets = {k: v for k, v in w.set.items() if v is not None}
            if sets:
                clauses.append("SET " + ", ".join(f"{p.name(k)} = {p.value(v)}" for k, v in sets.items()))
            if w.add:
                clauses.append("ADD " + ", ".join(f"{p.name(k)} {p.value(v)}" for k, v in w.add.items()))
            if w.remove:
                clauses.append("REMOVE " + ", ".join(p.name(k) for k in w.remove))
            request = {
                "TableName": self.table_name,
                "Key": {PARTITION_KEY: {"S": w.uri}},
                "UpdateExpression": " ".join(clauses),
            }
        request["ConditionExpression"] = condition
        request["ExpressionAttributeNames"] = p.names
        if p.values:
            request["ExpressionAttributeValues"] = dump(p.values)
        op: TransactWriteItemTypeDef = {"Put": request} if isinstance(w, Put) else {"Update": request}  # type: ignore[typeddict-item]
        return op

    # -------------------------------------------------------------- internals

    def _each(self, work: Callable[[Sequence[Any]], Any], chunks: Iterable[Sequence[Any]]) -> list[Any]:
        """``work`` on each chunk, ``concurrency`` chunks at a time; the results in chunk order.
        The first error, in whichever chunk, stops what has not started and is raised once the
        started chunks end."""
        chunks = list(chunks)
        if self.concurrency <= 1 or len(chunks) <= 1:
            return [work(chunk) for chunk in chunks]
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="status-table") as pool:
            futures = [pool.submit(work, chunk) for chunk in chunks]
            try:
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                errors = [error for f in futures if f in done and (error := f.exception()) is not None]
                if errors:
                    raise errors[0]
            except BaseException:  # a chunk's error, or this thread's own (SIGTERM, say)
                pool.shutdown(cancel_futures=True)
                raise
            return [future.result() for future in futures]

    def _transact_chunk(self, chunk: Sequence[tuple[str, TransactWriteItemTypeDef]]) -> WriteResult:
        """Write ``chunk`` in one transaction: items whose condition failed are rejected, the
        others (cancelled by a conflicting transaction, say) are sent again."""
        result = WriteResult()
        pending = list(chunk)
        attempt = 0
        while pending:
            try:
                self.client.transact_write_items(TransactItems=[op for _, op in pending])
            except ClientError as err:
                if err.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise
                reasons = err.response.get("CancellationReasons") or []
                if len(reasons) != len(pending):
                    # No per-item reasons: settle each item on its own.
                    for single in pending:
                        result.add(self._transact_chunk([single]))
                    return result
                retry = []
                for (uri, op), reason in zip(pending, reasons, strict=True):
                    if reason.get("Code") == "ConditionalCheckFailed":
                        result.rejected.append(uri)
                    else:
                        retry.append((uri, op))
                pending = retry
                attempt += 1
                if pending:
                    codes = {str(r.get("Code")) for r in reasons} - {"ConditionalCheckFailed", "None"}
                    limit = _MAX_THROTTLED_ATTEMPTS if codes & _THROTTLED else _MAX_ATTEMPTS
                    self._sleep(attempt, f"TransactWriteItems cancelled ({', '.join(sorted(codes))})", limit)
                continue
            result.applied.extend(uri for uri, _ in pending)
            return result
        return result

    def _sleep(self, attempt: int, why: str, limit: int = _MAX_ATTEMPTS) -> None:
        if attempt > limit:
            raise RuntimeError(f"DynamoDB table {self.table_name!r}: gave up after {limit} retries ({why})")
        delay = min(self.backoff_base * 2**attempt, 5.0)
        log.debug("%s; retrying in %.2fs", why, delay)
        time.sleep(delay)
