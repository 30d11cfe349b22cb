"""The ledger's operations on moto: each writes only under the conditions it states, and the
store beneath reads and writes every chunk and every page."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
from botocore.exceptions import ClientError

from audio_pipeline.hooks.status_table import StatusTableHook
from audio_pipeline.ledger import (
    Accepted,
    FileRecord,
    Ledger,
    NotSent,
    Refused,
    Result,
    Skipped,
    Status,
    Summarized,
    SummaryFailed,
    Unclear,
    inference_id_for,
    table_definition,
)
from audio_pipeline.settlement import settle_run

from ..conftest import CONFIG, answer_over_http, aws_error

LEASE = CONFIG.result_window_seconds
OUT = f"{CONFIG.output_path}a.out"


def claimed(uri: str, etag: str = "e1", run_id: str = "run-1") -> dict:
    return {"uri": uri, "etag": etag, "size": 10, "inference_id": inference_id_for(uri, etag, run_id)}


def at(ddb, now: list[float], **kwargs) -> Ledger:
    """A ledger whose clock reads ``now[0]``."""
    return Ledger(ddb, CONFIG.status_table, backoff_base=0, clock=lambda: now[0], **kwargs)


def record(ledger: Ledger, uri: str) -> FileRecord:
    return ledger.get([uri])[uri]


def submit(ledger: Ledger, f: dict, run_id: str = "run-1", output_location: str | None = OUT, window: int = LEASE):
    """Mark ``f`` and record it accepted by the endpoint: ``submitted``, its deadline ``window`` on."""
    since, marked = ledger.mark_invoking([f], run_id, window)
    assert marked == [f["uri"]]
    accepted = Accepted(f, since, f["uri"], output_location, None)
    assert ledger.record_invocations([accepted], window).applied == [f["uri"]]
    return since


def complete(ledger: Ledger, f: dict, output_location: str | None = OUT):
    return ledger.record_results([Result(f["uri"], f["inference_id"], output_location=output_location)])


def fail(ledger: Ledger, f: dict, reason: str = "boom"):
    return ledger.record_results([Result(f["uri"], f["inference_id"], failure_reason=reason)])


def test_inference_id_is_deterministic_per_claim_and_fits_sagemaker_limit():
    a = inference_id_for("s3://b/k.wav", "e1", "run-1")
    assert a == inference_id_for("s3://b/k.wav", "e1", "run-1")
    assert a != inference_id_for("s3://b/k.wav", "e2", "run-1")
    assert a != inference_id_for("s3://b/k.wav", "e1", "run-2")
    assert 1 <= len(a) <= 64


# ------------------------------------------------------------------ claims


def test_claim_is_exclusive_between_runs(ledger):
    first = ledger.claim([claimed("s3://b/a.wav")], "run-1", lease_seconds=LEASE)
    second = ledger.claim([claimed("s3://b/a.wav", run_id="run-2")], "run-2", lease_seconds=LEASE)
    assert first.applied == ["s3://b/a.wav"]
    assert second.rejected == ["s3://b/a.wav"] and not second.applied
    assert record(ledger, "s3://b/a.wav").run_id == "run-1"


def test_claim_more_than_one_transaction_of_files(ledger):
    files = [claimed(f"s3://b/{i:04d}.wav") for i in range(250)]
    result = ledger.claim(files, "run-1", lease_seconds=LEASE)
    assert len(result.applied) == 250
    assert len(ledger.get(f["uri"] for f in files)) == 250


def test_claim_mixed_chunk_keeps_the_claimable_ones(ledger):
    ledger.claim([claimed("s3://b/taken.wav")], "run-1", lease_seconds=LEASE)
    files = [claimed("s3://b/taken.wav", run_id="run-2"), claimed("s3://b/new.wav", run_id="run-2")]
    result = ledger.claim(files, "run-2", lease_seconds=LEASE)
    assert result.applied == ["s3://b/new.wav"]
    assert result.rejected == ["s3://b/taken.wav"]


def test_changed_etag_is_claimable_once_settled_but_not_in_flight(ledger):
    old = claimed("s3://b/a.wav", etag="e1")
    ledger.claim([old], "run-1", lease_seconds=LEASE)
    changed = claimed("s3://b/a.wav", etag="e2", run_id="run-2")
    assert ledger.claim([changed], "run-2", lease_seconds=LEASE).rejected, "in flight: a new ETag must wait"
    submit(ledger, old)
    assert complete(ledger, old).applied == [old["uri"]]
    same = claimed("s3://b/a.wav", etag="e1", run_id="run-2")
    assert ledger.claim([same], "run-2", lease_seconds=LEASE).rejected
    assert ledger.claim([changed], "run-2", lease_seconds=LEASE).applied == ["s3://b/a.wav"]


def test_failed_files_need_reprocess_failed(ledger):
    f = claimed("s3://b/a.wav")
    ledger.claim([f], "run-1", lease_seconds=LEASE)
    submit(ledger, f)
    assert fail(ledger, f).applied == [f["uri"]]
    again = claimed("s3://b/a.wav", run_id="run-2")
    assert ledger.claim([again], "run-2", lease_seconds=LEASE).rejected
    assert ledger.claim([again], "run-2", lease_seconds=LEASE, reprocess_failed=True).applied
    r = record(ledger, f["uri"])
    assert r.status == Status.PROCESSING and r.failure_reason is None, "a new claim starts clean"
    assert r.output_location is None and r.inference_id == again["inference_id"]


def test_a_file_failed_before_it_was_ever_sent_is_claimable_without_reprocess_failed(ledger):
    f = claimed("s3://b/a.wav")
    ledger.claim([f], "run-1", lease_seconds=LEASE)
    assert ledger.fail_leftovers([record(ledger, f["uri"])], "run-1", "run run-1 ended") == 1
    failed = record(ledger, f["uri"])
    assert failed.status == Status.FAILED and failed.never_sent
    again = claimed("s3://b/a.wav", run_id="run-2")
    assert ledger.claim([again], "run-2", lease_seconds=LEASE).applied == [f["uri"]]
    r = record(ledger, f["uri"])
    assert r.status == Status.PROCESSING and not r.never_sent, "a new claim starts clean"


def test_a_claim_is_a_lease_the_next_run_may_take_once_it_expires(ddb):
    now = [1_000.0]
    ledger = at(ddb, now)
    old = claimed("s3://b/a.wav")
    ledger.claim([old], "run-1", lease_seconds=100)
    new = claimed("s3://b/a.wav", run_id="run-2")
    now[0] = 1_100.0
    assert ledger.claim([new], "run-2", lease_seconds=100).rejected, "still within run-1's lease"
    submit(ledger, old, window=400)  # the submission moves the deadline on, to 1_500
    assert record(ledger, old["uri"]).deadline == 1_500
    now[0] = 1_400.0
    assert ledger.claim([new], "run-2", lease_seconds=100).rejected, "still within the result window"
    now[0] = 1_501.0
    assert ledger.claim([new], "run-2", lease_seconds=100).applied == ["s3://b/a.wav"]
    r = record(ledger, "s3://b/a.wav")
    assert r.run_id == "run-2" and r.deadline == 1_601
    assert fail(ledger, old, "late").rejected == [old["uri"]], "run-1's claim no longer owns it"


def test_a_settled_file_is_never_taken_by_lease_expiry(ddb):
    now = [1_000.0]
    ledger = at(ddb, now)
    done = claimed("s3://b/a.wav")
    ledger.claim([done], "run-1", lease_seconds=100)
    assert complete(ledger, done).applied
    now[0] = 9_999.0
    assert ledger.claim([claimed("s3://b/a.wav", run_id="run-2")], "run-2", lease_seconds=100).rejected


# ------------------------------------------------ the way through the states


def test_operations_follow_the_states_and_the_claim(ledger):
    f = claimed("s3://b/a.wav")
    ledger.claim([f], "run-1", lease_seconds=LEASE)
    r = record(ledger, f["uri"])
    assert ledger.record_summaries([Summarized(r, "s3://o/s.json", "Hi.", "m")], "run-1").rejected, (
        "processing cannot jump to summarized"
    )
    stale = dict(f, inference_id="someone-else")
    assert complete(ledger, stale).rejected, "a different claim cannot settle it"
    submit(ledger, f)
    assert complete(ledger, f).applied
    assert complete(ledger, f).rejected, "a duplicate is rejected"
    assert fail(ledger, f, "late").rejected, "completed never becomes failed"
    r = record(ledger, f["uri"])
    assert ledger.record_summaries([Summarized(r, "s3://o/s.json", "Hi.", "m")], "run-1").applied == [f["uri"]]
    r = record(ledger, f["uri"])
    assert r.status == Status.SUMMARIZED and r.output_location == OUT and r.summary_location == "s3://o/s.json"


def test_notification_may_overtake_the_submission_record(ledger):
    f = claimed("s3://b/a.wav")
    ledger.claim([f], "run-1", lease_seconds=LEASE)
    since, _ = ledger.mark_invoking([f], "run-1", LEASE)
    assert complete(ledger, f).applied
    late = Accepted(f, since, f["uri"], OUT, None)
    assert ledger.record_invocations([late], LEASE).rejected == [f["uri"]], "the late submission must not undo it"
    assert record(ledger, f["uri"]).status == Status.COMPLETED


def test_operations_on_missing_items_never_create_them(ledger):
    ghost = claimed("s3://b/ghost.wav")
    assert complete(ledger, ghost).rejected == [ghost["uri"]]
    assert fail(ledger, ghost).rejected == [ghost["uri"]]
    assert ledger.mark_invoking([ghost], "run-1", LEASE)[1] == []
    assert ledger.get([ghost["uri"]]) == {}


def test_duplicate_uris_in_one_write_are_rejected_not_fatal(ledger):
    f = claimed("s3://b/a.wav")
    ledger.claim([f], "run-1", lease_seconds=LEASE)
    r = Result(f["uri"], f["inference_id"], failure_reason="x")
    result = ledger.record_results([r, r])
    assert result.applied == [f["uri"]] and result.rejected == [f["uri"]]


def summarized(ledger: Ledger) -> tuple[dict, FileRecord]:
    """``s3://b/a.wav`` claimed by run-1, transcribed and summarised: its claim and its record."""
    f = claimed("s3://b/a.wav")
    ledger.claim([f], "run-1", lease_seconds=LEASE)
    submit(ledger, f)
    complete(ledger, f)
    ledger.record_summaries([Summarized(record(ledger, f["uri"]), "s3://o/s.json", "Hi.", "m")], "run-1")
    return f, record(ledger, f["uri"])


