#!/usr/bin/env python3
"""moto's S3 server (what `moto_server` runs) with an access log the interop checks can read.

usage: moto_server.py PORT ACCESS_LOG PID_FILE

`moto_server` logs only werkzeug's request line, which has no request headers; the
checks must see the Range, If-Range and If-None-Match fetchpool sent, so the same
application runs here behind a small WSGI wrapper that appends one JSON line per
request, written when the status is known (before the body, so an interrupted
transfer is logged too).
"""
import json
import os
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

port, access_log, pid_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
log = open(access_log, "a", buffering=1)
lock = threading.Lock()
HEADERS = {
    "range": "HTTP_RANGE",
    "if_range": "HTTP_IF_RANGE",
    "inm": "HTTP_IF_NONE_MATCH",
    "ims": "HTTP_IF_MODIFIED_SINCE",
    "ae": "HTTP_ACCEPT_ENCODING",
}


def logged(app):
    def wrapper(environ, start_response):
        def start(status, headers, exc_info=None):
            record = {
                "method": environ["REQUEST_METHOD"],
                "path": environ.get("PATH_INFO", ""),
                "query": environ.get("QUERY_STRING", ""),
                "status": int(status.split()[0]),
                "ce": next((v for k, v in headers if k.lower() == "content-encoding"), ""),
                "content_range": next((v for k, v in headers if k.lower() == "content-range"), ""),
                "etag": next((v for k, v in headers if k.lower() == "etag"), ""),
            }
            record.update({k: environ.get(v, "") for k, v in HEADERS.items()})
            with lock:
                log.write(json.dumps(record) + "\n")
            return start_response(status, headers, exc_info)

        return app(environ, start)

    return wrapper


with open(pid_file, "w") as f:
    f.write(f"{os.getpid()}\n")
app = DomainDispatcherApplication(create_backend_app)
run_simple("127.0.0.1", port, logged(app), threaded=True, request_handler=MotoRequestHandler)
