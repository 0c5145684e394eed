#!/usr/bin/env python3
"""Demo X-Ray daemon sink for `make run`: prints every segment document it
receives on UDP, one readable line each.  Standard library only."""
import json
import sys
import socket

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 2000


def summary(doc):
    http = doc.get("http", {})
    req, resp = http.get("request", {}), http.get("response", {})
    flags = [f for f in ("error", "throttle", "fault") if doc.get(f)]
    if doc.get("in_progress"):
        flags.append("in_progress")
    subs = doc.get("subsegments", [])
    dur = ""
    if "end_time" in doc:
        dur = f" {1000 * (doc['end_time'] - doc['start_time']):.1f}ms"
    return (f"{doc.get('type', 'segment')} {doc.get('name')} "
            f"trace={doc.get('trace_id')} id={doc.get('id')} "
            f"parent={doc.get('parent_id', '-')} "
            f"{req.get('method', '')} {req.get('url', '')} "
            f"status={resp.get('status', '-')}{dur}"
            f"{' ' + ','.join(flags) if flags else ''}"
            f" subsegments={len(subs)}")


def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", PORT))
    print(f"sink      listening on udp 127.0.0.1:{PORT}", flush=True)
    while True:
        data, _ = sock.recvfrom(65536)
        header, _, body = data.partition(b"\n")
        try:
            if json.loads(header) != {"format": "json", "version": 1}:
                raise ValueError("bad header line")
            print("sink      " + summary(json.loads(body)), flush=True)
        except ValueError as e:
            print(f"sink      rejected datagram ({e}): {data[:80]!r}",
                  flush=True)


if __name__ == "__main__":
    main()
