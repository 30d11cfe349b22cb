from __future__ import annotations

from audio_pipeline.operators.submit_batch import SubmitTranscriptionBatchOperator
from tests.plugins.conftest import CONFIG


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


def test_operator_submits_the_batch(batch, runtime, table):
    files, ref = batch
    result = submit_operator(ref).execute({})
    assert result == {"submitted": 3, "failed": 0, "unclear": 0, "already_done": 0}
    assert [c["InputLocation"] for c in runtime.calls] == [f["uri"] for f in files]
    assert {c["ContentType"] for c in runtime.calls} == {"audio/flac"}
    assert {i["status"] for i in table.get_many(f["uri"] for f in files).values()} == {"submitted"}


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
    operator.execute({})
    assert configs == {"S3Hook": {"read_timeout": 7}, "StatusTableHook": {"read_timeout": 7}}


def test_operator_template_fields():
    assert {"batch", "endpoint_name", "status_table", "aws_conn_id"} <= set(
        SubmitTranscriptionBatchOperator.template_fields
    )