def test_a_summarized_file_is_final_under_its_claim(ledger):
    """No operation changes a summarized file; only a claim of new content (a new ETag) replaces it."""
    f, done = summarized(ledger)
    assert done.status == Status.SUMMARIZED
    assert complete(ledger, f).rejected and fail(ledger, f).rejected
    assert ledger.mark_invoking([f], "run-1", LEASE)[1] == []
    assert ledger.record_summaries([Summarized(done, "s3://o/t.json", "Bye.", "m")], "run-1").rejected
    assert ledger.leave_without_summary([done], "run-1", "why") == []
    assert ledger.take_for_summary([done], "run-2", LEASE) == []
    assert ledger.adopt([done], "run-2") == []
    assert ledger.fail_leftovers([done], "run-1", "ended") == 0
    again = claimed("s3://b/a.wav", run_id="run-2")
    assert ledger.claim([again], "run-2", lease_seconds=LEASE, reprocess_failed=True).rejected
    assert record(ledger, f["uri"]) == done


def test_a_found_result_is_recorded_only_over_a_claim_given_up_on(ledger):
    f, done = summarized(ledger)
    assert ledger.record_found_result(done, "found") is False
    assert record(ledger, f["uri"]) == done


def test_a_failed_file_takes_only_its_own_late_result(ledger):
    f = claimed("s3://b/a.wav")
    ledger.claim([f], "run-1", lease_seconds=LEASE)
    submit(ledger, f)
    assert fail(ledger, f, "no result by the deadline").applied
    failed = record(ledger, f["uri"])
    assert fail(ledger, f, "again").rejected, "failed once"
    assert ledger.mark_invoking([f], "run-1", LEASE)[1] == []
    assert ledger.record_summaries([Summarized(failed, "s3://o/s.json", "Hi.", "m")], "run-1").rejected
    assert ledger.take_for_summary([failed], "run-2", LEASE) == []
    assert ledger.adopt([failed], "run-2") == []
    assert record(ledger, f["uri"]) == failed
    stale = dict(f, inference_id="an-older-claim")
    assert complete(ledger, stale).rejected, "another claim's result is never taken"
    assert complete(ledger, f, output_location=f"{CONFIG.output_path}elsewhere.out").rejected, (
        "only at the output location recorded at submission"
    )
    assert complete(ledger, f).applied, "its own result, late, is kept"
    assert record(ledger, f["uri"]).status == Status.COMPLETED


