"""moto in server mode, counting the AWS API calls it serves (for the benchmarks).

DynamoDB requests are served one at a time (one lock around them), so the local DynamoDB is
linearizable by construction as DynamoDB is: moto's conditional writes check then write, and
its cancelled transactions roll a table back to a copy taken when they began, which on
concurrent threads would let two conditional writes win or undo another client's
acknowledged write. Other services stay concurrent.

It also removes six costs of moto's that AWS does not have. For its rollback,
``TransactWriteItems`` deep-copies the whole table once per item of the transaction (a
100-item transaction on a 10,000-item table copied a million items). Here it keeps deep
copies of only the items the transaction touches; the rollback behaves the same. And moto
lexes every condition expression again for every item (a third of its time on a claim
transaction); here the tokens of each distinct expression are kept. And its ``ListObjectsV2``
sorts every key under the prefix for every page; here a page's keys come from a bounded heap.
And each message SQS hands out had it count the whole queue three times over; here it does not.
And its dispatcher listed moto's own package directory to route each request; here once. And it
kept every model instance it ever made, passing copies included; here it keeps weak references.

``python -m local.moto_server -H 127.0.0.1 -p 5000``. ``GET /_emulator/calls`` answers
``{caller: {"service:Operation": count}}``, where the caller is ``airflow`` for requests
made through the Amazon provider's hooks (their User-Agent carries ``Airflow/``), ``NAME``
for a client that names itself with ``bench-caller/NAME`` in its User-Agent (the benchmarks'
plain processes, ``benchmarks.peers``), and ``other`` for the rest (emulators, uploads, tests);
``POST /_emulator/calls/reset`` zeroes it.
``POST /_emulator/s3/fill`` with ``{"bucket", "prefix", "count", "size"}`` writes ``count``
objects ``<prefix>000000.wav``... in-process, for the benchmarks (an upload of 100,000 objects
through HTTP took 266 s here; this takes seconds); with ``"distinct": true`` each object's
bytes name its key, so that each gets a transcript (and a summary request) of its own.

``POST /_emulator/latency?ms=N`` holds every AWS request for N ms before serving it (``ms=0``,
the default, ends it): the round trip a client in an AWS region waits on each call, so the
benchmarks can show what calls in flight together save. Requests wait it out together, outside
the DynamoDB lock.

``POST /_emulator/faults/sqs-5xx?seconds=N`` makes every SQS request answer 500
``InternalError`` for the next N seconds (``seconds=0`` ends it): an SQS outage that
outlasts botocore's retries. SNS still delivers to the queues meanwhile (inside moto).
"""

from __future__ import annotations

import argparse
import copy
import heapq
import io
import json
import logging
import re
import threading
import time
import weakref
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

import moto.backends
import moto.dynamodb.models as dynamodb_models
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.common_models import BaseModel
from moto.dynamodb.comparisons import ConditionExpressionParser
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.s3.exceptions import MethodNotAllowed
from moto.s3.models import FakeBucket, FakeDeleteMarker, FakeKey, FakeTableStorageBucket, S3Backend, s3_backends
from moto.sqs.models import Message, SQSBackend
from werkzeug.serving import run_simple

from local.aws_http import switch_value

_SCOPE = re.compile(r"Credential=[^/]+/\d+/[^/]+/([^/]+)/")


class _SnapshotTouchedItems:
    """Stands in for the ``copy`` module inside moto's DynamoDB models. Within a transaction
    (per thread), the "deep copy" of a table that moto keeps for its rollback is a snapshot:
    the table's item map copied shallowly, with deep copies of only the items the
    transaction touches. Restoring it restores exactly what the transaction could change."""

    def __init__(self) -> None:
        self.local = threading.local()

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        touched = getattr(self.local, "touched", None)
        if touched is None or not isinstance(value, Table):
            return copy.deepcopy(value, memo)
        snapshots = self.local.snapshots
        if id(value) not in snapshots:
            snapshot = copy.copy(value)
            snapshot.items = defaultdict(dict, value.items)
            for key in touched.get(value.name, ()):
                if key in value.items:
                    snapshot.items[key] = copy.deepcopy(value.items[key])
            snapshots[id(value)] = snapshot
        return snapshots[id(value)]

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


