"""What tells an operator that something went wrong, and what a first deploy does before anyone asks."""

from __future__ import annotations

import json

import aws_cdk as cdk
import botocore.session
import pytest

from audio_pipeline import metrics_names as metrics
from audio_pipeline.config import StackNames
from infra.settings import WEBSERVER_ACCESS_MODES, InfraSettings, SettingError
from infra.stacks.inference import CONCURRENT_INVOCATIONS_PER_INSTANCE, STARTUP_TIMEOUT_SECONDS
from infra.stacks.monitoring import ALARM_PREFIX, BACKLOG_ALARM_MINUTES
from tests.infra.test_stack import logical_id, pipeline_settings, ref, resources, role_statements

NAMES = StackNames()


def alarms(template) -> dict[str, dict]:
    """The stack's own alarms (not the scaling policies' generated ones), by name."""
    return {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in resources(template, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("AlarmName", "").startswith(ALARM_PREFIX)
    }


def operations_topic(template) -> dict:
    return ref(template, "AWS::SNS::Topic", "MonitoringTopic")


def test_every_alarm_publishes_to_the_operations_topic_and_quiet_means_ok(template):
    found = alarms(template)
    assert set(found) == {
        f"{ALARM_PREFIX}{name}"
        for name in ("dead-letters", "failed-files", "endpoint-failures", "backlog-without-capacity")
    }
    for name, alarm in found.items():
        assert alarm["AlarmActions"] == [operations_topic(template)], name
        assert alarm["TreatMissingData"] == "notBreaching", f"{name}: an idle night is no alarm"
        assert alarm["AlarmDescription"], name
    topic = template.to_json()["Resources"][operations_topic(template)["Ref"]]["Properties"]
    assert topic["TopicName"] == NAMES.operations_topic
    assert "KmsMasterKeyId" in topic


def test_a_notification_in_the_dead_letter_queue_alarms(template):
    alarm = alarms(template)[f"{ALARM_PREFIX}dead-letters"]
    dead_letters = logical_id(template, "AWS::SQS::Queue", "NotificationsDeadLetters")
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dead_letters, "QueueName"]}}]
    assert (alarm["ComparisonOperator"], alarm["Threshold"], alarm["EvaluationPeriods"]) == (
        "GreaterThanThreshold",
        0,
        1,
    )


def test_a_run_with_a_failed_file_alarms_on_the_metric_report_run_publishes(template):
    alarm = alarms(template)[f"{ALARM_PREFIX}failed-files"]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (
        metrics.NAMESPACE,
        metrics.FILES_FAILED,
        "Sum",
    )
    assert alarm["Dimensions"] == metrics.dimensions()
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
    assert not metrics.NAMESPACE.startswith("AWS/"), "CloudWatch reserves AWS/ namespaces"
    assert set(metrics.UNITS) == {
        metrics.FILES_SUCCEEDED,
        metrics.FILES_FAILED,
        metrics.RUN_DURATION_SECONDS,
        metrics.ESTIMATED_COST_USD,
        metrics.AUDIO_SECONDS,
    }
    units = botocore.session.get_session().get_service_model("cloudwatch").shape_for("StandardUnit").enum
    assert set(metrics.UNITS.values()) <= set(units), "PutMetricData accepts each unit"


def test_endpoint_failures_other_than_undecodable_audio_alarm(template):
    alarm = alarms(template)[f"{ALARM_PREFIX}endpoint-failures"]
    queries = {m["Id"]: m for m in alarm["Metrics"]}
    (expression,) = [m for m in queries.values() if "Expression" in m]
    assert expression["Expression"] == "FILL(failures, 0) - FILL(bad_audio, 0)" and expression["ReturnData"]
    variant = "ml-g4dn-xlarge"
    for query, name in (("failures", "InvocationFailures"), ("bad_audio", "Invocation4XXErrors")):
        stat = queries[query]["MetricStat"]
        assert stat["Metric"]["Namespace"] == "AWS/SageMaker" and stat["Metric"]["MetricName"] == name
        assert stat["Stat"] == "Sum" and queries[query]["ReturnData"] is False
        # the async endpoint metrics' dimensions (SageMaker developer guide, async-inference-monitor)
        assert {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]} == {
            "EndpointName": "audio-transcription-async",
            "VariantName": variant,
        }
    (config,) = resources(template, "AWS::SageMaker::EndpointConfig").values()
    assert [v["VariantName"] for v in config["Properties"]["ProductionVariants"]] == [variant]


def test_a_backlog_without_capacity_alarms_once_it_outlasts_an_instances_start(template):
    alarm = alarms(template)[f"{ALARM_PREFIX}backlog-without-capacity"]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (
        "AWS/SageMaker",
        "HasBacklogWithoutCapacity",
        "Minimum",  # every datum of every period: without capacity the whole time
    )
    assert alarm["Dimensions"] == [{"Name": "EndpointName", "Value": "audio-transcription-async"}]
    assert alarm["Period"] * alarm["EvaluationPeriods"] == BACKLOG_ALARM_MINUTES * 60
    assert BACKLOG_ALARM_MINUTES * 60 > STARTUP_TIMEOUT_SECONDS, "a cold start alone never alarms"


def test_an_existing_endpoint_is_watched_where_its_name_is_enough(existing_endpoint):
    found = alarms(existing_endpoint)
    assert f"{ALARM_PREFIX}endpoint-failures" not in found, "its variant's name is not known here"
    backlog = found[f"{ALARM_PREFIX}backlog-without-capacity"]
    assert backlog["Dimensions"] == [{"Name": "EndpointName", "Value": "parakeet-async-endpoint"}]


