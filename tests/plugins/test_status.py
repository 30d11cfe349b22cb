from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from audio_pipeline.hooks.status_table import StatusTableHook
from audio_pipeline.state_machine import Status, Transition
from audio_pipeline.status import StatusTable, inference_id_for, table_definition

from .conftest import CONFIG, answer_over_http, aws_error


def claimed(uri: str, etag: str = "e1", run_id: str = "run-1") -> dict:
    return {"uri": uri, "etag": etag, "size": 10, "inference_id": inference_id_for(uri, etag, run_id)}


def test_inference_id_is_deterministic_per_claim_and_fits_sagemaker_limit():
    a = inference_id_for("s3://b/k.wav", "e1", "run-1")
    assert a == inference_id_for("s3://b/k.wav", "e1", "run-1")
    assert a != inference_id_for("s3://b/k.wav", "e2", "run-1")
    assert a != inference_id_for("s3://b/k.wav", "e1", "run-2")
    assert 1 <= len(a) <= 64


def test_claim_is_exclusive_between_runs(table):
    first = table.claim([claimed("s3://b/a.wav")], "run-1")
    second = table.claim([claimed("s3://b/a.wav", run_id="run-2")], "run-2")
    assert first.applied == ["s3://b/a.wav"]
    assert second.rejected == ["s3://b/a.wav"] and not second.applied
    assert table.get_many(["s3://b/a.wav"])["s3://b/a.wav"]["run_id"] == "run-1"


def test_claim_more_than_one_transaction_of_files(table):
    files = [claimed(f"s3://b/{i:04d}.wav") for i in range(250)]
    result = table.claim(files, "run-1")
    assert len(result.applied) == 250
    assert len(table.get_many(f["uri"] for f in files)) == 250


def test_claim_mixed_chunk_keeps_the_claimable_ones(table):
    table.claim([claimed("s3://b/taken.wav")], "run-1")
    files = [claimed("s3://b/taken.wav", run_id="run-2"), claimed("s3://b/new.wav", run_id="run-2")]
    result = table.claim(files, "run-2")
    assert result.applied == ["s3://b/new.wav"]
    assert result.rejected == ["s3://b/taken.wav"]


def settle(table, file, to, **attrs):
    return table.apply([Transition(file["uri"], file["inference_id"], to, attrs)])


def test_changed_etag_is_claimable_once_settled_but_not_in_flight(table):
    old = claimed("s3://b/a.wav", etag="e1")
    table.claim([old], "run-1")
    changed = claimed("s3://b/a.wav", etag="e2", run_id="run-2")
    assert table.claim([changed], "run-2").rejected, "in flight: a new ETag must wait"
    settle(table, old, Status.SUBMITTED)
    settle(table, old, Status.COMPLETED)
    assert table.claim([claimed("s3://b/a.wav", etag="e1", run_id="run-2")], "run-2").rejected
    assert table.claim([changed], "run-2").applied == ["s3://b/a.wav"]


def test_failed_files_need_reprocess_failed(table):
    f = claimed("s3://b/a.wav")
    table.claim([f], "run-1")
    settle(table, f, Status.FAILED, failure_reason="boom")
    again = claimed("s3://b/a.wav", run_id="run-2")
    assert table.claim([again], "run-2").rejected
    assert table.claim([again], "run-2", reprocess_failed=True).applied
    item = table.get_many([f["uri"]])[f["uri"]]
    assert item["status"] == "processing" and "failure_reason" not in item, "a new claim starts clean"


def test_a_file_failed_before_it_was_ever_sent_is_claimable_without_reprocess_failed(table):
    f = claimed("s3://b/a.wav")
    table.claim([f], "run-1")
    settle(table, f, Status.FAILED, failure_reason="run run-1 ended before sending it", never_sent=True)
    again = claimed("s3://b/a.wav", run_id="run-2")
    assert table.claim([again], "run-2").applied == [f["uri"]]
    item = table.get_many([f["uri"]])[f["uri"]]
    assert item["status"] == "processing" and "never_sent" not in item, "a new claim starts clean"


def test_transitions_follow_the_state_machine_and_the_claim(table):
    f = claimed("s3://b/a.wav")
    table.claim([f], "run-1")
    assert settle(table, f, Status.SUMMARIZED).rejected, "processing cannot jump to summarized"
    stale = dict(f, inference_id="someone-else")
    assert settle(table, stale, Status.COMPLETED).rejected, "a different claim cannot settle it"
    assert settle(table, f, Status.SUBMITTED, output_location="s3://o/x.out").applied
    assert settle(table, f, Status.COMPLETED).applied
    assert settle(table, f, Status.COMPLETED).rejected, "a duplicate is rejected"
    assert settle(table, f, Status.FAILED, failure_reason="late").rejected, "completed never becomes failed"
    assert settle(table, f, Status.SUMMARIZED, summary_location="s3://o/x.summary.json").applied
    item = table.get_many([f["uri"]])[f["uri"]]
    assert item["status"] == "summarized" and item["output_location"] == "s3://o/x.out"


