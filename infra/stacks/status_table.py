"""The status table, from the one definition the DAG and the local bootstrap use."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from audio_pipeline.ledger import table_definition

_TYPES = {"S": dynamodb.AttributeType.STRING, "N": dynamodb.AttributeType.NUMBER, "B": dynamodb.AttributeType.BINARY}


def _key(definition: dict, name: str) -> dynamodb.Attribute:
    types = {a["AttributeName"]: a["AttributeType"] for a in definition["AttributeDefinitions"]}
    return dynamodb.Attribute(name=name, type=_TYPES[types[name]])


class StatusTable(Construct):
    def __init__(self, scope: Construct, id: str, *, table_name: str) -> None:
        super().__init__(scope, id)
        definition = table_definition()
        (hash_key,) = [k["AttributeName"] for k in definition["KeySchema"] if k["KeyType"] == "HASH"]
        self.table = dynamodb.Table(
            self,
            "Table",
            table_name=table_name,
            partition_key=_key(definition, hash_key),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,  # a failed first create leaves nothing
        )
        for index in definition["GlobalSecondaryIndexes"]:
            keys = {k["KeyType"]: k["AttributeName"] for k in index["KeySchema"]}
            projection = index["Projection"]
            self.table.add_global_secondary_index(
                index_name=index["IndexName"],
                partition_key=_key(definition, keys["HASH"]),
                sort_key=_key(definition, keys["RANGE"]) if "RANGE" in keys else None,
                projection_type=dynamodb.ProjectionType(projection["ProjectionType"]),
                non_key_attributes=projection.get("NonKeyAttributes"),
            )