def test_cloudwatch_may_publish_to_the_encrypted_topic_for_this_accounts_alarms_only(template):
    """Without the key's grant, an alarm on a KMS-encrypted topic deploys and never delivers."""
    every = template.to_json()["Resources"]
    (key,) = resources(template, "AWS::KMS::Key").values()
    topic = operations_topic(template)
    assert every[topic["Ref"]]["Properties"]["KmsMasterKeyId"] == {
        "Fn::GetAtt": [logical_id(template, "AWS::KMS::Key", "NotificationsKey"), "Arn"]
    }
    (policy,) = [
        p for p in resources(template, "AWS::SNS::TopicPolicy").values() if p["Properties"]["Topics"] == [topic]
    ]
    for statements, action in (
        (policy["Properties"]["PolicyDocument"]["Statement"], "sns:Publish"),
        (key["Properties"]["KeyPolicy"]["Statement"], ["kms:Decrypt", "kms:GenerateDataKey*"]),
    ):
        (grant,) = [s for s in statements if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
        assert grant["Effect"] == "Allow" and grant["Action"] == action
        assert grant["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
        assert json.dumps(grant["Condition"]["ArnLike"]["aws:SourceArn"]).endswith(f':alarm:{ALARM_PREFIX}*"]]}}')


def test_the_dags_failure_notifier_may_publish_to_the_topic_the_variable_names(template):
    assert pipeline_settings(template)["operations_topic_arn"] == operations_topic(template)
    statements = role_statements(template, "AirflowExecutionRole")
    publish = [s for s in statements if s["Action"] == "sns:Publish"]
    assert [s["Resource"] for s in publish] == [operations_topic(template)]


def test_the_topic_has_a_subscriber_only_when_one_is_given(template, customised):
    assert not [
        s for s in resources(template, "AWS::SNS::Subscription").values() if s["Properties"]["Protocol"] == "email"
    ]
    (email,) = [
        s["Properties"]
        for s in resources(customised[0], "AWS::SNS::Subscription").values()
        if s["Properties"]["Protocol"] == "email"
    ]
    assert email == {"Endpoint": "ops@example.com", "Protocol": "email", "TopicArn": operations_topic(customised[0])}


def test_the_dashboard_shows_backlog_invocations_failures_files_duration_and_cost(template):
    (dashboard,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]
    text = "".join(p if isinstance(p, str) else "<ref>" for p in body["Fn::Join"][1])
    widgets = json.loads(text.replace("<ref>", "x"))["widgets"]
    shown = {
        tuple(part for part in metric if isinstance(part, str))[:2]
        for widget in widgets
        for metric in widget["properties"].get("metrics", [])
    }
    for namespace, name in (
        ("AWS/SageMaker", "ApproximateBacklogSize"),
        ("AWS/SageMaker", "HasBacklogWithoutCapacity"),
        ("AWS/SageMaker", "InvocationsProcessed"),
        ("AWS/SageMaker", "InvocationFailures"),
        ("AWS/SageMaker", "Invocation5XXErrors"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        (metrics.NAMESPACE, metrics.FILES_SUCCEEDED),
        (metrics.NAMESPACE, metrics.FILES_FAILED),
        (metrics.NAMESPACE, metrics.RUN_DURATION_SECONDS),
        (metrics.NAMESPACE, metrics.ESTIMATED_COST_USD),
        (metrics.NAMESPACE, metrics.AUDIO_SECONDS),
    ):
        assert (namespace, name) in shown, (namespace, name)
    (status,) = [w for w in widgets if w["type"] == "alarm"]
    assert len(status["properties"]["alarms"]) == len(alarms(template))


def test_the_first_deploy_processes_nothing_until_a_prefix_is_named(template, customised):
    """The DAG starts unpaused and its latest nightly run is created at once: with the whole bucket as the
    nightly prefix, a first deploy would transcribe everything in it, unasked."""
    assert pipeline_settings(template)["schedule_bucket_uri"] == ""
    assert pipeline_settings(customised[0])["schedule_bucket_uri"] == "s3://team-audio/calls/"


def test_the_endpoint_sends_the_container_what_it_serves_at_once(template):
    """The model server holds one request in the model at a time (its slots: the backend's max_concurrency,
    1 unless set); the Parakeet backend sets none. More would wait inside the container, on their timeout."""
    from model_server.backends.parakeet import ParakeetBackend

    assert CONCURRENT_INVOCATIONS_PER_INSTANCE == getattr(ParakeetBackend, "max_concurrency", 1) == 1
    (config,) = resources(template, "AWS::SageMaker::EndpointConfig").values()
    client = config["Properties"]["AsyncInferenceConfig"]["ClientConfig"]
    assert client == {"MaxConcurrentInvocationsPerInstance": 1}


def test_the_web_server_is_private_unless_chosen_public(template, customised):
    modes = [
        environment["Properties"]["WebserverAccessMode"]
        for synthesised in (template, customised[0])
        for environment in resources(synthesised, "AWS::MWAA::Environment").values()
    ]
    assert modes == ["PRIVATE_ONLY", "PUBLIC_ONLY"]
    shape = botocore.session.get_session().get_service_model("mwaa").shape_for("WebserverAccessMode")
    assert set(WEBSERVER_ACCESS_MODES) == set(shape.enum)
    with pytest.raises(SettingError, match="webserverAccessMode 'PUBLIC' is not one of"):
        InfraSettings.from_context(cdk.App(context={"inputBucketName": "team-audio", "webserverAccessMode": "PUBLIC"}))
