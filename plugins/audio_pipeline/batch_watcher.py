"""Settling a batch: record notifications, reconcile from S3, and enforce deadlines.

Used by the sensor (poke mode) and its trigger (deferred mode) alike. It holds no state
that cannot be rebuilt from the batch manifest and the status table, so a restarted
triggerer loses nothing: every notification is written to the table before the caller
deletes it from the queue.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from audio_pipeline.batches import ClaimedFile
from audio_pipeline.config import DEFAULTS
from audio_pipeline.ledger import FileRecord, Ledger, Result, Status
from audio_pipeline.notifications import InferenceNotification, NotificationFormatError, parse_notification
from audio_pipeline.pinning import source_of
from audio_pipeline.s3_uris import object_exists, split_s3_uri

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client
    from types_boto3_sqs.type_defs import DeleteMessageBatchRequestEntryTypeDef, MessageTypeDef

log = logging.getLogger(__name__)

_FAILURE_EXCERPT_BYTES = 2000
REFRESH_INTERVAL_SECONDS = 30
"""How often a waiting batch's pending files are read again from the table."""
REREAD_CHUNK = 100
"""Pending files re-read at a time (one ``BatchGetItem``) by a partial refresh."""
RECONCILE_LOOKS = 200
"""Overtaken pending files looked for in S3 per periodic reconcile at most (up to two
``HeadObject`` each): files of the batch submitted before one whose result is already recorded,
or with it."""
HEAD_LOOKS = 5
"""The oldest pending files looked for in S3 at a periodic reconcile, overtaken or not, each
again after twice as long as the time before: a batch whose every notification is lost still
settles before its deadline, and one whose files wait in the endpoint's queue costs a few calls."""
FULL_REFRESH_SECONDS = 600
"""How often every pending file is re-read; in between, from the oldest submission on until a
chunk shows no change (the endpoint's queue is first in, first out)."""
_KEY_MAX_BYTES = 2048
"""DynamoDB's limit for a partition key: a longer ``inputLocation`` cannot name a file of the table."""


@dataclass
class MessageBatchResult:
    delete: list[DeleteMessageBatchRequestEntryTypeDef] = field(default_factory=list)
    """``{"Id", "ReceiptHandle"}`` entries, ready for ``DeleteMessageBatch``."""
    recorded: int = 0
    ignored: int = 0
    malformed: int = 0