def _touched_keys(backend: Any, transact_items: list[dict[str, Any]]) -> dict[str, set[DynamoType]]:
    touched: dict[str, set[DynamoType]] = defaultdict(set)
    for entry in transact_items:
        ((kind, op),) = entry.items()
        table = backend.tables.get(op.get("TableName"))
        attributes = op.get("Item") if kind == "Put" else op.get("Key")
        if table is not None and attributes and table.hash_key_attr in attributes:
            touched[table.name].add(DynamoType(attributes[table.hash_key_attr]))
    return touched


def snapshot_touched_items_in_transactions() -> None:
    proxy = _SnapshotTouchedItems()
    original = dynamodb_models.DynamoDBBackend.transact_write_items

    def transact_write_items(backend: Any, transact_items: Any) -> None:
        proxy.local.touched = _touched_keys(backend, transact_items)
        proxy.local.snapshots = {}
        try:
            return original(backend, transact_items)
        finally:
            proxy.local.touched = proxy.local.snapshots = None

    dynamodb_models.copy = proxy
    dynamodb_models.DynamoDBBackend.transact_write_items = transact_write_items


def cache_condition_expression_tokens() -> None:
    """Lex each distinct condition expression once: its tokens depend on the text alone."""
    lex = ConditionExpressionParser._lex_condition_expression
    tokens: dict[str, tuple[Any, ...]] = {}

    def cached(parser: ConditionExpressionParser) -> deque:
        text = parser.condition_expression
        if text not in tokens:
            tokens[text] = tuple(lex(parser))
        return deque(tokens[text])

    ConditionExpressionParser._lex_condition_expression = cached


def list_one_page_without_sorting_the_bucket() -> None:
    """``ListObjectsV2`` picks a page's keys with a bounded heap: moto sorts every key under the
    prefix for every page (41 CPU-seconds to list 100,000 keys in pages of 1,000). Same pages,
    same continuation tokens."""

    def list_objects_v2(
        backend: S3Backend,
        bucket: FakeBucket,
        prefix: str | None,
        delimiter: str | None,
        continuation_token: str | None,
        start_after: str | None,
        max_keys: int,
    ) -> tuple[list[FakeKey | str], bool, str | None]:
        if isinstance(bucket, FakeTableStorageBucket):
            raise MethodNotAllowed()
        prefix = prefix or ""
        after = backend._pagination_tokens.get(continuation_token) if continuation_token else start_after
        entries: dict[str, FakeKey | str] = {}
        for name, key in bucket.keys.items():
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix) :]
            if delimiter and delimiter in rest:
                name = key = f"{prefix}{rest.split(delimiter)[0]}{delimiter}"
            elif isinstance(key, FakeDeleteMarker):
                continue
            if after is None or name > after:
                entries[name] = key
        page = [entries[name] for name in heapq.nsmallest(max_keys + 1, entries)]
        return backend._truncate_result(page, max_keys)

    S3Backend.list_objects_v2 = list_objects_v2


def sqs_without_a_pass_over_the_queue_per_message() -> None:
    """moto checks each message it hands out against the queue's retention period by computing
    every queue attribute, which counts the queue's messages three times over, each message
    asking the time through datetime arithmetic: with thousands of notifications queued, a
    receive took most of a second and the queue fell further behind. Here the retention check
    reads the period, and a message's visibility and delay compare with ``time.time()``."""

    def is_message_valid_based_on_retention_period(backend: SQSBackend, queue_name: str, message: Message) -> bool:
        retention_period = backend.get_queue(queue_name).message_retention_period
        return retention_period + message.sent_timestamp / 1000 > time.time()

    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period
    Message.visible = property(lambda message: time.time() * 1000 > message.visible_at)
    Message.delayed = property(lambda message: time.time() * 1000 < message.delayed_until)


