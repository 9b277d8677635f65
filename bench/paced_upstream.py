"""An upstream that streams like a model: one SSE event per write, at a fixed rate.

    python bench/paced_upstream.py PORT EVENTS_PER_SECOND PATH=FILE.sse [PATH=FILE.sse ...]

Answers a POST to PATH (keep-alive) with the events of its FILE, each sent on its own at
EVENTS_PER_SECOND (deadline pacing, so the rate holds on average). Between two events the
gateway under test has nothing to do and sleeps, so its CPU time read from /proc at any moment
is exact to the nanosecond (a busy process's is only updated at the scheduler tick). Used by
bench/stream_scale.py for CPU per chunk along one long stream.
"""

from __future__ import annotations

import socket
import socketserver
import sys
import time
from pathlib import Path


class Handler(socketserver.BaseRequestHandler):
    streams: dict[bytes, list[bytes]] = {}
    interval_s = 0.0

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pending = b""
        while True:
            while b"\r\n\r\n" not in pending:
                data = sock.recv(65536)
                if not data:
                    return
                pending += data
            head, _, pending = pending.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(pending) < length:
                data = sock.recv(65536)
                if not data:
                    return
                pending += data
            pending = pending[length:]
            path = head.split(b" ", 2)[1]
            events = self.streams.get(path)
            if events is None:
                sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                continue
            self.answer(sock, events)

    def answer(self, sock: socket.socket, events: list[bytes]) -> None:
        total = sum(len(e) for e in events)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                     b"Content-Length: %d\r\n\r\n" % total)
        deadline = time.perf_counter()
        for event in events:
            deadline += self.interval_s
            delay = deadline - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sock.sendall(event)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main() -> None:
    port, rate = int(sys.argv[1]), float(sys.argv[2])
    for spec in sys.argv[3:]:
        path, _, file = spec.partition("=")
        Handler.streams[path.encode()] = [e + b"\n\n" for e in Path(file).read_bytes().split(b"\n\n") if e]
    Handler.interval_s = 1.0 / rate
    with Server(("127.0.0.1", port), Handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
