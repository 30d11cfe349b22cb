from __future__ import annotations

import copy
import json

from audio_pipeline import batch_watcher
from audio_pipeline.batch_watcher import BatchWatcher
from audio_pipeline.state_machine import Status, Transition
from audio_pipeline.status import inference_id_for

from .conftest import CONFIG, notification, sns_envelope
from .test_notifications import WRONG_TYPES

OUT = CONFIG.output_bucket


def submitted_batch(table, s3, n, run_id="run-1", deadline=10_000, prefix="calls/", in_order=False):
    """``n`` submitted files; ``in_order``: submitted one after another (deadlines ``deadline + i``)."""
    files = []
    for i in range(n):
        uri = f"s3://audio-in/{prefix}{i}.wav"
        files.append({"uri": uri, "etag": "e", "size": 1, "inference_id": inference_id_for(uri, "e", run_id)})
    table.claim(files, run_id)
    table.apply(
        [
            Transition(
                f["uri"],
                f["inference_id"],
                Status.SUBMITTED,
                {
                    "output_location": f"s3://{OUT}/transcripts/{f['inference_id']}.out",
                    "failure_location": f"s3://{OUT}/failures/{f['inference_id']}-error.out",
                    "deadline": deadline + i if in_order else deadline,
                },
            )
            for i, f in enumerate(files)
        ]
    )
    return files


def message(body: str, n: int = 0) -> dict:
    return {"MessageId": f"m{n}", "ReceiptHandle": f"r{n}", "Body": body}


def success_for(f, n=0, wrap=sns_envelope):
    doc = notification("success", inference_id=f["inference_id"], input_location=f["uri"])
    doc["responseParameters"]["outputLocation"] = f"s3://{OUT}/transcripts/{f['inference_id']}.out"
    return message(wrap(doc), n)


def failure_for(f, n=0):
    return message(sns_envelope(notification("failure", inference_id=f["inference_id"], input_location=f["uri"])), n)


def watcher(table, s3, files, clock=lambda: 0.0):
    w = BatchWatcher(table, s3, files, fallback_deadline=50_000, clock=clock, refresh_interval_seconds=0)
    w.refresh()
    return w


def test_success_and_failure_notifications_settle_the_batch(table, s3):
    files = submitted_batch(table, s3, 2)
    w = watcher(table, s3, files)
    result = w.record_messages([success_for(files[0], 0), failure_for(files[1], 1)])
    assert result.recorded == 2 and len(result.delete) == 2
    assert w.done and w.settled == {"completed": 1, "failed": 1}
    items = table.get_many(f["uri"] for f in files)
    assert items[files[1]["uri"]]["failure_reason"].startswith("ClientError: Received server error (500)")


def test_duplicates_raw_delivery_and_strangers(table, s3):
    files = submitted_batch(table, s3, 1)
    w = watcher(table, s3, files)
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


def test_notification_of_another_batch_is_recorded_for_it(table, s3):
    mine = submitted_batch(table, s3, 1, run_id="run-1")
    other_uri = "s3://audio-in/other/x.wav"
    other = {"uri": other_uri, "etag": "e", "size": 1, "inference_id": inference_id_for(other_uri, "e", "run-2")}
    table.claim([other], "run-2")
    w = watcher(table, s3, mine)
    result = w.record_messages([success_for(other, 0)])
    assert result.recorded == 1
    assert table.get_many([other_uri])[other_uri]["status"] == "completed"
    assert not w.done


def test_malformed_message_stays_on_the_queue(table, s3):
    files = submitted_batch(table, s3, 1)
    w = watcher(table, s3, files)
    result = w.record_messages([message("definitely not json", 0), message(json.dumps({"Type": "Other"}), 1)])
    assert result.malformed == 2 and result.delete == []
    assert not w.done


def test_strangers_with_wrong_field_types_leave_the_batch_untouched(table, s3):
    files = submitted_batch(table, s3, 2)
    w = watcher(table, s3, files)
    strangers = []
    for n, (doc, _) in enumerate(WRONG_TYPES.values(), start=10):
        doc = copy.deepcopy(doc)  # posing as this batch's first file wherever the field types allow
        if isinstance(doc, dict) and isinstance(doc["inferenceId"], str):
            doc["inferenceId"] = files[0]["inference_id"]
        request = doc.get("requestParameters") if isinstance(doc, dict) else None
        if isinstance(request, dict) and isinstance(request["inputLocation"], str):
            request["inputLocation"] = files[0]["uri"]
        strangers.append(message(sns_envelope(doc), n))
    result = w.record_messages([*strangers[:3], success_for(files[0], 0), *strangers[3:], failure_for(files[1], 1)])
    assert result.malformed == len(WRONG_TYPES) and result.recorded == 2
    assert {e["ReceiptHandle"] for e in result.delete} == {"r0", "r1"}, "strangers are left for the dead-letter queue"
    assert w.done and w.settled == {"completed": 1, "failed": 1}


