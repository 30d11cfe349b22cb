from __future__ import annotations

import json

import pytest

from audio_pipeline import batches
from audio_pipeline.batches import BatchManifests, ClaimSpool, plan_batch_sizes, read_manifest


@pytest.mark.parametrize(
    ("total", "size", "cap", "expected"),
    [
        (0, 10, 5, []),
        (7, 10, 5, [7]),
        (25, 10, 5, [9, 8, 8]),
        (100, 10, 4, [25, 25, 25, 25]),
        (200, 100, 64, [100, 100]),
        (100, 100, 64, [100]),
        (101, 100, 64, [51, 50]),
        (100_000, 100, 64, None),
    ],
)
def test_plan_batch_sizes(total, size, cap, expected):
    sizes = plan_batch_sizes(total, size, cap)
    assert sum(sizes) == total and len(sizes) <= cap
    if expected is not None:
        assert sizes == expected
    assert not sizes or max(sizes) - min(sizes) <= 1


def test_plan_rejects_nonsense():
    with pytest.raises(ValueError, match="batch_size"):
        plan_batch_sizes(10, 0, 5)


def test_manifests_round_trip_and_xcom_stays_small(s3):
    files = [{"uri": f"s3://audio-in/{i}.wav", "etag": "e", "size": 1, "inference_id": f"id{i}"} for i in range(1000)]
    refs = BatchManifests(s3, "audio-transcription-output", "runs/r1/").write(iter(files), len(files), 100, 4)
    assert [r["files"] for r in refs] == [250, 250, 250, 250]
    assert refs[0]["label"] == "batch 1 of 4"
    assert len(json.dumps(refs)) < 1000, "batch references, not file lists, travel through XCom"
    back = [f for r in refs for f in read_manifest(s3, r["manifest"])]
    assert back == files


def _files(n: int) -> list[dict]:
    return [{"uri": f"s3://audio-in/{i}.wav", "etag": "e", "size": 1, "inference_id": f"id{i}"} for i in range(n)]


def test_a_total_that_is_a_multiple_of_the_batch_size_makes_exactly_that_many_full_batches(s3):
    files = _files(200)
    refs = BatchManifests(s3, "audio-transcription-output", "runs/r1/").write(iter(files), 200, 100, 64)
    assert [(r["label"], r["files"]) for r in refs] == [("batch 1 of 2", 100), ("batch 2 of 2", 100)]
    listed = s3.list_objects_v2(Bucket="audio-transcription-output", Prefix="runs/r1/batches/")["Contents"]
    assert sorted(o["Key"] for o in listed) == ["runs/r1/batches/1.json", "runs/r1/batches/2.json"]
    back = [read_manifest(s3, r["manifest"]) for r in refs]
    assert [len(b) for b in back] == [100, 100] and [f for b in back for f in b] == files, "every file once"


def test_the_claim_spool_gives_back_every_file_in_order_from_disk_too(monkeypatch):
    """Past SPOOL_BYTES the spool is a file on disk, not memory; it is read as often as asked."""
    monkeypatch.setattr(batches, "SPOOL_BYTES", 1024)
    files = _files(100)
    with ClaimSpool() as spool:
        for f in files:
            spool.add(f)
        assert spool.count == 100 and spool._file._rolled, "on disk"
        assert list(spool) == files and list(spool) == files
    assert spool._file.closed