def dispatch_without_listing_moto_per_request() -> None:
    """moto's dispatcher lists its own package directory (and stats each of ~170 entries) to
    route every request; the list is the same each time."""
    modules = tuple(moto.backends.list_of_moto_modules())
    moto.backends.list_of_moto_modules = lambda: modules


class _WeaklyTracked:
    """A model class's ``instances_tracked`` that does not keep its instances alive."""

    def __init__(self, instances: Iterable[Any] = ()) -> None:
        self._refs: list[Any] = []
        self._pruned_at = 64
        for instance in instances:
            self.append(instance)

    def append(self, instance: Any) -> None:
        try:
            self._refs.append(weakref.ref(instance))
        except TypeError:  # no weak references to it: kept, as moto keeps it
            self._refs.append(lambda kept=instance: kept)
        if len(self._refs) >= 2 * self._pruned_at:
            self._refs = [ref for ref in self._refs if ref() is not None]
            self._pruned_at = max(64, len(self._refs))

    def __iter__(self) -> Iterator[Any]:
        return (instance for instance in (ref() for ref in list(self._refs)) if instance is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def track_models_weakly() -> None:
    """moto keeps every model instance it ever creates in its class's ``instances_tracked`` (for its
    dashboard), the copies it makes for a moment included: each SQS message handed out, each
    DynamoDB item a transaction backs up. A long run grew moto by 1.6 MB per file (18 GB at
    N = 100,000 before a fifth of it was done). Here those lists hold weak references."""

    def __new__(cls: type, *args: Any, **kwargs: Any) -> Any:
        instance = object.__new__(cls)
        tracked = cls.__dict__.get("instances_tracked")
        if not isinstance(tracked, _WeaklyTracked):
            tracked = _WeaklyTracked(tracked or ())
            type.__setattr__(cls, "instances_tracked", tracked)
        tracked.append(instance)
        return instance

    BaseModel.__new__ = __new__


def operation(environ: dict[str, Any]) -> str:
    """``service:Operation`` of one request, as AWS would bill it."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    scope = _SCOPE.search(auth)
    service = scope.group(1) if scope else "unknown"
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return f"{service}:{target.rsplit('.', 1)[-1]}"
    method = environ["REQUEST_METHOD"]
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        action = parse_qs(body.decode("utf-8", "replace")).get("Action", ["?"])[0]
        return f"{service}:{action}"
    if service == "s3":
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        has_key = environ.get("PATH_INFO", "/").strip("/").count("/") >= 1
        if method == "GET" and not has_key:
            return "s3:ListObjectsV2" if query.get("list-type") == ["2"] else "s3:ListObjects"
        if method == "PUT" and has_key and environ.get("HTTP_X_AMZ_COPY_SOURCE"):
            return "s3:CopyObject"
        verb = {"GET": "Get", "PUT": "Put", "HEAD": "Head", "DELETE": "Delete", "POST": "Post"}.get(method, method)
        return f"s3:{verb}{'Object' if has_key else 'Bucket'}"
    return f"{service}:{method}"


def fill_bucket(bucket: str, prefix: str, count: int, size: int, distinct: bool = False) -> int:
    """Write ``count`` objects of ``size`` bytes under ``prefix`` straight into moto's S3 (each
    holding its own key after ``RIFF`` when ``distinct``, else all alike)."""
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for i in range(count):
        key = f"{prefix}{i:06d}.wav"
        head = b"RIFF" + (key.encode() if distinct else b"")
        backend.put_object(bucket, key, head + b"\0" * max(0, size - len(head)), disable_notification=True)
    return count


def _answer(start_response: Any, document: Any, status: str = "200 OK") -> list[bytes]:
    body = json.dumps(document).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _switch(start_response: Any, environ: dict[str, Any], name: str, apply: Callable[[float], None]) -> list[bytes]:
    """Answer a fault or latency switch: 400 naming a bad value (nothing changed), else set it."""
    try:
        value = switch_value(environ.get("QUERY_STRING", ""), name)
    except ValueError as err:
        return _answer(start_response, {"error": str(err)}, "400 Bad Request")
    apply(value)
    return _answer(start_response, {name: value})


class DynamoDBInSeries:
    """Serves DynamoDB requests (``X-Amz-Target: DynamoDB_20120810.*``) one at a time."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return self.app(environ, start_response)
        with self.lock:
            return self.app(environ, start_response)