def test_matches_by_inference_id_before_input_location(table, s3):
    files = submitted_batch(table, s3, 1)
    w = watcher(table, s3, files)
    doc = notification("success", inference_id=files[0]["inference_id"])
    doc["requestParameters"]["inputLocation"] = "https://audio-in.s3.amazonaws.com/calls/0.wav"  # another spelling
    result = w.record_messages([message(sns_envelope(doc))])
    assert result.recorded == 1 and w.done
    assert table.get_many([files[0]["uri"]])[files[0]["uri"]]["status"] == "completed"


def test_a_stale_claims_notification_does_not_hide_the_current_one(table, s3):
    files = submitted_batch(table, s3, 1)
    w = watcher(table, s3, files)
    stale = dict(files[0], inference_id=inference_id_for(files[0]["uri"], "e", "run-0"))  # an earlier run's claim
    result = w.record_messages([success_for(stale, 0), success_for(files[0], 1), success_for(files[0], 2)])
    assert w.done and result.recorded == 1 and result.ignored == 2
    assert {e["ReceiptHandle"] for e in result.delete} == {"r0", "r1", "r2"}
    assert table.get_many([files[0]["uri"]])[files[0]["uri"]]["status"] == "completed"


def test_refresh_sees_what_other_sensors_recorded(table, s3):
    files = submitted_batch(table, s3, 3)
    w = watcher(table, s3, files)
    table.apply([Transition(files[0]["uri"], files[0]["inference_id"], Status.COMPLETED)])
    w.refresh()
    assert set(w.pending) == {files[1]["uri"], files[2]["uri"]}


def test_lost_notification_is_reconciled_from_s3(table, s3):
    files = submitted_batch(table, s3, 3)
    s3.put_object(Bucket=OUT, Key=f"transcripts/{files[0]['inference_id']}.out", Body=b'{"text": "hi"}')
    s3.put_object(Bucket=OUT, Key=f"failures/{files[1]['inference_id']}-error.out", Body=b"model exploded")
    w = watcher(table, s3, files)
    w.reconcile()
    items = table.get_many(f["uri"] for f in files)
    assert items[files[0]["uri"]]["status"] == "completed"
    assert items[files[1]["uri"]]["status"] == "failed"
    assert "model exploded" in items[files[1]["uri"]]["failure_reason"]
    assert list(w.pending) == [files[2]["uri"]]


def test_silent_file_fails_at_its_deadline(table, s3):
    files = submitted_batch(table, s3, 1, deadline=100)
    now = [50.0]
    w = watcher(table, s3, files, clock=lambda: now[0])
    w.expire()
    assert not w.done
    now[0] = 101.0
    w.expire()
    assert w.done
    reason = table.get_many([files[0]["uri"]])[files[0]["uri"]]["failure_reason"]
    assert "no result notification" in reason and "deadline" in reason


def test_a_file_whose_submission_got_no_clear_answer_fails_saying_its_result_could_not_be_looked_for(table, s3):
    uri = "s3://audio-in/calls/unclear.wav"
    f = {"uri": uri, "etag": "e", "size": 1, "inference_id": inference_id_for(uri, "e", "run-1")}
    table.claim([f], "run-1")
    unclear = "ReadTimeoutError: Read timeout on endpoint URL"  # as the submitter records it: no location
    assert table.apply(
        [Transition(uri, f["inference_id"], Status.SUBMITTED, {"submit_error": unclear, "deadline": 100})]
    ).applied
    w = watcher(table, s3, [f], clock=lambda: 101.0)
    w.expire()
    reason = table.get_many([f["uri"]])[f["uri"]]["failure_reason"]
    assert reason.startswith(f"InvokeEndpointAsync got no clear answer ({unclear}), so where SageMaker would write")
    assert "no result notification" in reason and "deadline" in reason


def test_tick_looks_in_s3_every_interval_however_busy_the_queue(table, s3):
    files = submitted_batch(table, s3, 2)
    others = submitted_batch(table, s3, 30, run_id="run-2", prefix="other/")  # a busy shared queue: another run
    s3.put_object(Bucket=OUT, Key=f"transcripts/{files[0]['inference_id']}.out", Body=b"{}")  # its notification lost
    now = [0.0]
    w = BatchWatcher(table, s3, files, fallback_deadline=1e9, clock=lambda: now[0], reconcile_interval_seconds=60)
    w.refresh()
    for n, other in enumerate(others):  # a notification every 2 s, never a quiet interval
        now[0] = 2.0 * (n + 1)
        w.record_messages([success_for(other, n)])
        w.tick()
    assert list(w.pending) == [files[1]["uri"]], "the file whose notification was lost is settled from S3"
    assert w.settled == {"completed": 1}