def test_a_success_outside_the_endpoints_output_path_is_rejected_without_a_write(ledger, monkeypatch):
    f = claimed("s3://b/a.wav")
    ledger.claim([f], "run-1", lease_seconds=LEASE)
    submit(ledger, f, output_location=None)  # an unclear answer records no output location
    writes = []
    real = ledger.store.client.transact_write_items
    monkeypatch.setattr(ledger.store.client, "transact_write_items", lambda **kw: writes.append(kw) or real(**kw))
    outside = Result(f["uri"], f["inference_id"], output_location="s3://elsewhere/a.out")
    assert ledger.record_results([outside], CONFIG.output_path).rejected == [f["uri"]]
    assert writes == [] and record(ledger, f["uri"]).status == Status.SUBMITTED
    inside = Result(f["uri"], f["inference_id"], output_location=OUT)
    assert ledger.record_results([inside], CONFIG.output_path).applied == [f["uri"]]


# ----------------------------------------------------------- marks and leases


def test_a_file_is_marked_by_one_submitter_at_a_time(ledger):
    """Invoking requires no other mark: a second mark is rejected until the first goes."""
    f = claimed("s3://b/a.wav")
    ledger.claim([f], "run-1", lease_seconds=LEASE)
    since, marked = ledger.mark_invoking([f], "run-1", LEASE)
    assert marked == [f["uri"]] and record(ledger, f["uri"]).invoking_since == since
    assert ledger.mark_invoking([f], "run-1", LEASE)[1] == [], "marked already"
    assert ledger.fail_leftovers([record(ledger, f["uri"])], "run-1", "ended") == 1
    assert not record(ledger, f["uri"]).never_sent, "it may have reached the endpoint"


