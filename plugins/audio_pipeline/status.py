"""The status table: its schema, and every write to it (enforcing the moves of :mod:`audio_pipeline.state_machine`).

One item per audio file, keyed by the file's ``s3://bucket/key`` URI::

    processing --> submitted --> completed --> summarized
        |              |           ^  |
        +--> failed <--+-----------+  +--(summary error recorded, stays completed)

``processing`` and ``submitted`` may also go straight to ``completed`` or ``failed``
(a notification can overtake the task that records the submission). ``failed`` is not
final for the claim's own result: a result that arrives late (after the deadline, after
its run ended, after a submission whose answer was lost) moves it to ``completed``, as
nothing but the claim's inference id can be transcribed by it. A file is claimed
by a conditional write, so two runs never own one file; every later write is
conditioned on the claim's inference id, so a late or duplicated notification from an
older claim can never overwrite a newer one. Nothing else writes the table.

Every claim is a lease: it carries a ``deadline`` (epoch seconds; the submission moves it
to submission time + the result window), past which the run that holds it would have
failed the file itself. A file still in flight past its deadline belongs to a run that
ended without settling it (its last task crashed, say), and the next run may claim it.
Summary work is leased the same way: the run that summarises a ``completed`` file first
takes it (``run_id``, a new ``deadline``), so a ``completed`` file without a summary and
without a ``summary_error`` whose deadline has passed was left by a run that died before
summarising it, and the next run takes it for its summary.

Writes are batched in ``TransactWriteItems`` of up to 100 items and reads in ``BatchGetItem``
of 100 keys; a call on more sends its chunks ``concurrency`` at a time (no two chunks touch
one item): the ten reads and ten writes of 1,000 listed files take three rounds each, so a
claim waits on a third of the round trips (7 per 1,000 files with the list page, not 21). When a
transaction is cancelled, the items whose condition failed are reported as rejected and the
others are retried, so a batch costs one call in the common case. Throttling and 5xx answers are
retried by the client itself (adaptive mode on the hook); this module retries only what
botocore cannot: ``UnprocessedKeys`` and the items of a cancelled transaction.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from audio_pipeline.config import PipelineConfig
from audio_pipeline.state_machine import Status, Transition

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient
    from types_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

log = logging.getLogger(__name__)

PARTITION_KEY = "uri"
RUN_INDEX = "run_id-index"
KEY_SCHEMA = [{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}]
ATTRIBUTE_DEFINITIONS = [
    {"AttributeName": PARTITION_KEY, "AttributeType": "S"},
    {"AttributeName": "run_id", "AttributeType": "S"},
]
GLOBAL_SECONDARY_INDEXES = [
    {
        "IndexName": RUN_INDEX,
        "KeySchema": [{"AttributeName": "run_id", "KeyType": "HASH"}],
        "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["status", "inference_id"]},
    }
]
"""The table's whole schema. ``run_id-index`` finds every file a DAG run claimed, so the run's
last task can settle whatever is still in flight, even when the claim task itself failed."""


def table_definition() -> dict[str, Any]:
    """``CreateTable`` arguments (less the name) that infra/ and the local bootstrap share."""
    return {
        "KeySchema": KEY_SCHEMA,
        "AttributeDefinitions": ATTRIBUTE_DEFINITIONS,
        "GlobalSecondaryIndexes": GLOBAL_SECONDARY_INDEXES,
        "BillingMode": "PAY_PER_REQUEST",
    }


NEVER_SENT = "never_sent"
"""Set (``true``) on a file its run failed at its end before sending it to the endpoint: any
later run claims it again, as nothing of it can be transcribed yet."""

DEFAULT_LEASE_SECONDS = PipelineConfig().result_window_seconds
"""A claim's lease with the default Variables: RequestTTLSeconds + InvocationTimeoutSeconds + grace."""

