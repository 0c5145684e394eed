"""Sends exactly N requests, one at a time, on one keep-alive connection.

    requests.py PORT N [TRACE_HEADER]

For the instruction counts of `make bench` (nginx under callgrind): nginx
must see exactly N requests, and they must be alike.  Prints
"<N> requests, <errors> not 200" and exits non-zero on any error.
"""

import socket
import sys


def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    trace = sys.argv[3] if len(sys.argv) > 3 else ""
    request = b"GET / HTTP/1.1\r\nHost: bench\r\n"
    if trace:
        request += b"X-Amzn-Trace-Id: " + trace.encode() + b"\r\n"
    request += b"\r\n"

    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    errors = 0
    for _ in range(n):
        s.sendall(request)
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                sys.exit("connection closed by nginx")
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        if not lines[0].startswith(b"HTTP/1.1 200 "):
            errors += 1
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(buf) < length:
            chunk = s.recv(65536)
            if not chunk:
                sys.exit("connection closed by nginx")
            buf += chunk
        buf = buf[length:]
    s.close()
    print("%d requests, %d not 200" % (n, errors))
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