def test_a_mark_that_goes_unsent_frees_the_file_for_the_next_mark(ledger):
    f = claimed("s3://b/a.wav")
    ledger.claim([f], "run-1", lease_seconds=LEASE)
    since, _ = ledger.mark_invoking([f], "run-1", LEASE)
    assert ledger.record_invocations([NotSent(f, since)], LEASE).applied == [f["uri"]]
    r = record(ledger, f["uri"])
    assert r.status == Status.PROCESSING and r.invoking_since is None
    assert ledger.mark_invoking([f], "run-1", LEASE)[1] == [f["uri"]]


def test_a_claim_whose_lease_ran_out_is_never_marked(ddb):
    now = [1_000.0]
    ledger = at(ddb, now)
    f = claimed("s3://b/a.wav")
    ledger.claim([f], "run-1", lease_seconds=100)
    now[0] = 1_101.0
    assert ledger.mark_invoking([f], "run-1", LEASE)[1] == []
    assert ledger.mark_invoking([f], "run-2", LEASE)[1] == [], "nor by a run that does not hold it"


def test_take_for_summary_requires_the_record_as_read(ledger):
    """Of runs that read the same record one takes it: a record that changed since it was read
    (another holder, another summary_error) rejects the write."""
    f = claimed("s3://b/a.wav")
    ledger.claim([f], "run-1", lease_seconds=LEASE)
    submit(ledger, f)
    complete(ledger, f)
    assert ledger.leave_without_summary([record(ledger, f["uri"])], "run-1", "summaries were off") == [f["uri"]]
    current = record(ledger, f["uri"])
    assert ledger.take_for_summary([dataclasses.replace(current, run_id="run-0")], "run-2", LEASE) == []
    other = dataclasses.replace(current, summary_error="another reason")
    assert ledger.take_for_summary([other], "run-2", LEASE) == []
    assert ledger.take_for_summary([dataclasses.replace(current, etag="e2")], "run-2", LEASE) == []
    assert ledger.take_for_summary([current], "run-2", LEASE) == [f["uri"]]
    taken = record(ledger, f["uri"])
    assert taken.run_id == "run-2" and taken.summary_error is None and taken.summary_attempts == 1
    assert ledger.take_for_summary([current], "run-3", LEASE) == [], "read before run-2 took it"


