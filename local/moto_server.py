"""moto in server mode, counting the AWS API calls it serves (for the benchmarks).

It also fixes one cost of moto's that is not AWS's: ``TransactWriteItems`` deep-copies the
whole table once per item of the transaction (for its rollback), which makes a 100-item
transaction on a 10,000-item table copy a million items. Here each table is copied once
per transaction; the rollback behaves the same.

``python -m local.moto_server -H 127.0.0.1 -p 5000``. ``GET /_emulator/calls`` answers
``{caller: {"service:Operation": count}}``, where the caller is ``airflow`` for requests
made through the Amazon provider's hooks (their User-Agent carries ``Airflow/``) and
``other`` for the rest (emulators, uploads, tests); ``POST /_emulator/calls/reset`` zeroes it.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import re
import threading
from collections import Counter, defaultdict
from typing import Any
from urllib.parse import parse_qs

import moto.dynamodb.models as dynamodb_models
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

_SCOPE = re.compile(r"Credential=[^/]+/\d+/[^/]+/([^/]+)/")


class _CopyOncePerTransaction:
    """Stands in for the ``copy`` module inside moto's DynamoDB models: within one transaction
    (per thread), a second deep copy of the same table returns the first."""

    def __init__(self) -> None:
        self.local = threading.local()

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        copies = getattr(self.local, "copies", None)
        if copies is None:
            return copy.deepcopy(value, memo)
        if id(value) not in copies:
            copies[id(value)] = copy.deepcopy(value, memo)
        return copies[id(value)]

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


def copy_tables_once_per_transaction() -> None:
    proxy = _CopyOncePerTransaction()
    original = dynamodb_models.DynamoDBBackend.transact_write_items

    def transact_write_items(backend: Any, transact_items: Any) -> None:
        proxy.local.copies = {}
        try:
            return original(backend, transact_items)
        finally:
            proxy.local.copies = None

    dynamodb_models.copy = proxy
    dynamodb_models.DynamoDBBackend.transact_write_items = transact_write_items


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
        verb = {"GET": "Get", "PUT": "Put", "HEAD": "Head", "DELETE": "Delete", "POST": "Post"}.get(method, method)
        return f"s3:{verb}{'Object' if has_key else 'Bucket'}"
    return f"{service}:{method}"


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
                body = json.dumps({caller: dict(c) for caller, c in self.calls.items()}).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if not path.startswith("/moto-api"):
            caller = "airflow" if "Airflow/" in environ.get("HTTP_USER_AGENT", "") else "other"
            name = operation(environ)
            with self.lock:
                self.calls[caller][name] += 1
        return self.app(environ, start_response)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m local.moto_server", description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args(argv)
    copy_tables_once_per_transaction()
    app = CountingApp(DomainDispatcherApplication(create_backend_app))
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