class BatchWatcher:
    """Tracks the still-pending files of one batch until each is ``completed`` or ``failed``."""

    def __init__(
        self,
        ledger: Ledger,
        s3_client: S3Client,
        files: Sequence[ClaimedFile],
        *,
        fallback_deadline: float,
        output_path: str | None = None,
        refresh_interval_seconds: float = REFRESH_INTERVAL_SECONDS,
        reconcile_interval_seconds: float = DEFAULTS.reconcile_interval_seconds,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ledger = ledger
        self.s3 = s3_client
        self.output_path = output_path
        """The endpoint's ``S3OutputPath``: a success naming an object elsewhere is never recorded."""
        self.clock = clock
        self.fallback_deadline = fallback_deadline
        self.refresh_interval_seconds = refresh_interval_seconds
        self.reconcile_interval_seconds = reconcile_interval_seconds
        self._last_refresh = self._last_reconcile = self._last_full_refresh = clock()
        self.files = {f["uri"]: f["inference_id"] for f in files}
        self.pending: dict[str, FileRecord | None] = {uri: None for uri in self.files}
        """Each pending file's record as last read (None before the first read)."""
        self.settled: Counter[str] = Counter()
        self._looked_at: dict[str, float] = {}
        self._next_head_look: dict[str, tuple[float, float]] = {}
        """uri -> (when the oldest files may be looked for again, the wait after that)"""
        self._latest_settled = -math.inf
        """The latest submission (as its deadline) among this batch's settled files."""

    @property
    def done(self) -> bool:
        return not self.pending

    # ------------------------------------------------------------ notifications

    def record_messages(self, messages: Sequence[MessageTypeDef]) -> MessageBatchResult:
        """Write every notification in ``messages`` to the table; say which to delete.

        A notification names its file by inference id first (this batch's files), then by
        ``inputLocation``. Notifications of other batches and runs are recorded too. One
        whose claim is unknown or already settled (a duplicate, or a stale claim) is
        dropped. A message that is not a well-formed notification touches nothing and is
        kept on the queue, so that SQS moves it to the dead-letter queue after
        ``maxReceiveCount`` deliveries, where it can be read.
        """
        result = MessageBatchResult()
        by_inference_id = {iid: uri for uri, iid in self.files.items()}
        receipts: dict[tuple[str, str], list[DeleteMessageBatchRequestEntryTypeDef]] = {}
        rounds: list[dict[str, Result]] = []  # each writes a file once: a transaction touches an item once
        for i, message in enumerate(messages):
            entry: DeleteMessageBatchRequestEntryTypeDef = {"Id": str(i), "ReceiptHandle": message["ReceiptHandle"]}
            try:
                notification = parse_notification(message["Body"])
            except NotificationFormatError as err:
                result.malformed += 1
                log.error("Left message %s on the queue for the dead-letter queue: %s", message.get("MessageId"), err)
                continue
            uri = by_inference_id.get(notification.inference_id) or _table_key(notification)
            if not uri:
                result.ignored += 1
                result.delete.append(entry)
                log.warning("Dropped notification for unknown inference id %s", notification.inference_id)
                continue
            key = (uri, notification.inference_id)
            if key in receipts:  # the same notification delivered twice
                receipts[key].append(entry)
                result.ignored += 1
                continue
            receipts[key] = [entry]
            free = next((r for r in rounds if uri not in r), None)
            if free is None:
                rounds.append(free := {})
            free[uri] = notification.result(uri)
        for results in rounds:
            written = self.ledger.record_results(list(results.values()), self.output_path)
            result.recorded += len(written.applied)
            result.ignored += len(written.rejected)
            for uri in written.rejected:
                log.info(
                    "Notification for %s is a duplicate, belongs to a settled or unknown claim, or names an output "
                    "other than the one recorded at submission",
                    uri,
                )
            for r in results.values():
                if r.uri in self.pending and r.uri in written.applied and self.files[r.uri] == r.inference_id:
                    self._settle(r.uri, _status(r))
        for entries in receipts.values():
            result.delete.extend(entries)
        return result

    # ------------------------------------------------------------------ checks

    def tick(self) -> None:
        """Periodic work after each receive: refresh when due; look in S3 every
        ``reconcile_interval_seconds`` however busy the queue (a lost notification hides
        among the others on a shared queue); enforce deadlines."""
        now = self.clock()
        if now - self._last_full_refresh >= FULL_REFRESH_SECONDS:
            self.refresh()
            self._last_full_refresh = self._last_refresh = now
        elif now - self._last_refresh >= self.refresh_interval_seconds:
            self.refresh(full=False)
            self._last_refresh = now
        if now - self._last_reconcile >= self.reconcile_interval_seconds:
            self.reconcile()
            self._last_reconcile = now
        self.expire()

    def refresh(self, full: bool = True) -> None:
        """Re-read pending files: other sensors may have recorded their notifications.

        ``full``: all of them. Otherwise from the oldest submission on, one ``BatchGetItem``
        (:data:`REREAD_CHUNK` files) at a time, until a chunk in which
        none settled: results come about in submission order, so the files behind such a chunk
        are still in the endpoint's queue (a batch of 1,500 files waiting costs one read, not
        fifteen).
        """
        if full:
            self._reread(list(self.pending))
            return
        order = sorted(self.pending, key=self._submitted)
        for start in range(0, len(order), REREAD_CHUNK):
            if not self._reread(order[start : start + REREAD_CHUNK]):
                return

    def _reread(self, uris: Sequence[str]) -> int:
        """Re-read ``uris`` (pending files) from the table; how many of them have settled."""
        if not uris:
            return 0
        before = len(self.pending)
        records = self.ledger.get(uris)
        for uri in uris:
            record = records.get(uri)
            if record is None or record.inference_id != self.files[uri]:
                log.warning("%s is no longer claimed by this batch; leaving it", uri)
                self._settle(uri, "lost claim")
            elif not record.in_flight:
                self._settle(uri, record.status)
            else:
                self.pending[uri] = record
        return before - len(self.pending)

    def reconcile(self, uris: Iterable[str] | None = None) -> None:
        """Settle pending files whose output or failure object exists although no notification
        came: ``uris``, or those worth a look (:meth:`_worth_a_look`), each re-read from the
        table first (another sensor may have recorded it)."""
        candidates = list(self._worth_a_look() if uris is None else uris)
        self._reread([u for u in candidates if u in self.pending])
        results = []
        now = self.clock()
        for uri in [u for u in candidates if u in self.pending]:
            self._looked_at[uri] = now
            record, iid = self.pending[uri], self.files[uri]
            output = record.output_location if record else None
            failure = record.failure_location if record else None
            if output and object_exists(self.s3, output):
                results.append(Result(uri, iid, output_location=output))
            elif failure and object_exists(self.s3, failure):
                reason = f"endpoint wrote a failure object ({failure}): {self._excerpt(failure)}"
                results.append(Result(uri, iid, failure_reason=reason))
        self._apply(results, "reconciled from S3")

    def _worth_a_look(self) -> list[str]:
        """The pending files a periodic reconcile looks for in S3: those overtaken (submitted
        before a file of the batch whose result is recorded, or with it: one group of the
        submitter shares a deadline, to the second; their notification was likely lost), the
        :data:`RECONCILE_LOOKS` looked for longest ago; and the :data:`HEAD_LOOKS` oldest, each
        looked for again after twice the time before."""
        overtaken = [uri for uri in self.pending if self._submitted(uri) <= self._latest_settled]
        overtaken.sort(key=lambda uri: self._looked_at.get(uri, -math.inf))
        chosen = overtaken[:RECONCILE_LOOKS]
        now = self.clock()
        for uri in sorted(self.pending, key=self._submitted)[:HEAD_LOOKS]:
            due, wait = self._next_head_look.get(uri, (now, self.reconcile_interval_seconds))
            if now >= due:
                self._next_head_look[uri] = (now + wait, 2 * wait)
                if uri not in chosen:
                    chosen.append(uri)
        return chosen

    def _submitted(self, uri: str) -> float:
        """A pending file's place in submission order: its deadline (submission + the window)."""
        return float(self._deadline(uri))

    def _deadline(self, uri: str) -> float:
        record = self.pending[uri]
        return record.deadline if record and record.deadline is not None else self.fallback_deadline

    def expire(self) -> None:
        """Fail pending files whose deadline has passed, unless their result is in S3 after all."""
        now = self.clock()
        due = {uri: self._deadline(uri) for uri in self.pending if now > self._deadline(uri)}
        if not due:
            return
        self.reconcile(due)
        self._fail_unsent(due)
        results = []
        for uri, deadline in due.items():
            record = self.pending.get(uri)
            if uri not in self.pending:
                continue
            reason = (
                "no result notification and no output or failure object by the deadline "
                f"({time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(deadline))}: RequestTTLSeconds + "
                "InvocationTimeoutSeconds + grace after submission)"
            )
            if record and record.output_location is None and record.submit_error:
                reason = (
                    f"InvokeEndpointAsync got no clear answer ({record.submit_error}), so where "
                    f"SageMaker would write the result is unknown and S3 could not be searched; {reason}"
                )
            # the deadline as read: a lease renewed since (a new mark, a resubmission) is not over
            results.append(
                Result(uri, self.files[uri], failure_reason=reason, deadline=record.deadline if record else None)
            )
        self._apply(results, "past the deadline")

    # --------------------------------------------------------------- internals

    def _fail_unsent(self, due: Mapping[str, float]) -> None:
        """Those of ``due`` never sent (the lease ran out before a submitter could mark them): failed
        ``never_sent``, for the next run to claim again, not failed as if SageMaker were silent."""
        unsent = [r for uri in due if (r := self.pending.get(uri)) and r.status == Status.PROCESSING]
        reason = "its claim's lease ran out before it was sent to the endpoint; the next run claims it again"
        for run_id in {r.run_id for r in unsent if r.run_id}:
            for uri in self.ledger.fail_unsent([r for r in unsent if r.run_id == run_id], run_id, reason):
                log.info("%s: failed (never sent)", uri)
                self._settle(uri, Status.FAILED)

    def _apply(self, results: list[Result], why: str) -> None:
        if not results:
            return
        written = self.ledger.record_results(results, self.output_path)
        for r in results:
            if r.uri in written.applied:
                log.info("%s: %s (%s)", r.uri, _status(r), why)
                self._settle(r.uri, _status(r))
        if written.rejected:
            self.refresh()

    def _settle(self, uri: str, status: str) -> None:
        if uri not in self.pending:
            return
        record = self.pending.pop(uri)
        self.settled[str(status)] += 1
        if record and record.deadline:
            self._latest_settled = max(self._latest_settled, float(record.deadline))

    def _excerpt(self, uri: str) -> str:
        bucket, key = split_s3_uri(uri)
        body = self.s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{_FAILURE_EXCERPT_BYTES - 1}")["Body"]
        text: str = body.read().decode("utf-8", "replace")
        return text.strip()


def _table_key(notification: InferenceNotification) -> str | None:
    """The status table's key of the file a notification of another batch is for: the source its
    ``inputLocation`` (a pinned copy, :mod:`audio_pipeline.pinning`) was copied from."""
    if not notification.input_location:
        return None
    source = source_of(notification.input_location, notification.inference_id)
    return source if source and len(source.encode()) <= _KEY_MAX_BYTES else None


def _status(result: Result) -> Status:
    return Status.COMPLETED if result.succeeded else Status.FAILED