def test_adopt_requires_the_etag_as_read(ledger):
    """A record of other content than the item holds (the file changed: a new ETag) is never adopted
    under the old claim, although its claim, holder and status are the item's."""
    f = claimed("s3://b/a.wav")
    ledger.claim([f], "run-1", lease_seconds=LEASE)
    submit(ledger, f)
    held = record(ledger, f["uri"])
    assert ledger.adopt([dataclasses.replace(held, etag="e2")], "run-2") == []
    assert record(ledger, f["uri"]) == held
    assert ledger.adopt([held], "run-2") == [f["uri"]]
    adopted = record(ledger, f["uri"])
    assert adopted.run_id == "run-2" and adopted.inference_id == held.inference_id
    assert (adopted.status, adopted.deadline) == (held.status, held.deadline), "as it is"


def test_fail_leftovers_spares_a_file_another_run_adopted(ledger):
    f = claimed("s3://b/a.wav")
    ledger.claim([f], "run-1", lease_seconds=LEASE)
    submit(ledger, f)
    read_by_run_1 = record(ledger, f["uri"])
    assert ledger.adopt([read_by_run_1], "run-2") == [f["uri"]]
    assert ledger.fail_leftovers([read_by_run_1], "run-1", "run-1 ended") == 0
    assert record(ledger, f["uri"]).status == Status.SUBMITTED


# ------------------------------------------------------------------ skipped


def test_a_skip_is_recorded_once_per_etag_and_never_over_a_file_in_flight(ledger):
    skip = Skipped("s3://b/empty.wav", "e1", 0, "zero bytes")
    assert ledger.record_skipped([skip], "run-1").applied == [skip.uri]
    r = record(ledger, skip.uri)
    assert (r.status, r.skip_reason, r.etag, r.size, r.run_id) == (Status.SKIPPED, "zero bytes", "e1", 0, "run-1")
    assert ledger.record_skipped([skip], "run-2").rejected == [skip.uri], "once per ETag"
    assert record(ledger, skip.uri).run_id == "run-1"
    f = claimed("s3://b/a.wav")
    ledger.claim([f], "run-1", lease_seconds=LEASE)
    assert ledger.record_skipped([Skipped(f["uri"], "e2", 0, "zero bytes")], "run-2").rejected == [f["uri"]]
    assert record(ledger, f["uri"]).status == Status.PROCESSING
    assert ledger.record_skipped([Skipped(skip.uri, "e3", 0, "zero bytes")], "run-2").applied == [skip.uri]


# ---------------------------------------------------------------- reads