def test_notification_may_overtake_the_submission_record(table):
    f = claimed("s3://b/a.wav")
    table.claim([f], "run-1")
    assert settle(table, f, Status.COMPLETED).applied
    assert settle(table, f, Status.SUBMITTED).rejected, "the late submission record must not undo it"


def test_transitions_on_missing_items_never_create_them(table):
    ghost = claimed("s3://b/ghost.wav")
    assert settle(table, ghost, Status.COMPLETED).rejected
    assert table.get_many([ghost["uri"]]) == {}


def test_duplicate_uris_in_one_write_are_rejected_not_fatal(table):
    f = claimed("s3://b/a.wav")
    table.claim([f], "run-1")
    t = Transition(f["uri"], f["inference_id"], Status.FAILED, {"failure_reason": "x"})
    result = table.apply([t, t])
    assert result.applied == [f["uri"]] and result.rejected == [f["uri"]]


def test_get_many_reads_every_chunk_and_retries_unprocessed_keys(table, monkeypatch):
    files = [claimed(f"s3://b/{i:03d}.wav") for i in range(230)]
    table.claim(files, "run-1")
    real = table.client.batch_get_item
    calls, halved = [], threading.Lock()

    def flaky(RequestItems):
        request = RequestItems[table.table_name]
        keys = request["Keys"]
        calls.append(len(keys))
        if len(keys) == 100 and halved.acquire(blocking=False):  # once: DynamoDB hands back half as unprocessed
            response = real(RequestItems={table.table_name: {**request, "Keys": keys[:50]}})
            response["UnprocessedKeys"] = {table.table_name: {**request, "Keys": keys[50:]}}
            return response
        return real(RequestItems=RequestItems)

    monkeypatch.setattr(table.client, "batch_get_item", flaky)
    found = table.get_many([f["uri"] for f in files], ("status",))
    assert len(found) == 230
    assert sorted(calls) == [30, 50, 100, 100], "three chunks, and the unprocessed half again"


def test_run_index_lists_what_a_run_claimed(table):
    table.claim([claimed("s3://b/a.wav"), claimed("s3://b/b.wav")], "run-1")
    table.claim([claimed("s3://b/c.wav", run_id="run-2")], "run-2")
    items = list(table.run_items("run-1"))
    assert sorted(i["uri"] for i in items) == ["s3://b/a.wav", "s3://b/b.wav"]
    assert {i["status"] for i in items} == {"processing"}


def test_throttled_transaction_is_retried(aws_over_http):
    """By the hook's client (adaptive mode), at the HTTP layer: the table does not retry it again."""
    client = StatusTableHook(aws_conn_id="aws_default", status_table=CONFIG.status_table).conn
    client.create_table(TableName=CONFIG.status_table, **table_definition())
    table = StatusTable(client, CONFIG.status_table)
    f = claimed("s3://b/a.wav")
    attempts = answer_over_http(client, "TransactWriteItems", [(400, aws_error("ThrottlingException", "slow down"))])
    assert table.claim([f], "run-1").applied == [f["uri"]]
    assert len(attempts) == 2


def test_throttling_the_client_gave_up_on_is_not_retried_again(table, monkeypatch):
    from botocore.exceptions import ClientError

    calls = []

    def throttled(**kwargs):
        calls.append(1)
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "TransactWriteItems")

    monkeypatch.setattr(table.client, "transact_write_items", throttled)
    with pytest.raises(ClientError, match="ThrottlingException"):
        table.claim([claimed("s3://b/a.wav")], "run-1")
    assert len(calls) == 1, "botocore retried it already: no retries stacked on its retries"


@pytest.mark.parametrize("code", ["ValidationException", "ResourceNotFoundException"])
def test_other_errors_surface(table, monkeypatch, code):
    from botocore.exceptions import ClientError

    def broken(**kwargs):
        raise ClientError({"Error": {"Code": code, "Message": "nope"}}, "TransactWriteItems")

    monkeypatch.setattr(table.client, "transact_write_items", broken)
    with pytest.raises(ClientError):
        table.claim([claimed("s3://b/a.wav")], "run-1")


def test_status_table_backoff_gives_up(monkeypatch):
    table = StatusTable(client=None, table_name="t", backoff_base=0)
    with pytest.raises(RuntimeError, match="gave up"):
        table._sleep(99, "test")


