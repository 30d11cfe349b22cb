"""The original design (``seed-solution.md``), written here from its description, run as plain processes.

Two functions, as its two Lambdas:

- ``python -m benchmarks.peers.original list s3://bucket/prefix/``: the S3 SageMaker Processor.
  Lists the prefix, checks each key in the DynamoDB status table (``GetItem``), records the new
  ones ``processing`` (``PutItem``), invokes the endpoint for each (``InvokeEndpointAsync``) from
  10 threads and records it ``submitted`` with its inference id (``UpdateItem``);
- ``python -m benchmarks.peers.original serve --port P``: the SNS Status Updater, subscribed to
  the endpoint's success and error topics over HTTP (SNS's push, as SNS invokes a Lambda). Each
  message is answered at once and handled in its own thread as it arrives (an asynchronous
  Lambda invocation): ``UpdateItem`` completed or failed, and for a success the transcript read
  from S3 (``GetObject``), summarised with Bedrock (``Converse``), the summary written next to it
  (``PutObject``) and the item updated once more. ``GET /stats`` says what it has handled.

Nothing more than the description says: no deduplication of notifications, no look for a
result whose notification never came. Its clients name themselves ``bench-caller/original``
so the moto server counts their calls apart (``local.moto_server``).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
from botocore.config import Config

from audio_pipeline.config import PipelineConfig
from audio_pipeline.summaries import summary_location

CALLER = "original"
TABLE = "peers-original-status"
THREADS = 10
PROMPT = "Summarise this meeting transcript in three sentences.\n\n<transcript>\n{text}\n</transcript>"
AUDIO = (".wav", ".mp3", ".flac", ".m4a", ".ogg")


def client(service: str) -> Any:
    """A client as a Lambda makes one (standard retries), counted as ``original`` by the moto server."""
    return boto3.client(service, config=Config(user_agent_extra=f"bench-caller/{CALLER}", retries={"mode": "standard"}))


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def list_and_submit(bucket_uri: str, config: PipelineConfig = PipelineConfig()) -> dict[str, int]:
    """The processor Lambda: every audio key under the URI not yet in the table, submitted from 10 threads."""
    s3, table, runtime = client("s3"), client("dynamodb"), client("sagemaker-runtime")
    bucket, prefix = _split(bucket_uri)
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
        if o["Key"].lower().endswith(AUDIO)
    ]

    def submit(key: str) -> str:
        uri = f"s3://{bucket}/{key}"
        if "Item" in table.get_item(TableName=TABLE, Key={"uri": {"S": uri}}):
            return "skipped"
        table.put_item(TableName=TABLE, Item={"uri": {"S": uri}, "status": {"S": "processing"}})
        answer = runtime.invoke_endpoint_async(
            EndpointName=config.endpoint_name, InputLocation=uri, ContentType="audio/wav"
        )
        table.update_item(
            TableName=TABLE,
            Key={"uri": {"S": uri}},
            UpdateExpression="SET #s = :s, inference_id = :i, output_location = :o",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":s": {"S": "submitted"},
                ":i": {"S": answer["InferenceId"]},
                ":o": {"S": answer["OutputLocation"]},
            },
        )
        return "submitted"

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(submit, keys))
    return {"listed": len(keys), "submitted": outcomes.count("submitted"), "skipped": outcomes.count("skipped")}


class StatusUpdater:
    """The notification Lambda: each SageMaker notification handled once it arrives, as it is."""

    def __init__(self, config: PipelineConfig = PipelineConfig()) -> None:
        self.config = config
        self.s3, self.table, self.bedrock = client("s3"), client("dynamodb"), client("bedrock-runtime")
        self.lock = threading.Lock()
        self.stats = {"received": 0, "handled": 0, "errors": 0, "in_progress": 0, "last_done_at": 0.0}

    def _set(self, uri: str, status: str, **more: str) -> None:
        names = {"#s": "status", **{f"#{k}": k for k in more}}
        values = {":s": {"S": status}, **{f":{k}": {"S": v} for k, v in more.items()}}
        self.table.update_item(
            TableName=TABLE,
            Key={"uri": {"S": uri}},
            UpdateExpression="SET " + ", ".join(f"{n} = :{n[1:]}" for n in names),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def handle(self, notification: dict[str, Any]) -> None:
        uri = notification["requestParameters"]["inputLocation"]
        if notification.get("invocationStatus") != "Completed":
            self._set(uri, "failed", reason=str(notification.get("failureReason", "unknown")))
            return
        out = notification["responseParameters"]["outputLocation"]
        self._set(uri, "completed", output_location=out)
        bucket, key = _split(out)
        text = json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())["text"]
        answer = self.bedrock.converse(
            modelId=self.config.bedrock_model_id,
            messages=[{"role": "user", "content": [{"text": PROMPT.format(text=text)}]}],
            inferenceConfig={"maxTokens": 512},
        )
        summary = answer["output"]["message"]["content"][0]["text"]
        bucket, key = _split(summary_location(out))
        self.s3.put_object(Bucket=bucket, Key=key, Body=json.dumps({"input": uri, "summary": summary}).encode())
        self._set(uri, "summarized")

    def receive(self, envelope: dict[str, Any]) -> None:
        """One SNS delivery (its ``Message`` is SageMaker's notification)."""
        with self.lock:
            self.stats["received"] += 1
            self.stats["in_progress"] += 1
        ok = True
        try:
            self.handle(json.loads(envelope["Message"]))
        except Exception as err:  # a Lambda's failed invocation: logged, the message is gone
            ok = False
            print(f"notification failed: {err!r}", flush=True)
        with self.lock:
            self.stats["in_progress"] -= 1
            self.stats["handled" if ok else "errors"] += 1
            self.stats["last_done_at"] = time.time()


def serve(port: int, host: str = "127.0.0.1") -> None:
    updater = StatusUpdater()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            with updater.lock:
                body = json.dumps(updater.stats).encode()
            self._answer(body)

        def do_POST(self) -> None:  # noqa: N802
            envelope = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            self._answer(b"{}")  # SNS has delivered; the function runs after
            if envelope.get("Type") == "Notification":
                updater.receive(envelope)

        def _answer(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    ThreadingHTTPServer((host, port), Handler).serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list").add_argument("bucket_uri")
    commands.add_parser("serve").add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.command == "list":
        print(json.dumps(list_and_submit(args.bucket_uri)), flush=True)
    else:
        serve(args.port)


if __name__ == "__main__":
    main()
