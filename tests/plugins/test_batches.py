from __future__ import annotations

import json

import pytest

from audio_pipeline.batches import BatchManifests, plan_batch_sizes, read_manifest


@pytest.mark.parametrize(
    ("total", "size", "cap", "expected"),
    [
        (0, 10, 5, []),
        (7, 10, 5, [7]),
        (25, 10, 5, [9, 8, 8]),
        (100, 10, 4, [25, 25, 25, 25]),
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
    refs = BatchManifests(s3, "audio-transcription-output", "runs/r1/").write(files, 100, 4)
    assert [r["files"] for r in refs] == [250, 250, 250, 250]
    assert refs[0]["label"] == "batch 1 of 4"
    assert len(json.dumps(refs)) < 1000, "batch references, not file lists, travel through XCom"
    back = [f for r in refs for f in read_manifest(s3, r["manifest"])]
    assert back == files
