"""Success and error topics, the queue the sensor watches, and its dead-letter queue."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from audio_pipeline.config import PipelineConfig, StackNames


class Notifications(Construct):
    def __init__(self, scope: Construct, id: str, *, config: PipelineConfig, names: StackNames) -> None:
        super().__init__(scope, id)
        # the key encrypts only the topics and queues, which go with the stack: so does the key
        # (CloudFormation schedules its deletion), rather than staying behind unused
        self.key = kms.Key(
            self,
            "Key",
            enable_key_rotation=True,
            description="audio pipeline notifications",
            removal_policy=RemovalPolicy.DESTROY,
        )
        # SageMaker publishes to the encrypted topics (the SQS subscriptions below add SNS's
        # own statement, to deliver to the encrypted queue), on behalf of this account only
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("sagemaker.amazonaws.com")],
                actions=["kms:GenerateDataKey*", "kms:Decrypt"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            )
        )
        self.success_topic = sns.Topic(
            self, "Success", topic_name=names.success_topic, master_key=self.key, enforce_ssl=True
        )
        self.error_topic = sns.Topic(self, "Error", topic_name=names.error_topic, master_key=self.key, enforce_ssl=True)
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetters",
            queue_name=names.dead_letter_queue,
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            queue_name=config.notification_queue,
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.key,
            enforce_ssl=True,
            visibility_timeout=Duration.seconds(120),
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=names.max_receive_count, queue=self.dead_letter_queue
            ),
        )
        for topic in (self.success_topic, self.error_topic):
            # the subscription's queue policy admits exactly this topic (aws:SourceArn)
            topic.add_subscription(subscriptions.SqsSubscription(self.queue, raw_message_delivery=False))