def test_get_reads_every_chunk_and_retries_unprocessed_keys(ledger, monkeypatch):
    files = [claimed(f"s3://b/{i:03d}.wav") for i in range(230)]
    ledger.claim(files, "run-1", lease_seconds=LEASE)
    client, name = ledger.store.client, ledger.table_name
    real = client.batch_get_item
    calls, halved = [], threading.Lock()

    def flaky(RequestItems):
        request = RequestItems[name]
        keys = request["Keys"]
        calls.append(len(keys))
        if len(keys) == 100 and halved.acquire(blocking=False):  # once: DynamoDB hands back half as unprocessed
            response = real(RequestItems={name: {**request, "Keys": keys[:50]}})
            response["UnprocessedKeys"] = {name: {**request, "Keys": keys[50:]}}
            return response
        return real(RequestItems=RequestItems)

    monkeypatch.setattr(client, "batch_get_item", flaky)
    found = ledger.get([f["uri"] for f in files])
    assert len(found) == 230 and all(isinstance(r, FileRecord) for r in found.values())
    assert sorted(calls) == [30, 50, 100, 100], "three chunks, and the unprocessed half again"


def test_get_reads_a_uri_given_twice_once(ledger):
    """DynamoDB rejects a BatchGetItem that names one key twice; a caller may pass duplicates."""
    f = claimed("s3://b/a.wav")
    ledger.claim([f], "run-1", lease_seconds=LEASE)
    found = ledger.get([f["uri"], f["uri"], "s3://b/absent.wav", "s3://b/absent.wav"])
    assert list(found) == [f["uri"]] and found[f["uri"]].status == Status.PROCESSING


def test_run_index_lists_what_a_run_claimed(ledger):
    ledger.claim([claimed("s3://b/a.wav"), claimed("s3://b/b.wav")], "run-1", lease_seconds=LEASE)
    ledger.claim([claimed("s3://b/c.wav", run_id="run-2")], "run-2", lease_seconds=LEASE)
    records = list(ledger.run_records("run-1"))
    assert sorted(r.uri for r in records) == ["s3://b/a.wav", "s3://b/b.wav"]
    assert {r.status for r in records} == {Status.PROCESSING}
    assert {r.inference_id for r in records} == {claimed(u)["inference_id"] for u in ("s3://b/a.wav", "s3://b/b.wav")}


def test_the_run_index_is_read_page_after_page(ddb):
    """Pages of two items: all five files of the run are read, and settling the run settles all five."""
    ledger = Ledger(ddb, CONFIG.status_table, backoff_base=0, page_size=2)
    files = [claimed(f"s3://b/{i}.wav") for i in range(5)]
    ledger.claim(files, "run-1", lease_seconds=LEASE)
    ledger.claim([claimed("s3://b/other.wav", run_id="run-2")], "run-2", lease_seconds=LEASE)
    pages = []
    ddb.meta.events.register("after-call.dynamodb.Query", lambda **kw: pages.append(1))
    assert sorted(r.uri for r in ledger.run_records("run-1")) == sorted(f["uri"] for f in files)
    assert len(pages) >= 3, "five items in pages of two"

    settled = [r for chunk in settle_run(ledger, "run-1", "run run-1 ended", chunk=2) for r in chunk.files]
    assert sorted(r.uri for r in settled) == sorted(f["uri"] for f in files)
    assert {r.status for r in settled} == {Status.FAILED}
    assert {r.status for r in ledger.get(f["uri"] for f in files).values()} == {Status.FAILED}
    assert record(ledger, "s3://b/other.wav").status == Status.PROCESSING


def test_empty(ledger):
    assert ledger.empty()
    ledger.record_skipped([Skipped("s3://b/a.wav", "e", 0, "zero bytes")], "run-1")
    assert not ledger.empty()


# ------------------------------------------------------------ the store's calls


def test_throttled_transaction_is_retried(aws_over_http):
    """By the hook's client (adaptive mode), at the HTTP layer: the ledger does not retry it again."""
    client = StatusTableHook(aws_conn_id="aws_default", status_table=CONFIG.status_table).conn
    client.create_table(TableName=CONFIG.status_table, **table_definition())
    ledger = Ledger(client, CONFIG.status_table)
    f = claimed("s3://b/a.wav")
    attempts = answer_over_http(client, "TransactWriteItems", [(400, aws_error("ThrottlingException", "slow down"))])
    assert ledger.claim([f], "run-1", lease_seconds=LEASE).applied == [f["uri"]]
    assert len(attempts) == 2


