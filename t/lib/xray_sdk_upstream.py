#!/usr/bin/env python3
"""An upstream instrumented with the official AWS X-Ray SDK for Python.

It handles the incoming X-Amzn-Trace-Id exactly as the SDK's own web
middlewares do (aws_xray_sdk.ext.util: construct the trace header, let it
decide sampling, begin a segment with its Root and Parent) and emits its
segment to the daemon address it is given.  The answer's body is the
segment's trace id, id and parent id, for the tests to compare.

    xray_sdk_upstream.py PORT DAEMON_HOST:PORT
"""
import inspect
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from aws_xray_sdk.core import xray_recorder
from aws_xray_sdk.ext.util import (calculate_sampling_decision,
                                   construct_xray_header)

PORT = int(sys.argv[1])
DAEMON = sys.argv[2]

xray_recorder.configure(service="sdk-upstream", daemon_address=DAEMON,
                        sampling=False, context_missing="LOG_ERROR")


def decide(header, req):
    """The SDK's own decision; its signature changed in 1.x -> 2.x."""
    params = inspect.signature(calculate_sampling_decision).parameters
    if "sampling_req" in params:
        return calculate_sampling_decision(
            trace_header=header, recorder=xray_recorder,
            sampling_req={"host": req.headers.get("Host"),
                          "method": req.command, "path": req.path,
                          "service": "sdk-upstream"})
    return calculate_sampling_decision(header, xray_recorder, "sdk-upstream",
                                       req.command, req.path)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        header = construct_xray_header(self.headers)
        sampled = decide(header, self)
        segment = xray_recorder.begin_segment(name="sdk-upstream",
                                              traceid=header.root,
                                              parent_id=header.parent,
                                              sampling=sampled)
        segment.put_http_meta("method", self.command)
        segment.put_http_meta("url", "http://127.0.0.1:%d%s" % (PORT,
                                                               self.path))
        body = ("trace_id=%s id=%s parent_id=%s sampled=%s\n"
                % (segment.trace_id, segment.id, segment.parent_id,
                   int(bool(segment.sampled)))).encode()
        segment.put_http_meta("status", 200)
        xray_recorder.end_segment()

        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    server = HTTPServer(("127.0.0.1", PORT), Handler)
    print("ready", flush=True)
    server.serve_forever()