def test_a_claim_is_a_lease_the_next_run_may_take_once_it_expires(ddb):
    now = [1_000.0]
    table = StatusTable(ddb, CONFIG.status_table, backoff_base=0, clock=lambda: now[0])
    old = claimed("s3://b/a.wav")
    table.claim([old], "run-1", lease_seconds=100)
    new = claimed("s3://b/a.wav", run_id="run-2")
    now[0] = 1_100.0
    assert table.claim([new], "run-2", lease_seconds=100).rejected, "still within run-1's lease"
    settle(table, old, Status.SUBMITTED, deadline=1_500)  # the submission moves the deadline on
    now[0] = 1_400.0
    assert table.claim([new], "run-2", lease_seconds=100).rejected, "still within the result window"
    now[0] = 1_501.0
    assert table.claim([new], "run-2", lease_seconds=100).applied == ["s3://b/a.wav"]
    item = table.get_many(["s3://b/a.wav"])["s3://b/a.wav"]
    assert item["run_id"] == "run-2" and item["deadline"] == 1_601
    assert settle(table, old, Status.FAILED, failure_reason="late").rejected, "run-1 no longer owns it"


def test_a_settled_file_is_never_taken_by_lease_expiry(ddb):
    now = [1_000.0]
    table = StatusTable(ddb, CONFIG.status_table, backoff_base=0, clock=lambda: now[0])
    done = claimed("s3://b/a.wav")
    table.claim([done], "run-1", lease_seconds=100)
    settle(table, done, Status.COMPLETED)
    now[0] = 9_999.0
    assert table.claim([claimed("s3://b/a.wav", run_id="run-2")], "run-2", lease_seconds=100).rejected


def test_a_required_absence_rejects_the_write_once_the_attribute_is_there(table):
    f = claimed("s3://b/a.wav")
    table.claim([f], "run-1")
    fail = Transition(f["uri"], f["inference_id"], Status.FAILED, require={"invoking_since": None})
    mark = Transition(
        f["uri"], f["inference_id"], Status.PROCESSING, {"invoking_since": 1}, expect=(Status.PROCESSING,)
    )
    table.apply([mark])
    assert table.apply([fail]).rejected == [f["uri"]]
    table.apply([replace(mark, attributes={}, remove=("invoking_since",))])
    assert table.apply([fail]).applied == [f["uri"]]


def test_a_required_attribute_that_changed_since_it_was_read_rejects_the_write(table):
    f = claimed("s3://b/a.wav")
    table.claim([f], "run-1")
    settle(table, f, Status.SUBMITTED)
    settle(table, f, Status.COMPLETED, summary_error="summaries were off")
    take = Transition(f["uri"], f["inference_id"], Status.COMPLETED, {"run_id": "run-2"}, expect=(Status.COMPLETED,))
    stale = {"run_id": "run-0", "summary_error": "summaries were off"}
    assert table.apply([replace(take, require=stale)]).rejected == [f["uri"]]
    current = {"run_id": "run-1", "summary_error": "summaries were off"}
    assert table.apply([replace(take, require=current)]).applied == [f["uri"]]
    assert table.get_many([f["uri"]])[f["uri"]]["run_id"] == "run-2"


def test_a_late_result_of_the_same_claim_revives_a_failed_file(table):
    f = claimed("s3://b/a.wav")
    table.claim([f], "run-1")
    settle(table, f, Status.SUBMITTED, output_location="s3://o/x.out")
    settle(table, f, Status.FAILED, failure_reason="no result by the deadline")
    stale = dict(f, inference_id="an-older-claim")
    assert settle(table, stale, Status.COMPLETED).rejected, "another claim's result is never taken"
    assert settle(table, f, Status.COMPLETED).applied, "its own result, late, is kept"
    assert table.get_many([f["uri"]])[f["uri"]]["status"] == "completed"


def test_get_many_reads_a_uri_given_twice_once(table):
    """DynamoDB rejects a BatchGetItem that names one key twice; a caller may pass duplicates."""
    f = claimed("s3://b/a.wav")
    table.claim([f], "run-1")
    found = table.get_many([f["uri"], f["uri"], "s3://b/absent.wav", "s3://b/absent.wav"], ("status",))
    assert list(found) == [f["uri"]] and found[f["uri"]]["status"] == "processing"


class InFlight:
    """Wraps a client call, counting how many run at once (each takes a round trip of 50 ms)."""

    def __init__(self, call):
        self.call, self.now, self.most, self.lock = call, 0, 0, threading.Lock()

    def __call__(self, **kwargs):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            time.sleep(0.05)
            return self.call(**kwargs)
        finally:
            with self.lock:
                self.now -= 1


