from __future__ import annotations

import copy
import json

from audio_pipeline import batch_watcher
from audio_pipeline.batch_watcher import BatchWatcher
from audio_pipeline.ledger import Accepted, Ledger, Result, Status, Unclear, inference_id_for
from audio_pipeline.pinning import pinned_location
from audio_pipeline.submission import GROUP_SIZE

from .conftest import CONFIG, notification, sns_envelope
from .test_notifications import WRONG_TYPES

OUT = CONFIG.output_bucket
OUTPUT_PATH = CONFIG.output_path
WINDOW = 60


def at(ledger, now: float) -> Ledger:
    """The same table, its clock stopped at ``now``."""
    return Ledger(ledger.store.client, ledger.table_name, backoff_base=0, clock=lambda: now)


def claim(ledger, uris, run_id="run-1", now=0.0, lease_seconds=WINDOW):
    files = [{"uri": u, "etag": "e", "size": 1, "inference_id": inference_id_for(u, "e", run_id)} for u in uris]
    assert at(ledger, now).claim(files, run_id, lease_seconds=lease_seconds).applied == list(uris)
    return files


def pinned(f) -> str:
    """The copy the submitter sends for ``f`` (:mod:`audio_pipeline.pinning`): a notification's inputLocation."""
    return pinned_location(CONFIG.inputs_path, f["inference_id"], f["uri"])


def output_of(f) -> str:
    return f"s3://{OUT}/transcripts/{f['inference_id']}.out"


def send(ledger, files, deadline, run_id="run-1", unclear=None):
    """Send ``files`` as the submitter does, at ``deadline - WINDOW``: their deadline is ``deadline``.
    ``unclear``: no answer came (this reason), so no output location is known."""
    timed = at(ledger, deadline - WINDOW)
    since, marked = timed.mark_invoking(files, run_id, WINDOW)
    assert marked == [f["uri"] for f in files]
    if unclear:
        outcomes = [Unclear(f, since, unclear) for f in files]
    else:
        failures = [f"s3://{OUT}/failures/{f['inference_id']}-error.out" for f in files]
        outcomes = [Accepted(f, since, pinned(f), output_of(f), x) for f, x in zip(files, failures, strict=True)]
    assert timed.record_invocations(outcomes, WINDOW).applied == marked


