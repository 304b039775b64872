"""Idle and slow clients against a running server (SPEC §10, the web side): shared by the tests
of `dockercise serve` and `serve-results`, which must go on answering while they hang on."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

__all__ = ["IDLE", "SLOW", "answer_time", "siege", "threads_of"]

IDLE = 300
SLOW = 5


def threads_of(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError("no thread count")


@contextmanager
def siege(port: int) -> Iterator[None]:
    """`IDLE` connections that send nothing and `SLOW` slowloris ones (headers a byte a time)."""
    stop = threading.Event()
    with ExitStack() as stack:
        for _ in range(IDLE):
            stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))

        def slowloris() -> None:
            request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                for byte in request:
                    if stop.wait(0.05):
                        return
                    try:
                        s.sendall(bytes([byte]))
                    except OSError:
                        return  # closed by the server: fine too

        slow = [threading.Thread(target=slowloris, daemon=True) for _ in range(SLOW)]
        for thread in slow:
            thread.start()
        time.sleep(0.5)  # every connection accepted, the slow ones well under way
        try:
            yield
        finally:
            stop.set()
            for thread in slow:
                thread.join(5)


def answer_time(url: str) -> float:
    """Seconds a normal GET of `url` takes to be answered 200."""
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.status == 200
        answer.read()
    return time.monotonic() - started
