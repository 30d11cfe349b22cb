from __future__ import annotations

from audio_pipeline.ledger import Status
from audio_pipeline.operators.submit_batch import SubmitTranscriptionBatchOperator
from tests.plugins.conftest import CONFIG

RUN_1 = {"run_id": "run-1"}
"""The task's context: the DAG run that claimed the ``batch`` fixture's files."""


def submit_operator(ref, **kwargs):
    return SubmitTranscriptionBatchOperator(
        task_id="submit",
        batch=ref,
        endpoint_name="audio-transcription-async",
        status_table=CONFIG.status_table,
        request_ttl_seconds=600,
        invocation_timeout_seconds=60,
        result_grace_seconds=30,
        output_path=CONFIG.output_path,
        **kwargs,
    )


def test_operator_submits_the_batch(batch, runtime, ledger):
    files, ref = batch
    result = submit_operator(ref).execute(RUN_1)
    assert result == {"submitted": 3, "failed": 0, "unclear": 0, "already_done": 0}
    assert [c["InputLocation"] for c in runtime.calls] == [f["uri"] for f in files]
    assert {c["ContentType"] for c in runtime.calls} == {"audio/flac"}
    records = ledger.get(f["uri"] for f in files)
    assert {(r.status, r.run_id) for r in records.values()} == {(Status.SUBMITTED, "run-1")}
    assert submit_operator(ref).execute(RUN_1)["already_done"] == 3, "never sent twice"
    assert len(runtime.calls) == 3


def test_operator_of_another_run_sends_nothing(batch, runtime, ledger):
    """The run id comes from the task's context: a task of a run that does not hold the files
    (its claim was taken over) sends none of them."""
    files, ref = batch
    result = submit_operator(ref).execute({"run_id": "run-2"})
    assert result == {"submitted": 0, "failed": 0, "unclear": 0, "already_done": 3}
    assert runtime.calls == []
    assert {r.status for r in ledger.get(f["uri"] for f in files).values()} == {Status.PROCESSING}


def test_the_operators_botocore_config_reaches_every_client_it_makes(batch, runtime, monkeypatch):
    from audio_pipeline.operators import submit_batch

    configs = {}

    def spy(name):
        class Spy(getattr(submit_batch, name)):
            def __init__(self, *args, **kwargs):
                configs[name] = kwargs.get("config")
                super().__init__(*args, **kwargs)

        return Spy

    for name in ("S3Hook", "StatusTableHook"):
        monkeypatch.setattr(submit_batch, name, spy(name))
    operator = submit_operator(batch[1])
    operator.botocore_config = {"read_timeout": 7}
    operator.execute(RUN_1)
    assert configs == {"S3Hook": {"read_timeout": 7}, "StatusTableHook": {"read_timeout": 7}}


def test_operator_template_fields():
    assert {"batch", "endpoint_name", "status_table", "aws_conn_id"} <= set(
        SubmitTranscriptionBatchOperator.template_fields
    )
