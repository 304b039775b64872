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

__all__ = ["INTERRUPTED", "Exit", "Guard", "Interrupt", "OutputSink", "Stop", "Supervisor"]

KILLED = 137
"""The exit code of a container killed before it ran."""

OutputSink = Callable[[Stream, bytes], None]
"""Called with each chunk the container writes, as it writes it."""

Guard = Callable[[str], str | None]
"""Asked every few seconds with the id of a running container: a reason to stop it (`disk
limit`), or None."""

INTERRUPTED = "run interrupted"
GUARD_EVERY = 2.0
"""Seconds between two questions to a container's guard (SPEC §10: at least every 5 s)."""


class Stop(threading.Event):
    """Set when a run must stop early, with why: Ctrl-C, or a limit (`build time limit`).

    Its stages end `cancelled` with `reason` as theirs.
    """

    def __init__(self) -> None:
        super().__init__()
        self.reason = INTERRUPTED

    def stop(self, reason: str) -> None:
        if not self.is_set():
            self.reason = reason
        self.set()


class Interrupt:
    """Ctrl-C (or SIGTERM, SIGHUP) asked for: what the CLI's signal handler sets.

    A signal handler runs between any two bytecodes of the main thread, so
    it must not raise there (a KeyboardInterrupt inside `pool.submit` loses a
    started stage) nor take a lock (the main thread may hold it): it only
    stores a flag, which the scheduler reads every `TICK`.
    """

    def __init__(self) -> None:
        self._asked = False

    def request(self) -> None:
        """Safe anywhere, a signal handler included."""
        self._asked = True

    @property
    def requested(self) -> bool:
        return self._asked


@dataclass(frozen=True)
class Exit:
    code: int
    timed_out: bool = False
    """Killed at its timeout."""
    killed: bool = False
    """Killed because the run was interrupted."""
    limit: str | None = None
    """Killed because its guard said so: the guard's reason."""


class Supervisor:
    """Runs one run's containers and stops them all when the run is interrupted."""

    def __init__(self, backend: ContainerBackend) -> None:
        self.backend = backend
        self._lock = threading.Lock()
        self._live: set[str] = set()
        self._killed: set[str] = set()  # stopped by the user
        self._expired: set[str] = set()  # stopped at their timeout
        self._stopping = False  # after stop_all, a container is killed as soon as it exists
        self._limited: dict[str, str] = {}  # stopped by their guard, and why

    def run(
        self,
        spec: ContainerSpec,
        sink: OutputSink,
        timeout: float | None,
        guard: Guard | None = None,
    ) -> Exit:
        """Create, start and wait for one container; it is removed whatever happens.

        `guard`, when given, is asked on a thread of its own every GUARD_EVERY
        seconds while the container runs; a reason it gives stops the container.
        """
        container = self.backend.create(spec)
        with self._lock:
            self._live.add(container)
            stopping = self._stopping
        timer = None
        ended = threading.Event()
        try:
            if stopping:  # created while the run stops: it never runs its script
                return Exit(KILLED, killed=True)
            self.backend.start(container)
            with self._lock:
                stopping = self._stopping
            if stopping:  # stop_all came between the check and the start: kill it now
                self._kill(container, self._killed)
            if timeout is not None:
                timer = threading.Timer(timeout, self._kill, (container, self._expired))
                timer.daemon = True
                timer.start()
            if guard is not None:
                threading.Thread(
                    target=self._guard, args=(container, guard, ended), daemon=True
                ).start()
            for stream, chunk in self.backend.output(container):
                sink(stream, chunk)
            code = self.backend.wait(container)
            with self._lock:
                return Exit(
                    code,
                    timed_out=container in self._expired,
                    killed=container in self._killed,
                    limit=self._limited.get(container),
                )
        finally:
            ended.set()
            if timer is not None:
                timer.cancel()
            with self._lock:
                self._live.discard(container)
                self._killed.discard(container)
                self._expired.discard(container)
                self._limited.pop(container, None)
            self.backend.remove(container)

    def _guard(self, container: str, guard: Guard, ended: threading.Event) -> None:
        while not ended.wait(GUARD_EVERY):
            reason = guard(container)
            if reason is not None:
                with self._lock:
                    if container not in self._live:
                        return
                    self._limited[container] = reason
                self.backend.kill(container)
                return

    def stop_all(self) -> None:
        """Kill every container of the run (Ctrl-C): their stages end as cancelled.

        From then on, a container created later is never started, and one
        started meanwhile is killed once started, so that no stage thread the
        scheduler lost track of can leave a container running.
        """
        with self._lock:
            self._stopping = True
            live = list(self._live)
        for container in live:
            self._kill(container, self._killed)

    def _kill(self, container: str, why: set[str]) -> None:
        with self._lock:
            if container not in self._live:
                return  # ended meanwhile: its Exit is settled
            why.add(container)
        self.backend.kill(container)
