"""The operations topic, the alarms that publish to it, and the pipeline's dashboard.

Alarms (each named ``audio-transcription-*``, each publishing to the operations topic on ALARM):

- ``dead-letters``: a notification moved to the dead-letter queue (SQS
  ``ApproximateNumberOfMessagesVisible`` > 0);
- ``failed-files``: a run reported a failed file (the DAG's own ``FilesFailed``, see
  ``audio_pipeline.metrics_names``);
- ``endpoint-failures``: the endpoint failed an invocation for a reason other than the audio
  (AWS/SageMaker ``InvocationFailures`` "if an invocation fails for any reason" less
  ``Invocation4XXErrors``, the model server's 400 for undecodable audio, which the run reports
  as a failed file already) -- only for an endpoint this stack deploys, whose variant it knows;
- ``backlog-without-capacity``: requests waited with no instance for longer than an instance
  may take to start (``HasBacklogWithoutCapacity``): a quota of 0, an image that never passes
  ``/ping``, a scaling policy lost.

Metric names, dimensions and statistics: "Monitor asynchronous endpoints" in the SageMaker
developer guide (async-inference-monitor) and the SQS developer guide's CloudWatch metrics.
"""

from __future__ import annotations

import math

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from audio_pipeline import metrics_names as metrics

ALARM_PREFIX = "audio-transcription-"
DASHBOARD_NAME = "audio-transcription"
PERIOD = Duration.minutes(5)
BACKLOG_ALARM_MINUTES = 45
"""Longer than an instance may take to start (STARTUP_TIMEOUT_SECONDS, 30 min, for the checkpoint's
download and the first /ping) plus the scale-out from zero (a few minutes)."""


def run_metric(name: str, statistic: str) -> cloudwatch.Metric:
    """One of the metrics report_run publishes once per run."""
    return cloudwatch.Metric(
        namespace=metrics.NAMESPACE,
        metric_name=name,
        dimensions_map={metrics.DIMENSION: metrics.DAG_ID},
        statistic=statistic,
        period=PERIOD,
    )