def test_a_file_past_its_deadline_is_looked_for_in_s3_before_it_fails(table, s3):
    files = submitted_batch(table, s3, 2, deadline=100)
    s3.put_object(Bucket=OUT, Key=f"transcripts/{files[0]['inference_id']}.out", Body=b"{}")
    now = [101.0]
    w = BatchWatcher(table, s3, files, fallback_deadline=1e9, clock=lambda: now[0], reconcile_interval_seconds=1e9)
    w.refresh()
    w.tick()
    assert w.done and w.settled == {"completed": 1, "failed": 1}
    items = table.get_many(f["uri"] for f in files)
    assert [items[f["uri"]]["status"] for f in files] == ["completed", "failed"]


def counting_heads(s3, monkeypatch):
    heads = []
    real_head = s3.head_object
    monkeypatch.setattr(s3, "head_object", lambda **kw: heads.append(kw["Key"]) or real_head(**kw))
    return heads


def test_a_periodic_look_goes_to_files_overtaken_by_recorded_results_not_to_queued_ones(table, s3, monkeypatch):
    """Results come in submission order (the endpoint's queue): a file submitted before one whose
    result is recorded has likely lost its notification; files behind are waiting in the queue."""
    monkeypatch.setattr(batch_watcher, "HEAD_LOOKS", 0)
    files = submitted_batch(table, s3, 6, in_order=True)
    s3.put_object(Bucket=OUT, Key=f"transcripts/{files[1]['inference_id']}.out", Body=b"{}")  # notification lost
    w = watcher(table, s3, files)
    w.record_messages([success_for(files[2], 0), success_for(files[3], 1)])
    heads = counting_heads(s3, monkeypatch)
    w.reconcile()
    assert w.settled == {"completed": 3} and files[1]["uri"] not in w.pending
    looked = {key.split("/")[1].split(".")[0].removesuffix("-error") for key in heads}
    assert looked == {files[0]["inference_id"], files[1]["inference_id"]}, "files 4 and 5 are queued: not looked for"


def test_the_oldest_files_of_a_silent_batch_are_looked_for_ever_less_often(table, s3, monkeypatch):
    monkeypatch.setattr(batch_watcher, "HEAD_LOOKS", 2)
    files = submitted_batch(table, s3, 5, in_order=True)
    now = [0.0]
    w = BatchWatcher(table, s3, files, fallback_deadline=1e9, clock=lambda: now[0], reconcile_interval_seconds=60)
    w.refresh()
    heads = counting_heads(s3, monkeypatch)
    looks = []
    for t in (0, 60, 120, 180, 300, 420):
        now[0] = t
        before = len(heads)
        w.reconcile()
        looks.append((len(heads) - before) // 2)  # output and failure object: two HeadObject a file
    assert looks == [2, 2, 0, 2, 0, 2], "waits of 60, 120, 240 s: a batch queued for hours costs a few calls"


def test_a_batch_whose_every_notification_is_lost_still_settles_from_s3(table, s3, monkeypatch):
    monkeypatch.setattr(batch_watcher, "HEAD_LOOKS", 2)
    files = submitted_batch(table, s3, 5, in_order=True)
    for f in files:
        s3.put_object(Bucket=OUT, Key=f"transcripts/{f['inference_id']}.out", Body=b"{}")
    w = watcher(table, s3, files)
    for _ in range(3):
        w.reconcile()
    assert w.done and w.settled == {"completed": 5}


def test_a_refresh_reads_from_the_oldest_submission_until_a_chunk_shows_no_change(table, s3, monkeypatch):
    files = submitted_batch(table, s3, 250, in_order=True)
    w = watcher(table, s3, files)
    reads = []
    real_get = table.client.batch_get_item
    monkeypatch.setattr(table.client, "batch_get_item", lambda **kw: reads.append(1) or real_get(**kw))
    w.refresh(full=False)
    assert len(reads) == 1, "nothing settled: the 150 files behind the first 100 are not read"
    table.apply([Transition(f["uri"], f["inference_id"], Status.COMPLETED) for f in files[:150]])  # by others
    reads.clear()
    w.refresh(full=False)
    assert len(reads) == 3 and len(w.pending) == 100 and w.settled == {"completed": 150}
    table.apply([Transition(f["uri"], f["inference_id"], Status.COMPLETED) for f in files[-1:]])  # out of order
    w.refresh()  # a full refresh reads every pending file
    assert len(w.pending) == 99