BATCH_GET_LIMIT = 100
TRANSACT_LIMIT = 100
CONCURRENCY = 4
"""Chunks of one read or write in flight at once. Four 100-item transactions of ~100 ms each
write up to 4,000 items a second (8,000 write units: a transactional write costs two), twice
what a new on-demand table sustains (4,000) before it scales up. A throttled transaction comes
back cancelled (reasons ``ThrottlingError``), which botocore does not retry: this class does,
for up to :data:`_MAX_THROTTLED_ATTEMPTS`. Well within botocore's 10 pooled connections."""
_MAX_ATTEMPTS = 8
_MAX_THROTTLED_ATTEMPTS = 24
"""Retries of a transaction cancelled for capacity: about 100 s at the 5 s ceiling, the time an
on-demand table takes to serve more, rather than failing a claim of 100,000 files."""
_THROTTLED = frozenset({"ThrottlingError", "ProvisionedThroughputExceeded"})


_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def inference_id_for(uri: str, etag: str, run_id: str) -> str:
    """The claim's InferenceId: deterministic, so a retried task reuses it (at most 64 chars)."""
    digest = hashlib.sha256(f"{uri}\n{etag}\n{run_id}".encode()).hexdigest()
    return digest[:40]


@dataclass
class WriteResult:
    applied: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    """URIs whose condition failed: claimed elsewhere, already settled, or stale."""

    def add(self, other: WriteResult) -> None:
        self.applied.extend(other.applied)
        self.rejected.extend(other.rejected)


def _dump(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in item.items() if v is not None}