def test_throttling_the_client_gave_up_on_is_not_retried_again(ledger, monkeypatch):
    calls = []

    def throttled(**kwargs):
        calls.append(1)
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "TransactWriteItems")

    monkeypatch.setattr(ledger.store.client, "transact_write_items", throttled)
    with pytest.raises(ClientError, match="ThrottlingException"):
        ledger.claim([claimed("s3://b/a.wav")], "run-1", lease_seconds=LEASE)
    assert len(calls) == 1, "botocore retried it already: no retries stacked on its retries"


@pytest.mark.parametrize("code", ["ValidationException", "ResourceNotFoundException"])
def test_other_errors_surface(ledger, monkeypatch, code):
    def broken(**kwargs):
        raise ClientError({"Error": {"Code": code, "Message": "nope"}}, "TransactWriteItems")

    monkeypatch.setattr(ledger.store.client, "transact_write_items", broken)
    with pytest.raises(ClientError, match=code):
        ledger.claim([claimed("s3://b/a.wav")], "run-1", lease_seconds=LEASE)


def test_status_table_backoff_gives_up():
    ledger = Ledger(client=None, table_name="t", backoff_base=0)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="gave up"):
        ledger.store._sleep(99, "test")


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
    ledger = Ledger(ddb, CONFIG.status_table, backoff_base=0, concurrency=concurrency)
    writes = InFlight(ddb.transact_write_items)
    reads = InFlight(ddb.batch_get_item)
    monkeypatch.setattr(ddb, "transact_write_items", writes)
    monkeypatch.setattr(ddb, "batch_get_item", reads)
    files = [claimed(f"s3://b/{i:04d}.wav") for i in range(500)]  # five chunks of each
    assert ledger.claim(files, "run-1", lease_seconds=LEASE).applied == [f["uri"] for f in files], (
        "every file, in the order given"
    )
    assert len(ledger.get(f["uri"] for f in files)) == 500
    assert (writes.most, reads.most) == (concurrency, concurrency)


def test_concurrent_chunks_report_each_file_applied_or_rejected_once(ledger):
    taken = [claimed(f"s3://b/{i:04d}.wav") for i in range(0, 450, 3)]
    ledger.claim(taken, "run-1", lease_seconds=LEASE)
    files = [claimed(f"s3://b/{i:04d}.wav", run_id="run-2") for i in range(450)]
    result = ledger.claim(files, "run-2", lease_seconds=LEASE)
    assert result.rejected == [f["uri"] for f in taken]
    assert result.applied == [f["uri"] for i, f in enumerate(files) if i % 3]
    owners = {uri: r.run_id for uri, r in ledger.get(f["uri"] for f in files).items()}
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
    ledger = Ledger(ddb, CONFIG.status_table, backoff_base=0, concurrency=2)
    sent = []

    def transact(TransactItems):
        sent.append(TransactItems[0]["Put"]["Item"]["uri"]["S"])
        if fails(sent):
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "nope"}}, "TransactWriteItems")
        return {}

    monkeypatch.setattr(ddb, "transact_write_items", transact)
    with pytest.raises(ClientError, match="nope"):
        ledger.claim([claimed(f"s3://b/{i:04d}.wav") for i in range(1000)], "run-1", lease_seconds=LEASE)
    assert len(sent) <= 4, f"{len(sent)} of 10 transactions sent after one failed"


def test_a_transaction_cancelled_for_capacity_is_retried_until_the_table_serves_it(ddb, monkeypatch):
    ledger = Ledger(ddb, CONFIG.status_table, backoff_base=0)
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
    assert ledger.claim(files, "run-1", lease_seconds=LEASE).applied == [f["uri"] for f in files]
    assert len(throttled) == 15


