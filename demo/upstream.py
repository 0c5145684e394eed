#!/usr/bin/env python3
"""Demo upstream for `make run`: stands in for a Lambda Function URL.

Prints the trace header each request brought, answers with it, and streams
Server-Sent Events on /sse (resuming after Last-Event-ID).  Standard library
only; listens on 127.0.0.1.
"""
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8081
HOST = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"   # compose: 0.0.0.0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        trace = self.headers.get_all("X-Amzn-Trace-Id") or []
        shown = " | ".join(trace) if trace else "(none)"
        print(f"upstream  {self.command} {self.path}  X-Amzn-Trace-Id: {shown}",
              flush=True)

        if self.path.startswith("/sse"):
            return self.sse()

        status = 200
        if self.path.startswith("/status/"):
            try:
                status = int(self.path.split("/")[2])
            except ValueError:
                pass

        body = (f"demo upstream: {self.command} {self.path}\n"
                f"X-Amzn-Trace-Id received: {shown}\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def sse(self):
        last = self.headers.get("Last-Event-ID")
        start = int(last) + 1 if last and last.isdigit() else 1
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            for n in range(start, start + 5):
                self.wfile.write(f"id: {n}\ndata: tick {n}\n\n".encode())
                self.wfile.flush()
                time.sleep(1)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True


if __name__ == "__main__":
    server = ThreadingHTTPServer((HOST, PORT), Handler)
    server.daemon_threads = True
    print(f"upstream  listening on {HOST}:{PORT}", flush=True)
    server.serve_forever()