_NAMED_CALLER = re.compile(r"bench-caller/([\w-]+)")


def calling(user_agent: str) -> str:
    """Who made a request, from its User-Agent: ``airflow`` (the provider's hooks), the name a
    client gives itself with ``bench-caller/NAME``, else ``other``."""
    if "Airflow/" in user_agent:
        return "airflow"
    named = _NAMED_CALLER.search(user_agent)
    return named.group(1) if named else "other"


class CountingApp:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls: dict[str, Counter[str]] = defaultdict(Counter)
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_emulator/calls"):
            if environ["REQUEST_METHOD"] == "POST":
                with self.lock:
                    self.calls.clear()
            with self.lock:
                return _answer(start_response, {caller: dict(c) for caller, c in self.calls.items()})
        if path == "/_emulator/s3/fill" and environ["REQUEST_METHOD"] == "POST":
            spec = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
            filled = fill_bucket(
                spec["bucket"],
                spec.get("prefix", ""),
                int(spec["count"]),
                int(spec.get("size", 1024)),
                bool(spec.get("distinct", False)),
            )
            return _answer(start_response, {"filled": filled})
        if not path.startswith("/moto-api"):
            caller = calling(environ.get("HTTP_USER_AGENT", ""))
            name = operation(environ)
            with self.lock:
                self.calls[caller][name] += 1
        return self.app(environ, start_response)


class NetworkLatency:
    """Holds each AWS request for the round trip set through ``POST /_emulator/latency?ms=N``."""

    PATH = "/_emulator/latency"

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seconds = 0.0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path == self.PATH and environ["REQUEST_METHOD"] == "POST":
            return _switch(start_response, environ, "ms", lambda ms: setattr(self, "seconds", ms / 1000))
        if self.seconds and not path.startswith(("/_emulator", "/moto-api")):
            time.sleep(self.seconds)
        return self.app(environ, start_response)


class SqsOutage:
    """Answers every SQS request with a 500 ``InternalError`` while an outage set through
    ``POST /_emulator/faults/sqs-5xx?seconds=N`` lasts, in the protocol the client spoke."""

    PATH = "/_emulator/faults/sqs-5xx"

    def __init__(self, app: Any) -> None:
        self.app = app
        self.until = 0.0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == self.PATH and environ["REQUEST_METHOD"] == "POST":
            return _switch(start_response, environ, "seconds", lambda s: setattr(self, "until", time.monotonic() + s))
        if time.monotonic() < self.until and operation(environ).startswith("sqs:"):
            message = "We encountered an internal error. Please try again. (local SQS outage)"
            if environ.get("HTTP_X_AMZ_TARGET"):  # the JSON protocol
                body = json.dumps({"__type": "com.amazonaws.sqs#InternalError", "message": message})
                return _internal_error(start_response, "application/x-amz-json-1.0", body)
            body = (
                "<ErrorResponse><Error><Type>Receiver</Type><Code>InternalError</Code>"
                f"<Message>{message}</Message></Error><RequestId>local-outage</RequestId></ErrorResponse>"
            )
            return _internal_error(start_response, "text/xml", body)
        return self.app(environ, start_response)


def _internal_error(start_response: Any, content_type: str, text: str) -> list[bytes]:
    body = text.encode()
    start_response("500 Internal Server Error", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m local.moto_server", description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args(argv)
    snapshot_touched_items_in_transactions()
    cache_condition_expression_tokens()
    list_one_page_without_sorting_the_bucket()
    sqs_without_a_pass_over_the_queue_per_message()
    dispatch_without_listing_moto_per_request()
    track_models_weakly()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request cost a tenth of its CPU
    app = SqsOutage(NetworkLatency(CountingApp(DynamoDBInSeries(DomainDispatcherApplication(create_backend_app)))))
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
