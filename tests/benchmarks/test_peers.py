"""make bench-peers: the doc's side-by-side table says what the results file says; the witnesses'
verdict on one design's files; the stock-provider DAG parses as its own bundle."""

from __future__ import annotations

import copy
import json

import boto3
import pytest
from moto import mock_aws

from benchmarks.peers import report
from benchmarks.peers.__main__ import main as peers_main
from benchmarks.peers.witnessed import endpoint_time, judge
from benchmarks.report import ROOT
from local.witness import BEDROCK_RUNTIME, MODEL_SERVER, SAGEMAKER_ASYNC, WitnessJournal, text_key
from tests.dags.test_audio_transcription import dagbag


def test_the_committed_doc_matches_the_committed_peers_results():
    runs = report.load_all()
    assert runs, "benchmarks/results/peers-N*.json: run make bench-peers"
    for run in report.shown(runs):
        assert set(run["clean"]) == set(run["faults"]) == {"original", "stock", "package"}
    doc = report.DOC.read_text()
    stale = "docs/benchmarks.md is stale: run python -m benchmarks.peers.report"
    assert report.render(doc, runs, report.load_map_limit()) == doc, stale


def complete_run() -> dict:
    """The largest committed run in which every design's run ended on its own."""
    return copy.deepcopy(next(run for run in report.load_all() if not report.stopped(run)))


def test_a_changed_result_changes_the_table_and_its_ratios(tmp_path):
    run = complete_run()
    run["clean"]["stock"]["calls_per_file"] = 2 * run["clean"]["package"]["calls_per_file"]
    run["faults"]["original"]["lost"] = 12345
    (tmp_path / f"peers-N{run['N']}.json").write_text(json.dumps(run))
    (tmp_path / "peers-N7.json").write_text(json.dumps({**run, "N": 7}))
    loaded = report.load(tmp_path)
    assert loaded is not None and loaded["N"] == run["N"], "the largest N is the one shown"
    text = report.render(report.DOC.read_text(), report.load_all(tmp_path))
    assert "(x2.00)" in text
    assert "| files lost | 12,345 |" in text
    assert "**N = 7**" not in text, "a smaller run is not shown beside a complete one"


def test_a_run_stopped_at_its_deadline_is_shown_with_the_largest_complete_run(tmp_path):
    run = complete_run()
    big = copy.deepcopy({**run, "N": 1_000_000, "deadline_s": 60})
    big["clean"]["stock"]["run_state"] = "stopped at the 60 s deadline"
    (tmp_path / "peers-N1000000.json").write_text(json.dumps(big))
    assert report.shown(report.load_all(tmp_path)) == [big], "no complete run to show beside it"
    for n in (7, 11):
        (tmp_path / f"peers-N{n}.json").write_text(json.dumps({**run, "N": n}))
    text = report.render(report.DOC.read_text(), report.load_all(tmp_path))
    assert "**N = 1,000,000**" in text and "each Airflow run's deadline 60 s" in text
    assert "stopped at the 60 s deadline" in text
    assert "**N = 11**" in text and "**N = 7**" not in text


def test_a_design_measured_again_is_dated_under_its_table(tmp_path):
    run = complete_run()
    run["faults"]["package"] = {**run["faults"]["package"], "lost": 0, "remeasured": "2031-01-02"}
    (tmp_path / f"peers-N{run['N']}.json").write_text(json.dumps(run))
    text = report.render(report.DOC.read_text(), report.load_all(tmp_path))
    note = (
        "Measured again alone, on a fresh stack of the same settings (`python -m benchmarks.peers --designs ... "
        f"--passes faults`): this package on 2031-01-02; the other columns are from {run['date']}."
    )
    assert note in text
    assert "--passes clean`)" not in text, "the first pass was not measured again"


def test_measuring_part_of_a_run_again_needs_the_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    with pytest.raises(SystemExit):
        peers_main(["--files", "7", "--designs", "package", "--passes", "faults"])
    assert "peers-N7.json does not exist" in capsys.readouterr().err


def _journal(directory, name, events):
    journal = WitnessJournal(directory / name)
    for event, fields in events:
        journal.record(event, **fields)
    journal.close()