def _load(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


def _chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


class StatusTable:
    """All reads and writes of the status table, on a low-level boto3 DynamoDB client."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        backoff_base: float = 0.05,
        clock: Callable[[], float] = time.time,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self.client = client
        self.table_name = table_name
        self.backoff_base = backoff_base
        self.clock = clock
        self.concurrency = concurrency

    # ----------------------------------------------------------------- reads

    def get_many(self, uris: Iterable[str], attributes: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
        """``BatchGetItem`` in chunks of 100, retrying ``UnprocessedKeys``; absent URIs are omitted."""
        unique = list(dict.fromkeys(uris))
        found: dict[str, dict[str, Any]] = {}
        for part in self._each(lambda chunk: self._get_chunk(chunk, attributes), _chunks(unique, BATCH_GET_LIMIT)):
            found.update(part)
        return found

    def _get_chunk(self, uris: Sequence[str], attributes: Sequence[str] | None) -> dict[str, dict[str, Any]]:
        request: dict[str, Any] = {"Keys": [{PARTITION_KEY: {"S": u}} for u in uris], "ConsistentRead": True}
        if attributes:
            names = {f"#a{i}": a for i, a in enumerate({PARTITION_KEY, *attributes})}
            request["ProjectionExpression"] = ", ".join(names)
            request["ExpressionAttributeNames"] = names
        found: dict[str, dict[str, Any]] = {}
        pending: dict[str, Any] | None = {self.table_name: request}
        attempt = 0
        while pending:
            response = self.client.batch_get_item(RequestItems=pending)
            for raw in response.get("Responses", {}).get(self.table_name, []):
                item = _load(raw)
                found[item[PARTITION_KEY]] = item
            pending = response.get("UnprocessedKeys") or None
            if pending:
                attempt += 1
                self._sleep(attempt, "BatchGetItem returned UnprocessedKeys")
        return found

    def run_items(self, run_id: str) -> Iterator[dict[str, Any]]:
        """Every file claimed by ``run_id`` (``uri``, ``status``, ``inference_id``), from the run index.

        The index is eventually consistent: a write made a moment ago may not show yet.
        """
        paginator = self.client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self.table_name,
            IndexName=RUN_INDEX,
            KeyConditionExpression="run_id = :run",
            ExpressionAttributeValues={":run": {"S": run_id}},
        )
        for page in pages:
            for raw in page.get("Items", []):
                yield _load(raw)

    # ---------------------------------------------------------------- claims

    def claim(
        self,
        files: Sequence[Mapping[str, Any]],
        run_id: str,
        *,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        reprocess_failed: bool = False,
    ) -> WriteResult:
        """Claim ``files`` (dicts with ``uri``, ``etag``, ``size``, ``inference_id``) for ``lease_seconds``.

        A file is claimable when it has no item, when its content changed (new ETag) and
        it is not in flight, when it is in flight past its deadline (an abandoned claim),
        when it failed before it was ever sent (:data:`NEVER_SENT`), or when it failed and
        ``reprocess_failed`` is set.
        """
        condition = (
            "attribute_not_exists(#uri) OR (#etag <> :etag AND NOT #status IN (:processing, :submitted))"
            " OR (#status IN (:processing, :submitted) AND #deadline < :now)"
        )
        names = {"#uri": PARTITION_KEY, "#etag": "etag", "#status": "status", "#deadline": "deadline"}
        if reprocess_failed:
            condition += " OR #status = :failed"
        else:
            condition += " OR (#status = :failed AND #never_sent = :true)"
            names["#never_sent"] = NEVER_SENT
        now = utcnow()
        epoch = int(self.clock())
        ops: list[tuple[str, TransactWriteItemTypeDef]] = []
        for f in files:
            item = {
                PARTITION_KEY: f["uri"],
                "status": Status.PROCESSING.value,
                "etag": f["etag"],
                "size": f["size"],
                "run_id": run_id,
                "inference_id": f["inference_id"],
                "claimed_at": now,
                "updated_at": now,
                "deadline": epoch + lease_seconds,
            }
            values = {
                ":etag": f["etag"],
                ":processing": Status.PROCESSING.value,
                ":submitted": Status.SUBMITTED.value,
                ":now": epoch,
                ":failed": Status.FAILED.value,
            }
            if not reprocess_failed:
                values[":true"] = True
            ops.append(
                (
                    f["uri"],
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": _dump(item),
                            "ConditionExpression": condition,
                            "ExpressionAttributeNames": names,
                            "ExpressionAttributeValues": _dump(values),
                        }
                    },
                )
            )
        return self._transact(ops)

    # ----------------------------------------------------------- transitions

    def apply(self, transitions: Iterable[Transition]) -> WriteResult:
        """Apply state-machine moves, each conditioned on the claim's inference id."""
        now = utcnow()
        ops: list[tuple[str, TransactWriteItemTypeDef]] = []
        for t in transitions:
            sets = {"status": t.to.value, "updated_at": now, **{k: v for k, v in t.attributes.items() if v is not None}}
            names = {f"#s{i}": k for i, k in enumerate(sets)}
            names.update({f"#r{i}": k for i, k in enumerate(t.remove)})
            names.update({"#status": "status", "#iid": "inference_id"})
            names.update({f"#q{i}": k for i, k in enumerate(t.require)})
            values = {f":s{i}": v for i, v in enumerate(sets.values())}
            values.update({f":q{i}": v for i, v in enumerate(t.require.values()) if v is not None})
            allowed = {f":from{i}": s.value for i, s in enumerate(t.allowed_from)}
            values.update(allowed)
            values[":iid"] = t.inference_id
            condition = f"#iid = :iid AND #status IN ({', '.join(allowed)})"
            condition += "".join(
                f" AND attribute_not_exists(#q{i})" if v is None else f" AND #q{i} = :q{i}"
                for i, v in enumerate(t.require.values())
            )
            expression = "SET " + ", ".join(f"#s{i} = :s{i}" for i in range(len(sets)))
            if t.remove:
                expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(t.remove)))
            ops.append(
                (
                    t.uri,
                    {
                        "Update": {
                            "TableName": self.table_name,
                            "Key": {PARTITION_KEY: {"S": t.uri}},
                            "UpdateExpression": expression,
                            "ConditionExpression": condition,
                            "ExpressionAttributeNames": names,
                            "ExpressionAttributeValues": _dump(values),
                        }
                    },
                )
            )
        return self._transact(ops)

    # -------------------------------------------------------------- internals

    def _transact(self, ops: list[tuple[str, TransactWriteItemTypeDef]]) -> WriteResult:
        result = WriteResult()
        seen: set[str] = set()
        unique = []
        for uri, op in ops:
            if uri in seen:  # one transaction may touch an item once; a repeat is a duplicate
                result.rejected.append(uri)
                continue
            seen.add(uri)
            unique.append((uri, op))
        for part in self._each(self._transact_chunk, _chunks(unique, TRANSACT_LIMIT)):
            result.add(part)
        return result

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
        """Write ``chunk`` in one transaction. Throttling and 5xx answers were retried by the
        client already (adaptive mode, :class:`~audio_pipeline.hooks.status_table.StatusTableHook`);
        what it cannot do is read a cancellation item by item: items whose condition failed are
        rejected, the others (a conflicting transaction, say) are sent again."""
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
