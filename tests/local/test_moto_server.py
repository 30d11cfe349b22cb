from __future__ import annotations

import io
from contextlib import contextmanager

import pytest

from local.moto_server import CountingApp, operation

AUTH = "AWS4-HMAC-SHA256 Credential=AKID/20261124/us-east-1/{}/aws4_request, SignedHeaders=host, Signature=x"


def environ(service, method="POST", path="/", query="", target=None, form=None, agent="Boto3/1.43"):
    body = form.encode() if form else b""
    env = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "HTTP_AUTHORIZATION": AUTH.format(service),
        "HTTP_USER_AGENT": agent,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    if target:
        env["HTTP_X_AMZ_TARGET"] = target
    if form:
        env["CONTENT_TYPE"] = "application/x-www-form-urlencoded; charset=utf-8"
    return env


def _in_process_aws(monkeypatch):
    """Credentials for moto in-process, and no endpoint that would send boto3 elsewhere."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@contextmanager
def table_t(monkeypatch):
    """moto in-process with an empty table ``t`` keyed on ``k``; yields the DynamoDB client."""
    import boto3
    from moto import mock_aws

    _in_process_aws(monkeypatch)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield ddb


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (environ("dynamodb", target="DynamoDB_20120810.TransactWriteItems"), "dynamodb:TransactWriteItems"),
        (environ("sqs", target="AmazonSQS.ReceiveMessage"), "sqs:ReceiveMessage"),
        (environ("sns", form="Action=Publish&TopicArn=x"), "sns:Publish"),
        (environ("s3", "GET", "/bucket", "list-type=2&prefix=a"), "s3:ListObjectsV2"),
        (environ("s3", "GET", "/bucket/key/with/slashes.wav"), "s3:GetObject"),
        (environ("s3", "PUT", "/bucket/k.json"), "s3:PutObject"),
        ({**environ("s3", "PUT", "/out/inputs/k.wav"), "HTTP_X_AMZ_COPY_SOURCE": "/in/k.wav"}, "s3:CopyObject"),
        (environ("s3", "HEAD", "/bucket"), "s3:HeadBucket"),
    ],
)
def test_operation_names(env, expected):
    assert operation(env) == expected


def test_counts_by_caller_and_leaves_the_body_readable():
    seen = []

    def app(env, start_response):
        seen.append(env["wsgi.input"].read())
        start_response("200 OK", [])
        return [b""]

    counting = CountingApp(app)
    counting(environ("sns", form="Action=Publish", agent="Boto3/1.43 Airflow/3.3.1 AmPP/9.34.0"), lambda *a: None)
    counting(environ("sns", form="Action=Publish"), lambda *a: None)
    assert seen == [b"Action=Publish", b"Action=Publish"]
    assert counting.calls == {"airflow": {"sns:Publish": 1}, "other": {"sns:Publish": 1}}


def test_transactions_copy_only_touched_items_and_still_roll_back(monkeypatch):
    import copy

    import moto.dynamodb.models as models
    from botocore.exceptions import ClientError

    from local.moto_server import snapshot_touched_items_in_transactions

    monkeypatch.setattr(models, "copy", models.copy)
    monkeypatch.setattr(models.DynamoDBBackend, "transact_write_items", models.DynamoDBBackend.transact_write_items)
    snapshot_touched_items_in_transactions()
    table_copies = []
    real = copy.deepcopy

    def counting(value, memo=None, *args):
        if type(value).__name__ == "Table":
            table_copies.append(id(value))
        return real(value, memo, *args)

    monkeypatch.setattr(copy, "deepcopy", counting)
    with table_t(monkeypatch) as ddb:
        put = [{"Put": {"TableName": "t", "Item": {"k": {"S": str(i)}, "v": {"N": "1"}}}} for i in range(50)]
        ddb.transact_write_items(TransactItems=put)
        assert table_copies == [], "no whole-table copy"
        failing = [
            {"Put": {"TableName": "t", "Item": {"k": {"S": "new"}}}},
            {
                "Update": {
                    "TableName": "t",
                    "Key": {"k": {"S": "1"}},
                    "UpdateExpression": "SET v = :two",
                    "ExpressionAttributeValues": {":two": {"N": "2"}},
                }
            },
            {"Put": {"TableName": "t", "Item": {"k": {"S": "0"}}, "ConditionExpression": "attribute_not_exists(k)"}},
        ]
        with pytest.raises(ClientError, match="TransactionCanceled"):
            ddb.transact_write_items(TransactItems=failing)
        assert "Item" not in ddb.get_item(TableName="t", Key={"k": {"S": "new"}}), "the put is rolled back"
        assert ddb.get_item(TableName="t", Key={"k": {"S": "1"}})["Item"]["v"] == {"N": "1"}, "so is the update"
        assert ddb.scan(TableName="t")["Count"] == 50


def test_condition_expressions_are_lexed_once_and_still_decide_per_item(monkeypatch):
    from botocore.exceptions import ClientError
    from moto.dynamodb.comparisons import ConditionExpressionParser

    from local.moto_server import cache_condition_expression_tokens

    monkeypatch.setattr(
        ConditionExpressionParser, "_lex_condition_expression", ConditionExpressionParser._lex_condition_expression
    )
    lexed = []
    real_lex_one = ConditionExpressionParser._lex_one_node

    def counting(self, remaining):
        lexed.append(remaining)
        return real_lex_one(self, remaining)

    monkeypatch.setattr(ConditionExpressionParser, "_lex_one_node", counting)
    cache_condition_expression_tokens()
    with table_t(monkeypatch) as ddb:
        ddb.put_item(TableName="t", Item={"k": {"S": "a"}, "v": {"N": "1"}})

        def put_if(expression, value):
            ddb.put_item(
                TableName="t",
                Item={"k": {"S": "a"}, "v": {"N": str(value)}},
                ConditionExpression=expression,
                ExpressionAttributeValues={":v": {"N": str(value - 1)}},
            )

        put_if("v = :v", 2)
        after_first = len(lexed)
        put_if("v = :v", 3)  # same text, other values: decided on the new values, not lexed again
        assert len(lexed) == after_first
        with pytest.raises(ClientError, match="ConditionalCheckFailed"):
            put_if("v = :v", 9)
        with pytest.raises(ClientError, match="ConditionalCheckFailed"):
            put_if("v < :v", 3)  # another text is lexed on its own
        assert len(lexed) > after_first
        assert ddb.get_item(TableName="t", Key={"k": {"S": "a"}})["Item"]["v"] == {"N": "3"}


def test_listing_pages_are_the_ones_moto_lists_without_sorting_the_bucket_per_page(monkeypatch):
    import random

    import boto3
    from moto import mock_aws
    from moto.s3.models import S3Backend

    from local.moto_server import list_one_page_without_sorting_the_bucket

    _in_process_aws(monkeypatch)
    monkeypatch.setattr(S3Backend, "list_objects_v2", S3Backend.list_objects_v2)
    rng = random.Random(7)
    keys = {f"{rng.choice(['a/', 'a/b/', 'b/', '', 'a'])}{rng.randrange(10**6):06d}.wav" for _ in range(300)}
    asked = [
        {"Prefix": prefix, "MaxKeys": max_keys, **extra}
        for prefix in ("", "a/", "a", "zzz/")
        for max_keys in (0, 9, 1000)
        for extra in ({}, {"Delimiter": "/"}, {"StartAfter": "a/5"})
    ]

    def pages():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="listed")
        for key in keys:
            s3.put_object(Bucket="listed", Key=key, Body=b"x")
        for deleted in sorted(keys)[::50]:
            s3.delete_object(Bucket="listed", Key=deleted)
        out = []
        for kwargs in asked:
            paginator = s3.get_paginator("list_objects_v2").paginate(Bucket="listed", **kwargs)
            for page in paginator if kwargs["MaxKeys"] else [s3.list_objects_v2(Bucket="listed", **kwargs)]:
                out.append(
                    (
                        [o["Key"] for o in page.get("Contents", [])],
                        [p["Prefix"] for p in page.get("CommonPrefixes", [])],
                        page["IsTruncated"],
                        page.get("NextContinuationToken"),
                    )
                )
        return out

    with mock_aws():
        expected = pages()
    list_one_page_without_sorting_the_bucket()
    with mock_aws():
        assert pages() == expected
    assert sum(len(contents) for contents, *_ in expected) > 1000, "the pages list something"


def test_sqs_hands_out_messages_without_counting_the_queue_and_keeps_visibility_delay_and_retention(monkeypatch):
    import time

    import boto3
    from moto import mock_aws
    from moto.sqs.models import Message, Queue, SQSBackend

    from local.moto_server import sqs_without_a_pass_over_the_queue_per_message

    _in_process_aws(monkeypatch)
    for name in ("visible", "delayed"):
        monkeypatch.setattr(Message, name, getattr(Message, name))
    monkeypatch.setattr(
        SQSBackend,
        "is_message_valid_based_on_retention_period",
        SQSBackend.is_message_valid_based_on_retention_period,
    )
    sqs_without_a_pass_over_the_queue_per_message()
    counted = []
    count = Queue.approximate_number_of_messages_not_visible.fget
    monkeypatch.setattr(
        Queue, "approximate_number_of_messages_not_visible", property(lambda q: counted.append(1) or count(q))
    )
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        for i in range(20):
            sqs.send_message(QueueUrl=url, MessageBody=str(i))
        sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=2)
        counted.clear()
        first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=1)["Messages"]
        assert len(first) == 10 and counted == [], "no count of the queue per message handed out"
        second = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=1)["Messages"]
        assert {m["Body"] for m in first + second} == {str(i) for i in range(20)}, "neither delayed nor twice"
        assert "Messages" not in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
        time.sleep(2.2)  # past the visibility timeout and the delay
        again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
        assert len(again) == 10 and all(int(m["Attributes"]["ApproximateReceiveCount"]) == 2 for m in again)
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attributes["ApproximateNumberOfMessagesNotVisible"] == "10"
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"MessageRetentionPeriod": "60"})
        monkeypatch.setattr(time, "time", lambda real=time.time: real() + 61)
        assert "Messages" not in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10), "past its retention"


def test_the_dispatcher_routes_by_the_list_of_moto_modules_read_once(monkeypatch):
    import os

    import moto.backends

    from local.moto_server import dispatch_without_listing_moto_per_request

    monkeypatch.setattr(moto.backends, "list_of_moto_modules", moto.backends.list_of_moto_modules)
    listed = list(moto.backends.list_of_moto_modules())
    dispatch_without_listing_moto_per_request()
    monkeypatch.setattr(os, "listdir", lambda path: pytest.fail(f"listed {path} again"))
    assert list(moto.backends.list_of_moto_modules()) == listed and {"s3", "sqs", "dynamodb"} <= set(listed)


def test_models_are_tracked_without_keeping_passing_copies_alive(monkeypatch):
    import gc

    from moto.core.common_models import BaseModel
    from moto.dynamodb.models.dynamo_type import Item
    from moto.s3.models import FakeKey

    from local.moto_server import track_models_weakly

    monkeypatch.setattr(BaseModel, "__new__", BaseModel.__new__)
    for model in (Item, FakeKey):
        monkeypatch.setattr(model, "instances_tracked", [])
    track_models_weakly()
    with table_t(monkeypatch) as ddb:
        for start in range(0, 200, 100):
            items = [
                {"Put": {"TableName": "t", "Item": {"k": {"S": str(i)}, "v": {"N": "0"}}}}
                for i in range(start, start + 100)
            ]
            ddb.transact_write_items(TransactItems=items)
        for n in range(20):  # each transaction backs up the 100 items it touches
            updates = [
                {
                    "Update": {
                        "TableName": "t",
                        "Key": {"k": {"S": str(i)}},
                        "UpdateExpression": "SET v = :v",
                        "ExpressionAttributeValues": {":v": {"N": str(n)}},
                    }
                }
                for i in range(100)
            ]
            ddb.transact_write_items(TransactItems=updates)
        import boto3

        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="kept")
        s3.put_object(Bucket="kept", Key="a.wav", Body=b"x")
        gc.collect()
        assert len(Item.instances_tracked) <= 200 + 100, "the table's items, not every backup copy"
        assert [k.name for k in FakeKey.instances_tracked] == ["a.wav"], "live models are still listed"
        assert ddb.scan(TableName="t")["Count"] == 200


def test_fill_writes_listable_objects_in_process():
    import json
    import subprocess
    import sys
    import urllib.request

    import boto3

    from benchmarks.claim_phase import _wait_up
    from tests.moto_server import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "local.moto_server", "-p", str(port)], stderr=subprocess.DEVNULL)
    try:
        _wait_up(url, server)
        s3 = boto3.client(
            "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )
        s3.create_bucket(Bucket="fill-test")
        request = urllib.request.Request(
            f"{url}/_emulator/s3/fill",
            data=json.dumps({"bucket": "fill-test", "prefix": "p/", "count": 1500, "size": 100}).encode(),
            method="POST",
        )
        assert json.loads(urllib.request.urlopen(request).read()) == {"filled": 1500}
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket="fill-test", Prefix="p/")
        objects = [o for page in pages for o in page["Contents"]]
        assert len(objects) == 1500 and objects[0]["Key"] == "p/000000.wav" and objects[-1]["Key"] == "p/001499.wav"
        assert {o["Size"] for o in objects} == {100}
        assert s3.get_object(Bucket="fill-test", Key="p/000007.wav")["Body"].read().startswith(b"RIFF")
        distinct = {"bucket": "fill-test", "prefix": "d/", "count": 2, "size": 100, "distinct": True}
        urllib.request.urlopen(
            urllib.request.Request(f"{url}/_emulator/s3/fill", data=json.dumps(distinct).encode(), method="POST")
        ).read()
        bodies = [s3.get_object(Bucket="fill-test", Key=f"d/00000{i}.wav")["Body"].read() for i in (0, 1)]
        assert bodies[0].startswith(b"RIFFd/000000.wav") and len(bodies[0]) == 100 and bodies[0] != bodies[1]
    finally:
        server.terminate()
        server.wait(30)


def test_sqs_outage_switch_answers_500_to_sqs_alone_for_its_duration():
    import time
    import urllib.request

    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    from tests.moto_server import local_moto_server

    with local_moto_server() as url:
        aws = {
            "endpoint_url": url,
            "region_name": "us-east-1",
            "aws_access_key_id": "x",
            "aws_secret_access_key": "x",
            "config": Config(retries={"mode": "standard", "max_attempts": 2}),
        }
        sqs, s3 = boto3.client("sqs", **aws), boto3.client("s3", **aws)
        queue_url = sqs.create_queue(QueueName="q")["QueueUrl"]
        # long enough that botocore's two retries (backoff up to 1 s, then 2 s) end inside it
        # however loaded the machine; the test waits for its end, not for a fixed time
        outage = 8
        switch = urllib.request.Request(f"{url}/_emulator/faults/sqs-5xx?seconds={outage}", method="POST")
        ends = time.monotonic() + outage
        urllib.request.urlopen(switch).close()
        with pytest.raises(ClientError) as raised:
            sqs.receive_message(QueueUrl=queue_url)
        assert raised.value.response["Error"]["Code"] == "InternalError"
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
        retried = raised.value.response["ResponseMetadata"]["RetryAttempts"]
        assert retried == 2, "botocore retried it (max_attempts counts the retries)"
        s3.create_bucket(Bucket="still-served")  # other services are not affected
        time.sleep(max(0.0, ends - time.monotonic()) + 0.5)
        sqs.send_message(QueueUrl=queue_url, MessageBody="after the outage")
        assert sqs.receive_message(QueueUrl=queue_url)["Messages"][0]["Body"] == "after the outage"


def test_latency_switch_holds_each_aws_request_for_its_round_trip():
    import time
    import urllib.error
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    import boto3

    from tests.moto_server import local_moto_server

    with local_moto_server() as url:
        aws = {"endpoint_url": url, "region_name": "us-east-1", "aws_access_key_id": "x", "aws_secret_access_key": "x"}
        ddb = boto3.client("dynamodb", **aws)

        def list_tables_seconds() -> float:
            started = time.perf_counter()
            assert ddb.list_tables()["TableNames"] == []
            return time.perf_counter() - started

        list_tables_seconds()  # the connection made
        set_latency = urllib.request.Request(f"{url}/_emulator/latency?ms=400", method="POST")
        assert urllib.request.urlopen(set_latency).read() == b'{"ms": 400.0}'
        assert list_tables_seconds() >= 0.4
        with ThreadPoolExecutor(4) as pool:  # DynamoDB is served one request at a time, round trips together
            started = time.perf_counter()
            list(pool.map(lambda _: ddb.list_tables(), range(4)))
        assert time.perf_counter() - started < 1.6, "four round trips of 0.4 s, waited out one after another"
        for bad in ("-5", "abc", "inf"):
            with pytest.raises(urllib.error.HTTPError) as answer:
                urllib.request.urlopen(urllib.request.Request(f"{url}/_emulator/latency?ms={bad}", method="POST"))
            assert answer.value.code == 400 and f"ms='{bad}'" in answer.value.read().decode()
        assert list_tables_seconds() >= 0.4, "a bad value changes nothing"
        urllib.request.urlopen(urllib.request.Request(f"{url}/_emulator/latency?ms=0", method="POST"))
        assert list_tables_seconds() < 0.4