def test_a_stopped_task_sends_no_more_chunks(ddb, monkeypatch):
    """SIGTERM (Airflow stopping the task) raises in the thread that waits on the chunks."""
    from audio_pipeline.ledger import _store

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
    monkeypatch.setattr(_store, "wait", stopped_while_waiting)
    ledger = Ledger(ddb, CONFIG.status_table, backoff_base=0, concurrency=2)
    with pytest.raises(Stopped):
        ledger.claim([claimed(f"s3://b/{i:04d}.wav") for i in range(1000)], "run-1", lease_seconds=LEASE)
    assert len(sent) <= 4, f"{len(sent)} of 10 transactions sent after the task was stopped"


@pytest.mark.parametrize("outcome", ["accepted", "refused"])
def test_the_marks_owner_replaces_what_another_submitter_recorded_unclear_from_its_mark(ledger, outcome):
    """A second submitter that finds a live mark records the file unclear (it cannot tell a live
    submitter from a dead one); the mark's owner, still sending, then says what happened."""
    f = claimed("s3://b/a.wav")
    ledger.claim([f], "run-1", lease_seconds=LEASE)
    since, marked = ledger.mark_invoking([f], "run-1", LEASE)
    assert marked == [f["uri"]]
    assert ledger.record_invocations([Unclear(f, since, "another submitter found the mark")], LEASE).applied
    assert record(ledger, f["uri"]).invoking_since == since, "the mark stays for its owner"
    other = Accepted(f, since - 1, "s3://o/inputs/x", "s3://o/transcripts/x.out", None)
    assert ledger.record_invocations([other], LEASE).rejected, "only the mark's own submitter"
    if outcome == "accepted":
        answer = Accepted(f, since, "s3://o/inputs/a", "s3://o/transcripts/a.out", "s3://o/failures/a")
        assert ledger.record_invocations([answer], LEASE).applied
        after = record(ledger, f["uri"])
        assert after.status == Status.SUBMITTED and after.output_location == "s3://o/transcripts/a.out"
    else:
        assert ledger.record_invocations([Refused(f, since, "not sent: the object changed")], LEASE).applied
        after = record(ledger, f["uri"])
        assert after.status == Status.FAILED and after.failure_reason == "not sent: the object changed"
    assert after.submit_error is None and after.invoking_since is None


def _waiting(ledger: Ledger) -> list[str]:
    return [r.uri for r in ledger.waiting_for_summary()]


def test_the_waiting_index_holds_a_file_exactly_while_it_is_completed(ledger):
    """Transcribed (a notification, or a result found in S3 late): in the waiting index, oldest
    first; summarised, or claimed again as new content: out of it. A summary error keeps it in."""
    a, b = claimed("s3://b/a.wav"), claimed("s3://b/b.wav")
    assert sorted(ledger.claim([a, b], "run-1", lease_seconds=LEASE).applied) == [a["uri"], b["uri"]]
    for f in (a, b):
        submit(ledger, f)
    assert _waiting(ledger) == []
    complete(ledger, b)
    time.sleep(0.01)  # completed_at, the index's sort key, counts milliseconds
    complete(ledger, a)
    assert _waiting(ledger) == [b["uri"], a["uri"]], "oldest transcript first"
    records = ledger.get([a["uri"], b["uri"]])
    ledger.record_summaries([SummaryFailed(records[a["uri"]], "ThrottlingException")], "run-1")
    ledger.record_summaries([Summarized(records[b["uri"]], "s3://o/b.summary.json", "B.", "m")], "run-1")
    assert _waiting(ledger) == [a["uri"]], "summarised: out; a summary error: still waiting"
    newer = {**a, "etag": "e2", "inference_id": inference_id_for(a["uri"], "e2", "run-2")}
    assert ledger.claim([newer], "run-2", lease_seconds=LEASE).applied == [a["uri"]]
    assert _waiting(ledger) == [], "new content claimed: its old transcript no longer waits"