@mock_aws
def test_the_witnesses_count_lost_and_twice_per_file(tmp_path):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="out")
    uris = [f"s3://in/p/{name}.wav" for name in ("done", "twice", "dropped", "never")]
    accepted, calls, bedrock = [], [], []
    for i, uri in enumerate(uris[:3]):
        text = f"transcript {i}"
        s3.put_object(Bucket="out", Key=f"{i}.out", Body=json.dumps({"text": text}).encode())
        accepted.append(("accepted", {"request_id": f"r{i}", "inference_id": f"i{i}", "input_location": uri,
                                      "output_location": f"s3://out/{i}.out"}))  # fmt: skip
        calls.append(("call", {"call_id": f"c{i}", "input_location": uri, "input_etag": "e", "request_id": f"r{i}"}))
        calls.append(("outcome", {"call_id": f"c{i}", "status": 200}))
        if uri.endswith(("done.wav", "twice.wav")):  # the dropped one's notification never came
            s3.put_object(Bucket="out", Key=f"{i}.summary.json", Body=b"{}")
            bedrock.append(("request", {"action": "converse", "text_key": text_key(text), "outcome": "success"}))
    bedrock.append(bedrock[-1])  # its notification came twice
    _journal(tmp_path, SAGEMAKER_ASYNC, accepted)
    _journal(tmp_path, MODEL_SERVER, calls)
    _journal(tmp_path, BEDROCK_RUNTIME, bedrock)
    verdict = judge(tmp_path, s3, uris)
    assert (verdict["lost"], verdict["processed_twice"]) == (2, 1), verdict["examples"]
    assert verdict["emulator_calls"] == {"sagemaker-runtime:InvokeEndpointAsync": 3, "bedrock-runtime:Converse": 3}


def test_the_endpoint_time_counts_a_design_s_files_sent_as_copies(tmp_path):
    """This package sends a copy of each claimed version (``<inputs>/<inference id>/<bucket>/<key>``):
    its files' model calls are still its own, and another prefix's are not."""
    copy_of = "s3://out/inputs/i0/in/package/a.wav"

    def write(name, *events):
        lines = (json.dumps({"event": event, "time": at, **fields}) for event, at, fields in events)
        (tmp_path / name).write_text("".join(line + "\n" for line in lines))

    accepted = {"request_id": "r0", "inference_id": "i0", "input_location": copy_of, "output_location": "s3://o/0"}
    write(SAGEMAKER_ASYNC, ("accepted", 100.0, accepted))
    write(
        MODEL_SERVER,
        ("call", 101.0, {"call_id": "c0", "input_location": copy_of, "inference_id": "i0", "request_id": "r0"}),
        ("call", 101.0, {"call_id": "c1", "input_location": "s3://in/other/b.wav", "request_id": "r1"}),
        ("outcome", 103.0, {"call_id": "c0", "status": 200}),
        ("outcome", 109.0, {"call_id": "c1", "status": 200}),
    )
    write(BEDROCK_RUNTIME)
    assert endpoint_time(tmp_path, "s3://in/package/", concurrency=2) == {
        "wall_s": 3.0,
        "busy_s": 2.0,
        "utilisation": 0.333,
    }
    assert endpoint_time(tmp_path, "s3://in/nobody/", concurrency=2)["busy_s"] == 0


def test_the_stock_provider_dag_parses_from_its_own_folder(monkeypatch):
    import tests.dags.test_audio_transcription as dags

    monkeypatch.setattr(dags, "DAGS", ROOT / "benchmarks" / "peers" / "dags")
    bag = dagbag()
    assert bag.import_errors == {}
    dag = bag.dags["peers_stock_provider"]
    assert {t.task_id for t in dag.tasks} == {
        "list_audio",
        "per_file.invoke",
        "per_file.wait_for_notification",
        "per_file.summarise",
    }
    assert dag.default_args["retries"] == 3


@pytest.mark.parametrize("agent, caller", [
    ("Boto3/1.4 md/Botocore#1 Airflow/3.3.1 AmPP/9.34", "airflow"),
    ("Boto3/1.4 md/Botocore#1 bench-caller/original", "original"),
    ("Boto3/1.4 md/Botocore#1", "other"),
])  # fmt: skip
def test_the_moto_server_counts_a_named_caller_apart(agent, caller):
    from local.moto_server import calling

    assert calling(agent) == caller


@mock_aws
def test_the_original_listing_function_submits_each_new_key_once(monkeypatch):
    from benchmarks.peers import original

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="audio-in")
    for key in ("p/a.wav", "p/b.mp3", "p/notes.txt"):
        s3.put_object(Bucket="audio-in", Key=key, Body=b"RIFF")
    boto3.client("dynamodb", region_name="us-east-1").create_table(
        TableName=original.TABLE,
        AttributeDefinitions=[{"AttributeName": "uri", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "uri", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    assert original.list_and_submit("s3://audio-in/p/") == {"listed": 2, "submitted": 2, "skipped": 0}
    assert original.list_and_submit("s3://audio-in/p/") == {"listed": 2, "submitted": 0, "skipped": 2}
    item = boto3.client("dynamodb", region_name="us-east-1").get_item(
        TableName=original.TABLE, Key={"uri": {"S": "s3://audio-in/p/a.wav"}}
    )["Item"]
    assert item["status"]["S"] == "submitted" and item["inference_id"]["S"]