def submitted_batch(ledger, n, run_id="run-1", deadline=10_000, prefix="calls/", in_order=False, group=1):
    """``n`` submitted files; ``in_order``: submitted one group of ``group`` after another (the
    deadlines of the ``i``-th file's group ``deadline + i // group``)."""
    uris = [f"s3://audio-in/{prefix}{i}.wav" for i in range(n)]
    files = claim(ledger, uris, run_id, now=deadline - WINDOW, lease_seconds=WINDOW + n)
    if in_order:
        for start in range(0, n, group):
            send(ledger, files[start : start + group], deadline + start // group, run_id)
    else:
        send(ledger, files, deadline, run_id)
    return files


def completed_by_others(ledger, files):
    """Record the files' results as another sensor would."""
    results = [Result(f["uri"], f["inference_id"], output_location=output_of(f)) for f in files]
    assert len(ledger.record_results(results, OUTPUT_PATH).applied) == len(files)


def message(body: str, n: int = 0) -> dict:
    return {"MessageId": f"m{n}", "ReceiptHandle": f"r{n}", "Body": body}


def success_for(f, n=0, wrap=sns_envelope, output=None):
    doc = notification("success", inference_id=f["inference_id"], input_location=pinned(f))
    doc["responseParameters"]["outputLocation"] = output or output_of(f)
    return message(wrap(doc), n)


def failure_for(f, n=0):
    return message(sns_envelope(notification("failure", inference_id=f["inference_id"], input_location=pinned(f))), n)


def watcher(ledger, s3, files, clock=lambda: 0.0):
    w = BatchWatcher(
        ledger, s3, files, fallback_deadline=50_000, output_path=OUTPUT_PATH, clock=clock, refresh_interval_seconds=0
    )
    w.refresh()
    return w


def test_success_and_failure_notifications_settle_the_batch(ledger, s3):
    files = submitted_batch(ledger, 2)
    w = watcher(ledger, s3, files)
    result = w.record_messages([success_for(files[0], 0), failure_for(files[1], 1)])
    assert result.recorded == 2 and len(result.delete) == 2
    assert w.done and w.settled == {"completed": 1, "failed": 1}
    records = ledger.get(f["uri"] for f in files)
    assert records[files[0]["uri"]].status == Status.COMPLETED
    assert records[files[0]["uri"]].output_location == output_of(files[0])
    assert records[files[1]["uri"]].failure_reason.startswith("ClientError: Received server error (500)")


def test_duplicates_raw_delivery_and_strangers(ledger, s3):
    files = submitted_batch(ledger, 1)
    w = watcher(ledger, s3, files)
    stranger = dict(files[0], inference_id="someone-elses-claim")
    result = w.record_messages(
        [
            success_for(files[0], 0),
            success_for(files[0], 1, wrap=json.dumps),  # the same notification again, raw delivery
            success_for(stranger, 2),
        ]
    )
    assert result.recorded == 1 and result.ignored == 2
    assert {e["ReceiptHandle"] for e in result.delete} == {"r0", "r1", "r2"}, "duplicates are deleted, not kept"
    assert w.done


def test_notification_of_another_batch_is_recorded_for_it(ledger, s3):
    mine = submitted_batch(ledger, 1, run_id="run-1")
    (other,) = claim(ledger, ["s3://audio-in/other/x.wav"], "run-2", now=10_000 - WINDOW)
    w = watcher(ledger, s3, mine)
    result = w.record_messages([success_for(other, 0)])
    assert result.recorded == 1
    assert ledger.get([other["uri"]])[other["uri"]].status == Status.COMPLETED
    assert not w.done


def test_malformed_message_stays_on_the_queue(ledger, s3):
    files = submitted_batch(ledger, 1)
    w = watcher(ledger, s3, files)
    result = w.record_messages([message("definitely not json", 0), message(json.dumps({"Type": "Other"}), 1)])
    assert result.malformed == 2 and result.delete == []
    assert not w.done


def test_strangers_with_wrong_field_types_leave_the_batch_untouched(ledger, s3):
    files = submitted_batch(ledger, 2)
    w = watcher(ledger, s3, files)
    strangers = []
    for n, (doc, _) in enumerate(WRONG_TYPES.values(), start=10):
        doc = copy.deepcopy(doc)  # posing as this batch's first file wherever the field types allow
        if isinstance(doc, dict) and isinstance(doc["inferenceId"], str):
            doc["inferenceId"] = files[0]["inference_id"]
        request = doc.get("requestParameters") if isinstance(doc, dict) else None
        if isinstance(request, dict) and isinstance(request["inputLocation"], str):
            request["inputLocation"] = pinned(files[0])
        strangers.append(message(sns_envelope(doc), n))
    result = w.record_messages([*strangers[:3], success_for(files[0], 0), *strangers[3:], failure_for(files[1], 1)])
    assert result.malformed == len(WRONG_TYPES) and result.recorded == 2
    assert {e["ReceiptHandle"] for e in result.delete} == {"r0", "r1"}, "strangers are left for the dead-letter queue"
    assert w.done and w.settled == {"completed": 1, "failed": 1}


def test_matches_by_inference_id_before_input_location(ledger, s3):
    files = submitted_batch(ledger, 1)
    w = watcher(ledger, s3, files)
    doc = notification("success", inference_id=files[0]["inference_id"])
    doc["requestParameters"]["inputLocation"] = "https://audio-in.s3.amazonaws.com/calls/0.wav"  # another spelling
    doc["responseParameters"]["outputLocation"] = output_of(files[0])
    result = w.record_messages([message(sns_envelope(doc))])
    assert result.recorded == 1 and w.done
    assert ledger.get([files[0]["uri"]])[files[0]["uri"]].status == Status.COMPLETED


def test_a_stale_claims_notification_does_not_hide_the_current_one(ledger, s3):
    files = submitted_batch(ledger, 1)
    w = watcher(ledger, s3, files)
    stale = dict(files[0], inference_id=inference_id_for(files[0]["uri"], "e", "run-0"))  # an earlier run's claim
    result = w.record_messages([success_for(stale, 0), success_for(files[0], 1), success_for(files[0], 2)])
    assert w.done and result.recorded == 1 and result.ignored == 2
    assert {e["ReceiptHandle"] for e in result.delete} == {"r0", "r1", "r2"}
    record = ledger.get([files[0]["uri"]])[files[0]["uri"]]
    assert record.status == Status.COMPLETED and record.output_location == output_of(files[0])


def test_a_success_is_recorded_only_where_its_submission_said_and_never_outside_the_output_path(ledger, s3):
    """A success naming an output other than the one recorded at submission (a forged or confused
    notification) is not recorded, nor one outside the endpoint's S3OutputPath, even for a file
    whose submission is not recorded yet; the right one is."""
    files = submitted_batch(ledger, 1)
    (unrecorded,) = claim(ledger, ["s3://audio-in/calls/fast.wav"], now=10_000 - WINDOW)
    since, marked = at(ledger, 10_000 - WINDOW).mark_invoking([unrecorded], "run-1", WINDOW)
    assert marked == [unrecorded["uri"]]  # being sent: its output location is not recorded yet
    w = watcher(ledger, s3, [*files, unrecorded])
    elsewhere = f"s3://{OUT}/transcripts/someone-else.out"  # inside the output path, not this claim's
    outside = "s3://attacker-bucket/transcripts/x.out"

    result = w.record_messages([success_for(files[0], 0, output=elsewhere), success_for(unrecorded, 1, output=outside)])

    assert result.recorded == 0 and result.ignored == 2 and not w.settled
    records = ledger.get([files[0]["uri"], unrecorded["uri"]])
    assert records[files[0]["uri"]].status == Status.SUBMITTED
    assert records[files[0]["uri"]].output_location == output_of(files[0])
    assert records[unrecorded["uri"]].status == Status.PROCESSING
    assert records[unrecorded["uri"]].output_location is None

    result = w.record_messages([success_for(files[0], 2), success_for(unrecorded, 3)])

    assert result.recorded == 2 and w.done and w.settled == {"completed": 2}
    records = ledger.get([files[0]["uri"], unrecorded["uri"]])
    assert records[files[0]["uri"]].output_location == output_of(files[0])
    assert records[unrecorded["uri"]].output_location == output_of(unrecorded)
    assert {r.status for r in records.values()} == {Status.COMPLETED}


def test_a_file_another_run_has_claimed_since_is_left_to_it(ledger, s3):
    """run-1's lease ran out and run-2 claimed the file (a new inference id): run-1's watcher
    settles it as a lost claim, neither waits for it nor fails it at run-1's deadline."""
    uris = ["s3://audio-in/calls/kept.wav", "s3://audio-in/calls/lost.wav"]
    kept, lost = claim(ledger, uris, now=0, lease_seconds=100)
    send(ledger, [kept], deadline=150)  # sent at 90: its deadline is 150
    (taken,) = claim(ledger, [lost["uri"]], "run-2", now=101)  # past run-1's lease (100)
    now = [120.0]
    w = watcher(ledger, s3, [kept, lost], clock=lambda: now[0])

    assert list(w.pending) == [kept["uri"]] and w.settled == {"lost claim": 1}
    now[0] = 20_000.0  # past every deadline of run-1
    w.tick()
    assert w.done and w.settled == {"lost claim": 1, "failed": 1}
    record = ledger.get([lost["uri"]])[lost["uri"]]
    assert (record.status, record.run_id, record.inference_id) == (Status.PROCESSING, "run-2", taken["inference_id"])
    assert record.failure_reason is None


def test_refresh_sees_what_other_sensors_recorded(ledger, s3):
    files = submitted_batch(ledger, 3)
    w = watcher(ledger, s3, files)
    completed_by_others(ledger, files[:1])
    w.refresh()
    assert set(w.pending) == {files[1]["uri"], files[2]["uri"]}
    assert w.settled == {"completed": 1}


def test_lost_notification_is_reconciled_from_s3(ledger, s3):
    files = submitted_batch(ledger, 3)
    s3.put_object(Bucket=OUT, Key=f"transcripts/{files[0]['inference_id']}.out", Body=b'{"text": "hi"}')
    s3.put_object(Bucket=OUT, Key=f"failures/{files[1]['inference_id']}-error.out", Body=b"model exploded")
    w = watcher(ledger, s3, files)
    w.reconcile()
    records = ledger.get(f["uri"] for f in files)
    assert records[files[0]["uri"]].status == Status.COMPLETED
    assert records[files[1]["uri"]].status == Status.FAILED
    assert "model exploded" in records[files[1]["uri"]].failure_reason
    assert list(w.pending) == [files[2]["uri"]]


def test_silent_file_fails_at_its_deadline(ledger, s3):
    files = submitted_batch(ledger, 1, deadline=100)
    now = [50.0]
    w = watcher(ledger, s3, files, clock=lambda: now[0])
    w.expire()
    assert not w.done
    now[0] = 101.0
    w.expire()
    assert w.done
    reason = ledger.get([files[0]["uri"]])[files[0]["uri"]].failure_reason
    assert "no result notification" in reason and "deadline" in reason


def test_a_file_never_sent_before_its_lease_ran_out_fails_never_sent_for_the_next_run(ledger, s3):
    """Claimed, never marked (its lease ran out before a submitter got to it): past the deadline it
    fails ``never_sent`` saying so, and the next run claims it, where a silent endpoint's file
    (sent) fails for good."""
    (unsent,) = claim(ledger, ["s3://audio-in/calls/unsent.wav"], now=100 - WINDOW)
    (sent,) = submitted_batch(ledger, 1, deadline=100, prefix="sent/")
    w = watcher(ledger, s3, [unsent, sent], clock=lambda: 101.0)
    w.expire()
    assert w.done and w.settled == {"failed": 2}
    records = ledger.get([unsent["uri"], sent["uri"]])
    assert (
        records[unsent["uri"]].never_sent
        and "lease ran out before it was sent" in records[unsent["uri"]].failure_reason
    )
    assert not records[sent["uri"]].never_sent and "no result notification" in records[sent["uri"]].failure_reason
    again = [{**f, "inference_id": inference_id_for(f["uri"], "e", "run-2")} for f in (unsent, sent)]
    assert at(ledger, 102.0).claim(again, "run-2", lease_seconds=WINDOW).applied == [unsent["uri"]]


def test_a_file_whose_submission_got_no_clear_answer_fails_saying_its_result_could_not_be_looked_for(ledger, s3):
    (f,) = claim(ledger, ["s3://audio-in/calls/unclear.wav"], now=100 - WINDOW)
    unclear = "ReadTimeoutError: Read timeout on endpoint URL"  # as the submitter records it: no location
    send(ledger, [f], deadline=100, unclear=unclear)
    w = watcher(ledger, s3, [f], clock=lambda: 101.0)
    w.expire()
    reason = ledger.get([f["uri"]])[f["uri"]].failure_reason
    assert reason.startswith(f"InvokeEndpointAsync got no clear answer ({unclear}), so where SageMaker would write")
    assert "no result notification" in reason and "deadline" in reason


def test_tick_looks_in_s3_every_interval_however_busy_the_queue(ledger, s3):
    files = submitted_batch(ledger, 2)
    others = submitted_batch(ledger, 30, run_id="run-2", prefix="other/")  # a busy shared queue: another run
    s3.put_object(Bucket=OUT, Key=f"transcripts/{files[0]['inference_id']}.out", Body=b"{}")  # its notification lost
    now = [0.0]
    w = BatchWatcher(ledger, s3, files, fallback_deadline=1e9, clock=lambda: now[0], reconcile_interval_seconds=60)
    w.refresh()
    for n, other in enumerate(others):  # a notification every 2 s, never a quiet interval
        now[0] = 2.0 * (n + 1)
        w.record_messages([success_for(other, n)])
        w.tick()
    assert list(w.pending) == [files[1]["uri"]], "the file whose notification was lost is settled from S3"
    assert w.settled == {"completed": 1}


def test_a_file_past_its_deadline_is_looked_for_in_s3_before_it_fails(ledger, s3):
    files = submitted_batch(ledger, 2, deadline=100)
    s3.put_object(Bucket=OUT, Key=f"transcripts/{files[0]['inference_id']}.out", Body=b"{}")
    now = [101.0]
    w = BatchWatcher(ledger, s3, files, fallback_deadline=1e9, clock=lambda: now[0], reconcile_interval_seconds=1e9)
    w.refresh()
    w.tick()
    assert w.done and w.settled == {"completed": 1, "failed": 1}
    records = ledger.get(f["uri"] for f in files)
    assert [records[f["uri"]].status for f in files] == ["completed", "failed"]


def counting_heads(s3, monkeypatch):
    heads = []
    real_head = s3.head_object
    monkeypatch.setattr(s3, "head_object", lambda **kw: heads.append(kw["Key"]) or real_head(**kw))
    return heads


def test_a_periodic_look_goes_to_files_overtaken_by_recorded_results_not_to_queued_ones(ledger, s3, monkeypatch):
    """Results come in submission order (the endpoint's queue): a file submitted before one whose
    result is recorded has likely lost its notification; files behind are waiting in the queue."""
    monkeypatch.setattr(batch_watcher, "HEAD_LOOKS", 0)
    files = submitted_batch(ledger, 6, in_order=True)
    s3.put_object(Bucket=OUT, Key=f"transcripts/{files[1]['inference_id']}.out", Body=b"{}")  # notification lost
    w = watcher(ledger, s3, files)
    w.record_messages([success_for(files[2], 0), success_for(files[3], 1)])
    heads = counting_heads(s3, monkeypatch)
    w.reconcile()
    assert w.settled == {"completed": 3} and files[1]["uri"] not in w.pending
    looked = {key.split("/")[1].split(".")[0].removesuffix("-error") for key in heads}
    assert looked == {files[0]["inference_id"], files[1]["inference_id"]}, "files 4 and 5 are queued: not looked for"


def test_a_periodic_look_goes_to_files_submitted_with_one_whose_result_is_recorded(ledger, s3, monkeypatch):
    """The submitter records a group of files with one deadline (to the second): a file of the last
    group whose notification was lost is looked for at the next reconcile, not left to the few
    oldest looked at ever less often (at 30% lost, a batch's tail took many reconcile intervals)."""
    monkeypatch.setattr(batch_watcher, "HEAD_LOOKS", 0)
    files = submitted_batch(ledger, 2 * GROUP_SIZE, in_order=True, group=GROUP_SIZE)
    lost = files[-2]
    s3.put_object(Bucket=OUT, Key=f"transcripts/{lost['inference_id']}.out", Body=b"{}")
    w = watcher(ledger, s3, files)
    w.record_messages([success_for(f, n) for n, f in enumerate(files) if f is not lost])
    w.reconcile()
    assert w.done and w.settled == {"completed": 2 * GROUP_SIZE}


def test_the_oldest_files_of_a_silent_batch_are_looked_for_ever_less_often(ledger, s3, monkeypatch):
    monkeypatch.setattr(batch_watcher, "HEAD_LOOKS", 2)
    files = submitted_batch(ledger, 5, in_order=True)
    now = [0.0]
    w = BatchWatcher(ledger, s3, files, fallback_deadline=1e9, clock=lambda: now[0], reconcile_interval_seconds=60)
    w.refresh()
    heads = counting_heads(s3, monkeypatch)
    looks = []
    for t in (0, 60, 120, 180, 300, 420):
        now[0] = t
        before = len(heads)
        w.reconcile()
        looks.append((len(heads) - before) // 2)  # output and failure object: two HeadObject a file
    assert looks == [2, 2, 0, 2, 0, 2], "waits of 60, 120, 240 s: a batch queued for hours costs a few calls"


def test_a_batch_whose_every_notification_is_lost_still_settles_from_s3(ledger, s3, monkeypatch):
    monkeypatch.setattr(batch_watcher, "HEAD_LOOKS", 2)
    files = submitted_batch(ledger, 5, in_order=True)
    for f in files:
        s3.put_object(Bucket=OUT, Key=f"transcripts/{f['inference_id']}.out", Body=b"{}")
    w = watcher(ledger, s3, files)
    for _ in range(3):
        w.reconcile()
    assert w.done and w.settled == {"completed": 5}


def test_a_refresh_reads_from_the_oldest_submission_until_a_chunk_shows_no_change(ledger, s3, monkeypatch):
    files = submitted_batch(ledger, 250, in_order=True, group=GROUP_SIZE)  # as the submitter records them
    w = watcher(ledger, s3, files)
    reads = []
    real_get = ledger.store.client.batch_get_item
    monkeypatch.setattr(ledger.store.client, "batch_get_item", lambda **kw: reads.append(1) or real_get(**kw))
    w.refresh(full=False)
    assert len(reads) == 1, "nothing settled: the 150 files behind the first 100 are not read"
    completed_by_others(ledger, files[:150])
    reads.clear()
    w.refresh(full=False)
    assert len(reads) == 3 and len(w.pending) == 100 and w.settled == {"completed": 150}
    completed_by_others(ledger, files[-1:])  # out of order
    w.refresh()  # a full refresh reads every pending file
    assert len(w.pending) == 99