@pytest.mark.parametrize("concurrency", [1, 4])
def test_chunks_of_one_read_or_write_go_concurrency_at_a_time(ddb, monkeypatch, concurrency):
    table = StatusTable(ddb, CONFIG.status_table, backoff_base=0, concurrency=concurrency)
    writes = InFlight(ddb.transact_write_items)
    reads = InFlight(ddb.batch_get_item)
    monkeypatch.setattr(ddb, "transact_write_items", writes)
    monkeypatch.setattr(ddb, "batch_get_item", reads)
    files = [claimed(f"s3://b/{i:04d}.wav") for i in range(500)]  # five chunks of each
    assert table.claim(files, "run-1").applied == [f["uri"] for f in files], "every file, in the order given"
    assert len(table.get_many(f["uri"] for f in files)) == 500
    assert (writes.most, reads.most) == (concurrency, concurrency)


def test_concurrent_chunks_report_each_file_applied_or_rejected_once(table):
    taken = [claimed(f"s3://b/{i:04d}.wav") for i in range(0, 450, 3)]
    table.claim(taken, "run-1")
    files = [claimed(f"s3://b/{i:04d}.wav", run_id="run-2") for i in range(450)]
    result = table.claim(files, "run-2")
    assert result.rejected == [f["uri"] for f in taken]
    assert result.applied == [f["uri"] for i, f in enumerate(files) if i % 3]
    owners = {uri: item["run_id"] for uri, item in table.get_many(f["uri"] for f in files).items()}
    assert owners == {f["uri"]: "run-1" if i % 3 == 0 else "run-2" for i, f in enumerate(files)}


def _every_chunk_fails_slowly(sent):
    time.sleep(0.2)
    return True


def _the_first_chunk_runs_long_the_others_fail(sent):
    if len(sent) == 1:
        time.sleep(1.0)
        return False
    return True


@pytest.mark.parametrize("fails", [_every_chunk_fails_slowly, _the_first_chunk_runs_long_the_others_fail])
def test_a_failing_chunk_stops_the_chunks_not_yet_sent(ddb, monkeypatch, fails):
    """Whichever chunk fails first: the two in flight, and at most the two their threads took
    up as they failed, are sent; not all ten."""
    from botocore.exceptions import ClientError

    table = StatusTable(ddb, CONFIG.status_table, backoff_base=0, concurrency=2)
    sent = []

    def transact(TransactItems):
        sent.append(TransactItems[0]["Put"]["Item"]["uri"]["S"])
        if fails(sent):
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "nope"}}, "TransactWriteItems")
        return {}

    monkeypatch.setattr(ddb, "transact_write_items", transact)
    with pytest.raises(ClientError, match="nope"):
        table.claim([claimed(f"s3://b/{i:04d}.wav") for i in range(1000)], "run-1")
    assert len(sent) <= 4, f"{len(sent)} of 10 transactions sent after one failed"


def test_a_transaction_cancelled_for_capacity_is_retried_until_the_table_serves_it(ddb, monkeypatch):
    from botocore.exceptions import ClientError

    table = StatusTable(ddb, CONFIG.status_table, backoff_base=0)
    real, throttled = ddb.transact_write_items, []

    def throttling(**kwargs):
        if len(throttled) < 15:  # a new on-demand table scaling up: longer than other cancellations are retried
            throttled.append(1)
            reasons = [{"Code": "ThrottlingError", "Message": "Throughput exceeds the current capacity"}]
            error = {"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"}}
            raise ClientError({**error, "CancellationReasons": reasons * len(kwargs["TransactItems"])}, "Tx")
        return real(**kwargs)

    monkeypatch.setattr(ddb, "transact_write_items", throttling)
    files = [claimed(f"s3://b/{i}.wav") for i in range(3)]
    assert table.claim(files, "run-1").applied == [f["uri"] for f in files]


def test_a_stopped_task_sends_no_more_chunks(ddb, monkeypatch):
    """SIGTERM (Airflow stopping the task) raises in the thread that waits on the chunks."""
    from audio_pipeline import status

    class Stopped(BaseException):
        pass

    def stopped_while_waiting(futures, **kwargs):
        time.sleep(0.1)
        raise Stopped

    sent = []

    def slow_write(**kwargs):
        sent.append(1)
        time.sleep(0.1)
        return {}

    monkeypatch.setattr(ddb, "transact_write_items", slow_write)
    monkeypatch.setattr(status, "wait", stopped_while_waiting)
    table = StatusTable(ddb, CONFIG.status_table, backoff_base=0, concurrency=2)
    with pytest.raises(Stopped):
        table.claim([claimed(f"s3://b/{i:04d}.wav") for i in range(1000)], "run-1")
    assert len(sent) <= 4, f"{len(sent)} of 10 transactions sent after the task was stopped"
