"""SSE peers for `make bench`: an event-loop upstream and a many-stream client.

    sse.py server PORT
        answers every request on 127.0.0.1:PORT with a text/event-stream and
        sends every open stream one event a second (one timer for all
        streams) until the client goes away.

    sse.py client PORT STREAMS READY_FILE MAX_SECONDS [TRACE_HEADER]
        opens STREAMS concurrent GET /sse requests to 127.0.0.1:PORT (at most
        100 connecting at a time), writes "<streams with an event>" to
        READY_FILE once every stream has received its first event (or when
        no more will come), keeps reading them, and exits on SIGTERM or after
        MAX_SECONDS.
"""

import asyncio
import os
import signal
import sys


async def serve(port):
    writers = set()

    async def handle(reader, writer):
        try:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            writer.write(b"HTTP/1.1 200 OK\r\n"
                         b"Content-Type: text/event-stream\r\n"
                         b"Cache-Control: no-cache\r\n"
                         b"Connection: close\r\n\r\n"
                         b"retry: 1000\n\n")
            writers.add(writer)
            await reader.read()     # until the proxy closes
        except (ConnectionError, OSError):
            pass
        finally:
            writers.discard(writer)
            writer.close()

    async def tick():
        n = 0
        while True:
            await asyncio.sleep(1)
            n += 1
            event = b"id: %d\ndata: tick %d\n\n" % (n, n)
            for w in list(writers):
                if w.is_closing():
                    writers.discard(w)
                else:
                    w.write(event)

    server = await asyncio.start_server(handle, "127.0.0.1", port,
                                        backlog=4096)
    asyncio.get_running_loop().create_task(tick())
    async with server:
        await server.serve_forever()


async def clients(port, streams, ready_file, max_seconds, trace):
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    gate = asyncio.Semaphore(100)
    got_event = 0
    finished = 0
    all_in = asyncio.Event()
    request = (b"GET /sse HTTP/1.1\r\nHost: bench\r\n"
               b"Accept: text/event-stream\r\n")
    if trace:
        request += b"X-Amzn-Trace-Id: " + trace.encode() + b"\r\n"
    request += b"\r\n"

    def done(first_event):
        nonlocal got_event, finished
        finished += 1
        got_event += first_event
        if finished == streams:
            all_in.set()

    async def one():
        first = False
        try:
            async with gate:
                reader, writer = await asyncio.open_connection("127.0.0.1",
                                                               port)
                writer.write(request)
                while True:
                    line = await reader.readline()
                    if not line:
                        break
                    if line.startswith(b"data:"):
                        first = True
                        break
            done(first)
            if first:
                while await reader.read(65536):
                    pass
        except (ConnectionError, OSError):
            if not first:
                done(False)

    tasks = [loop.create_task(one()) for _ in range(streams)]
    waiting = loop.create_task(all_in.wait())
    stopping = loop.create_task(stop.wait())
    deadline = loop.time() + max_seconds
    await asyncio.wait({waiting, stopping}, timeout=max_seconds,
                       return_when=asyncio.FIRST_COMPLETED)
    with open(ready_file + ".tmp", "w") as f:
        f.write("%d\n" % got_event)
    os.rename(ready_file + ".tmp", ready_file)
    await asyncio.wait({stopping}, timeout=max(0, deadline - loop.time()))
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "server":
        asyncio.run(serve(int(sys.argv[2])))
    elif len(sys.argv) >= 6 and sys.argv[1] == "client":
        asyncio.run(clients(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4],
                            float(sys.argv[5]),
                            sys.argv[6] if len(sys.argv) > 6 else ""))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
