"""One container from creation to exit, on any backend: output, timeout, Ctrl-C, removal.

What a timeout or an interrupt means for a stage is decided here rather than
in each backend: the backend only kills when asked, and the supervisor
remembers why, so `execution` can tell `timeout` from `run interrupted` by
the Exit alone.  One supervisor serves one run, so stopping it stops only
that run's containers, even when the bot runs several builds in one process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from runner.backend import ContainerBackend, Stream
from runner.plan import ContainerSpec

__all__ = ["Exit", "OutputSink", "Supervisor"]

OutputSink = Callable[[Stream, bytes], None]
"""Called with each chunk the container writes, as it writes it."""


@dataclass(frozen=True)
class Exit:
    code: int
    timed_out: bool = False
    """Killed at its timeout."""
    killed: bool = False
    """Killed because the run was interrupted."""


class Supervisor:
    """Runs one run's containers and stops them all when the run is interrupted."""

    def __init__(self, backend: ContainerBackend) -> None:
        self.backend = backend
        self._lock = threading.Lock()
        self._live: set[str] = set()
        self._killed: set[str] = set()  # stopped by the user
        self._expired: set[str] = set()  # stopped at their timeout

    def run(self, spec: ContainerSpec, sink: OutputSink, timeout: float | None) -> Exit:
        """Create, start and wait for one container; it is removed whatever happens."""
        container = self.backend.create(spec)
        with self._lock:
            self._live.add(container)
        timer = None
        try:
            self.backend.start(container)
            if timeout is not None:
                timer = threading.Timer(timeout, self._kill, (container, self._expired))
                timer.daemon = True
                timer.start()
            for stream, chunk in self.backend.output(container):
                sink(stream, chunk)
            code = self.backend.wait(container)
            with self._lock:
                return Exit(
                    code, timed_out=container in self._expired, killed=container in self._killed
                )
        finally:
            if timer is not None:
                timer.cancel()
            with self._lock:
                self._live.discard(container)
                self._killed.discard(container)
                self._expired.discard(container)
            self.backend.remove(container)

    def stop_all(self) -> None:
        """Kill every container of the run (Ctrl-C): their stages end as cancelled.

        A container created but not started yet is killed again by the next
        call: the engine calls this until every stage has ended.
        """
        with self._lock:
            live = list(self._live)
        for container in live:
            self._kill(container, self._killed)

    def _kill(self, container: str, why: set[str]) -> None:
        with self._lock:
            if container not in self._live:
                return  # ended meanwhile: its Exit is settled
            why.add(container)
        self.backend.kill(container)