def sagemaker_metric(name: str, dimensions: dict[str, str], statistic: str) -> cloudwatch.Metric:
    """An endpoint metric: by EndpointName (backlog, age), or by EndpointName and VariantName (invocations)."""
    return cloudwatch.Metric(
        namespace="AWS/SageMaker", metric_name=name, dimensions_map=dimensions, statistic=statistic, period=PERIOD
    )


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        topic_name: str,
        key: kms.Key,
        dead_letter_queue: sqs.Queue,
        endpoint_name: str,
        variant_name: str | None,
        max_receive_count: int,
        email: str | None,
    ) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        self.topic = sns.Topic(self, "Topic", topic_name=topic_name, master_key=key, enforce_ssl=True)
        # CloudWatch publishes alarms to the encrypted topic as its service principal: the topic's
        # policy and the key's must admit it ("Enable compatibility between event sources from AWS
        # services and encrypted topics", SNS developer guide), for this account's alarms only
        alarms_arn = f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:alarm:{ALARM_PREFIX}*"
        conditions = {"StringEquals": {"aws:SourceAccount": stack.account}, "ArnLike": {"aws:SourceArn": alarms_arn}}
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions=conditions,
            )
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions=conditions,
            )
        )
        if email:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))

        endpoint = {"EndpointName": endpoint_name}
        self.backlog = sagemaker_metric("ApproximateBacklogSize", endpoint, "Maximum")
        self.without_capacity = sagemaker_metric("HasBacklogWithoutCapacity", endpoint, "Minimum")
        self.dead_letters = dead_letter_queue.metric_approximate_number_of_messages_visible(
            statistic="Maximum", period=PERIOD
        )
        self.alarms = [
            self._alarm(
                "DeadLetters",
                "dead-letters",
                self.dead_letters,
                threshold=0,
                periods=1,
                description=(
                    f"A notification of the endpoint was received {max_receive_count} times without being "
                    f"handled, and moved to {dead_letter_queue.queue_name}: see docs/deploy.md, Where to look."
                ),
            ),
            self._alarm(
                "FailedFiles",
                "failed-files",
                run_metric(metrics.FILES_FAILED, "Sum"),
                threshold=0,
                periods=1,
                description=("A run reported failed files: its run manifest and report_run's log say why, per file."),
            ),
            self._alarm(
                "BacklogWithoutCapacity",
                "backlog-without-capacity",
                self.without_capacity,
                threshold=1,
                periods=math.ceil(BACKLOG_ALARM_MINUTES / PERIOD.to_minutes()),
                comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                description=(
                    f"Requests have waited {BACKLOG_ALARM_MINUTES} minutes with no instance behind {endpoint_name}: "
                    "check the GPU quota, the endpoint's events and its container logs."
                ),
            ),
        ]
        self.invocations: list[cloudwatch.IMetric] = []
        if variant_name:
            variant = {**endpoint, "VariantName": variant_name}

            def sagemaker(name: str) -> cloudwatch.Metric:
                return sagemaker_metric(name, variant, "Sum")

            failures = cloudwatch.MathExpression(
                expression="FILL(failures, 0) - FILL(bad_audio, 0)",
                using_metrics={
                    "failures": sagemaker("InvocationFailures"),
                    "bad_audio": sagemaker("Invocation4XXErrors"),
                },
                label="InvocationFailures less 4XX",
                period=PERIOD,
            )
            self.alarms.append(
                self._alarm(
                    "EndpointFailures",
                    "endpoint-failures",
                    failures,
                    threshold=0,
                    periods=1,
                    description=(
                        f"{endpoint_name} failed invocations for a reason other than undecodable audio "
                        "(5XX, timeout, expired in the queue, S3 download or upload): see its container logs."
                    ),
                )
            )
            self.invocations = [
                sagemaker(name)
                for name in (
                    "InvocationsProcessed",
                    "InvocationFailures",
                    "Invocation4XXErrors",
                    "Invocation5XXErrors",
                    "ExpiredRequests",
                )
            ]
        self.dashboard = self._dashboard(endpoint)

    def _alarm(
        self,
        id: str,
        name: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        periods: int,
        description: str,
        comparison: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            id,
            alarm_name=f"{ALARM_PREFIX}{name}",
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            evaluation_periods=periods,
            comparison_operator=comparison,
            # no datum is no trouble: SQS stops reporting an idle queue, an endpoint with no
            # traffic reports no invocations, and runs publish once a night
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        return alarm

    def _dashboard(self, endpoint: dict[str, str]) -> cloudwatch.Dashboard:
        def graph(title: str, metrics_: list[cloudwatch.IMetric], **kwargs) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(title=title, left=metrics_, width=8, height=6, **kwargs)

        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=DASHBOARD_NAME)
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=24, height=3),
        )
        dashboard.add_widgets(
            graph("Endpoint backlog", [self.backlog, self.without_capacity]),
            graph(
                "Endpoint invocations and failures",
                self.invocations
                # an existing endpoint: its variant is not known here, its queue's age is
                or [sagemaker_metric("ApproximateAgeOfOldestRequest", endpoint, "Maximum")],
            ),
            graph("Notifications in the dead-letter queue", [self.dead_letters]),
        )
        dashboard.add_widgets(
            graph(
                "Files per run",
                [
                    run_metric(metrics.FILES_SUCCEEDED, "Sum"),
                    run_metric(metrics.FILES_FAILED, "Sum"),
                ],
                stacked=True,
            ),
            graph("Run duration (seconds)", [run_metric(metrics.RUN_DURATION_SECONDS, "Maximum")]),
            graph("Estimated cost per run (USD, an estimate)", [run_metric(metrics.ESTIMATED_COST_USD, "Sum")]),
        )
        dashboard.add_widgets(graph("Audio transcribed per run (seconds)", [run_metric(metrics.AUDIO_SECONDS, "Sum")]))
        return dashboard
