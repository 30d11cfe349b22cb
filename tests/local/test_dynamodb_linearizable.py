"""The local DynamoDB is linearizable, seen from outside: concurrent boto3 clients over HTTP
against a real ``python -m local.moto_server`` process (the "two runs at once" fault row and
every claim of the pipeline rely on it)."""

from __future__ import annotations

import threading

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.moto_server import local_moto_server

TABLE = "claims"
ROUNDS = 40
CLAIMERS = 6
CANCELLERS = 3
LOST_THE_RACE = ("ConditionalCheckFailedException", "TransactionCanceledException")


def client(url: str):
    return boto3.client(
        "dynamodb",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}, max_pool_connections=2),
    )


def claim_by_put(ddb, key: str, owner: str) -> None:
    ddb.put_item(
        TableName=TABLE,
        Item={"pk": {"S": key}, "owner": {"S": owner}},
        ConditionExpression="attribute_not_exists(pk)",
    )


def claim_by_transaction(ddb, key: str, owner: str) -> None:
    ddb.transact_write_items(
        TransactItems=[
            {
                "Put": {
                    "TableName": TABLE,
                    "Item": {"pk": {"S": key}, "owner": {"S": owner}},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {"Put": {"TableName": TABLE, "Item": {"pk": {"S": f"{key}/by/{owner}"}, "owner": {"S": owner}}}},
        ]
    )


def cancelled_transaction(ddb, worker: int, n: int) -> None:
    """A large transaction whose last condition fails: everything it wrote is rolled back."""
    puts = [{"Put": {"TableName": TABLE, "Item": {"pk": {"S": f"scratch-{worker}-{n}-{i}"}}}} for i in range(98)]
    never = {
        "ConditionCheck": {
            "TableName": TABLE,
            "Key": {"pk": {"S": "never-exists"}},
            "ConditionExpression": "attribute_exists(pk)",
        }
    }
    with pytest.raises(ClientError, match="TransactionCanceled"):
        ddb.transact_write_items(TransactItems=[*puts, never])


@pytest.fixture(scope="module")
def url():
    with local_moto_server() as url:
        client(url).create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield url


def test_one_winner_per_conditional_write_and_rollbacks_undo_nobody_elses_write(url):
    """Claimers race for each key (by conditional put on even rounds, by transaction on odd
    ones) while other clients keep cancelling large transactions. Exactly one claimer wins
    each key, the stored owner is the winner, and every acknowledged write is still there."""
    barrier = threading.Barrier(CLAIMERS)
    wins: dict[str, list[str]] = {}
    acknowledged: list[str] = []
    errors: list[BaseException] = []
    claiming = threading.Event()
    claiming.set()
    lock = threading.Lock()

    def claimer(index: int) -> None:
        ddb, owner = client(url), f"claimer-{index}"
        try:
            for r in range(ROUNDS):
                key = f"file-{r}"
                barrier.wait(timeout=60)
                claim = claim_by_put if r % 2 == 0 else claim_by_transaction
                try:
                    claim(ddb, key, owner)
                except ClientError as err:
                    if err.response["Error"]["Code"] not in LOST_THE_RACE:
                        raise
                    continue
                with lock:
                    wins.setdefault(key, []).append(owner)
                    acknowledged.append(key)
                    if r % 2:
                        acknowledged.append(f"{key}/by/{owner}")
        except BaseException as err:  # reported by the test's thread
            errors.append(err)
            barrier.abort()

    def canceller(index: int) -> None:
        ddb = client(url)
        n = 0
        try:
            while claiming.is_set():
                cancelled_transaction(ddb, index, n)
                n += 1
        except BaseException as err:  # reported by the test's thread
            errors.append(err)

    claimers = [threading.Thread(target=claimer, args=(i,)) for i in range(CLAIMERS)]
    cancellers = [threading.Thread(target=canceller, args=(i,)) for i in range(CANCELLERS)]
    for t in cancellers + claimers:
        t.start()
    for t in claimers:
        t.join()
    claiming.clear()
    for t in cancellers:
        t.join()
    assert not errors, errors

    ddb = client(url)
    stored = {}
    for page in ddb.get_paginator("scan").paginate(TableName=TABLE):
        stored.update({item["pk"]["S"]: item.get("owner", {}).get("S") for item in page["Items"]})
    several = {key: owners for key, owners in wins.items() if len(owners) > 1}
    assert not several, f"{len(several)} keys had several winners, e.g. {next(iter(several.items()), None)}"
    assert sorted(wins) == sorted(f"file-{r}" for r in range(ROUNDS)), "every key has a winner"
    undone = [key for key in acknowledged if key not in stored]
    assert not undone, f"{len(undone)} acknowledged writes undone by another client's rollback, e.g. {undone[:3]}"
    assert all(stored[key] == owners[0] for key, owners in wins.items()), "the stored owner is the winner"
    assert not [key for key in stored if key.startswith("scratch-")], "cancelled transactions left nothing"
