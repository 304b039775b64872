"""A stage's services at run time (SPEC §14): network, containers, readiness, logs, removal.

`Sidecars` serves one attempt of a stage's container:

    sidecars.start(left)   # network, containers, each `ready` until it passes
    ... the stage runs on sidecars.network ...
    sidecars.halt()        # whatever happened: the services' results are settled
    sidecars.stop()        # killed, drained, removed with the network (on a thread of its own)

Services are not the supervisor's containers: the stage's outcome is its own
container's, and a service is only ever killed and removed, once the stage
has ended (or never started).  Whatever kills this process instead leaves
containers and a network carrying the run's and its owner's labels, which
the next start's sweep removes (`runner.recovery`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from runner.backend import ContainerBackend, Stream
from runner.errors import ContainerFailed
from runner.guards import CappedLog
from runner.masking import LineSplitter, Masker
from runner.model import Service
from runner.plan import ContainerSpec
from runner.services import log_name
from runner.supervisor import Stop

__all__ = ["READY_TIMEOUT", "Readiness", "ServiceFailed", "Sidecars", "Stopping"]

READY_TIMEOUT = 60.0
"""Seconds a stage's services have, together, to become ready (SPEC §14)."""
READY_PAUSES = (0.05, 0.1, 0.2, 0.4, 0.8)
"""Seconds between the first tries of `ready`; every second after them.  A service that is
ready at once (most are) costs the stage a fraction of a second, not a whole one."""
READY_EVERY = 1.0
PUMP_JOIN = 10.0
"""Seconds to wait for a killed service's output to end before its log is closed."""
TAIL_LINES = 10
"""Lines of a service's log that the stage's notes repeat when it was not ready (SPEC §14)."""
TAIL_WIDTH = 300
"""Characters of each such line: notes are never cut by the log cap, so they are bounded here."""


class ServiceFailed(ContainerFailed):
    """A service never became ready, or ended before it did: the stage's `error` reason.

    `tail`: the service's last lines, masked (none when its stage keeps no log), which the
    stage's notes repeat so that the console says why without opening the service's log.
    """

    def __init__(self, message: str, service: str = "", tail: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.service = service
        self.tail = tuple(tail)


class Readiness(Enum):
    READY = "ready"
    CANCELLED = "cancelled"
    """The run was stopped while the services started."""
    TIMED_OUT = "timed out"
    """The stage's own timeout came before the services were ready."""


@dataclass
class _Running:
    """One service's container while the stage runs."""

    service: Service
    spec: ContainerSpec
    log: CappedLog | None
    container: str | None = None
    ready: float | None = None
    """Seconds from its creation (its container made and started: its own start) until
    `ready` passed; 0 without `ready`."""
    code: int | None = None
    """Its exit code, once it ended on its own (a kill after the stage is not recorded)."""
    ended: threading.Event = field(default_factory=threading.Event)
    killed: bool = False
    """Killed after the stage, still running: its exit code is the kill's, not its own."""
    pump: threading.Thread | None = None
    started: float = 0.0
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    """Its last lines, masked: kept by the pump, read by the stage's thread (under `lock`)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def failed(self, why: str) -> ServiceFailed:
        """`why` (the stage's reason), with the service's last lines when its log is kept."""
        with self.lock:
            tail = list(self.tail) if self.log is not None else []
        return ServiceFailed(why, self.service.name, tail)


@dataclass
class Sidecars:
    """One attempt's services: what `start` makes, `__exit__` removes."""

    backend: ContainerBackend
    stage: str
    network: str
    """The stage's own network (`networks.stage_network`), made by `start`."""
    internal: bool
    """The run has no network (`meta.network: none`): neither has the stage's, beyond itself."""
    labels: Mapping[str, str]
    specs: Sequence[tuple[Service, ContainerSpec]]
    masker: Masker
    logs: Callable[[Service], CappedLog | None]
    """The service's log, opened once for every attempt of the stage; None: not kept (noLog)."""
    cancel: Stop
    note: Callable[[str], None]
    changed: Callable[[], None] = lambda: None
    """Called on the stage's thread once a service has started and once it is ready: the
    stage's JSON then lists its services while it runs (SPEC §14), not only at its end."""
    _running: list[_Running] = field(default_factory=list)
    _made: bool = False
    _halted: bool = False

    def start(self, left: float) -> Readiness:
        """Make the network, start every service on it, wait until each is ready.

        `left`: seconds until the stage's timeout.  ServiceFailed when a service
        is not ready within `ready_timeout` (or ended before it was);
        ContainerFailed when the engine refuses.
        """
        self.backend.create_network(self.network, self.labels, internal=self.internal)
        self._made = True
        for service, spec in self.specs:
            running = _Running(service, spec, self.logs(service), started=time.monotonic())
            self._running.append(running)
            running.container = self.backend.create(spec)
            self.backend.start(running.container)
            running.pump = threading.Thread(
                target=self._pump, args=(running,), name=f"service-{service.name}", daemon=True
            )
            running.pump.start()
            if service.ready is None:
                running.ready = 0.0  # ready once started: nothing to wait for
                self.note(f"service {service.name} started (no ready command)")
            self.changed()
        return self._wait_ready(left)

    def containers(self) -> list[str]:
        """The services' containers made so far: the stage's disk limit counts their layers."""
        return [r.container for r in self._running if r.container is not None]

    def _wait_ready(self, left: float) -> Readiness:
        """Each service's `ready`, again after a pause, until all pass or the time is up."""
        limit = READY_TIMEOUT  # read at each start: tests shorten it
        end = time.monotonic() + min(limit, left)
        waiting = [r for r in self._running if r.service.ready is not None]
        tries = 0
        while waiting:
            for running in list(waiting):
                if self._ready(running, end):
                    running.ready = round(time.monotonic() - running.started, 3)
                    self.note(f"service {running.service.name} ready after {running.ready} s")
                    waiting.remove(running)
                    self.changed()
            if not waiting:
                break
            now = time.monotonic()
            if now >= end:
                if left < limit:
                    return Readiness.TIMED_OUT
                raise waiting[0].failed(f"service {waiting[0].service.name} not ready")
            pause = READY_PAUSES[tries] if tries < len(READY_PAUSES) else READY_EVERY
            tries += 1
            if self.cancel.wait(min(pause, end - now)):
                return Readiness.CANCELLED
        return Readiness.CANCELLED if self.cancel.is_set() else Readiness.READY

    def _ready(self, running: _Running, deadline: float) -> bool:
        """One try of the service's `ready`; ServiceFailed once the service has ended.

        A try that does not end by the deadline counts as not ready.
        """
        assert running.container is not None and running.service.ready is not None
        name = running.service.name
        if running.ended.is_set():
            raise running.failed(f"service {name} exited (code {running.code}) before ready")
        left = max(deadline - time.monotonic(), 0.1)
        try:
            code = self.backend.exec(
                running.container, ["/bin/sh", "-c", running.service.ready], left
            )
        except ContainerFailed:
            if running.ended.wait(PUMP_JOIN):
                raise running.failed(
                    f"service {name} exited (code {running.code}) before ready"
                ) from None
            raise
        return code == 0

    def _pump(self, running: _Running) -> None:
        """The service's output, masked line by line, into its log; then its exit code.

        The log is flushed after every chunk, as the stage's own is, so that the
        run page and `dockercise logs` show a running service's output.
        """
        assert running.container is not None
        splitters = {stream: LineSplitter(self.masker) for stream in Stream}
        log = running.log

        def keep(lines: list[str]) -> None:
            if log is None or not lines:
                return
            masked = [self.masker(line) for line in lines]
            with running.lock:
                running.tail.extend(line[:TAIL_WIDTH] for line in masked)
            for line in masked:
                log.output(line.encode())
            log.flush()

        try:
            for stream, chunk in self.backend.output(running.container):
                keep(splitters[stream].feed(chunk))
            for splitter in splitters.values():
                keep(splitter.close())
            running.code = self.backend.wait(running.container)
        except Exception:  # this thread's one catch-all: a service's log is not the stage's
            pass  # outcome (the engine failing, the store full: the stage's own log says so)
        finally:
            running.ended.set()

    def halt(self) -> None:
        """Mark the services still running as stopped by dockercise (their exit code is then
        the kill's, not theirs): what `results` says from now on.  No engine call."""
        if self._halted:
            return
        for running in self._running:
            running.killed = not running.ended.is_set()
        self._halted = True

    def stop(self) -> None:
        """Kill and remove every service, then the network; never raises."""
        self.halt()
        stopped_at = time.monotonic()
        for running in self._running:
            if running.container is not None:
                self.backend.kill(running.container)
        for running in self._running:
            if running.pump is not None:
                running.pump.join(max(PUMP_JOIN - (time.monotonic() - stopped_at), 0.1))
            if running.container is not None:
                self.backend.remove(running.container)
        if self._made:
            self.backend.remove_network(self.network)
            self._made = False

    def results(self) -> list[dict[str, Any]]:
        """The stage JSON's `services`: what each service was and how it went."""
        return [
            {
                "name": r.service.name,
                "image": r.spec.image,
                "ready": r.ready,
                "exit_code": None if r.killed else r.code,
                "logs": f"{log_name(self.stage, r.service.name)}.log" if r.log else None,
            }
            for r in self._running
        ]


class Stopping:
    """Services stopped off their stage's clock, as the engine removes containers.

    A stage's dependents need not wait for its services to go; a retry of
    the stage does (`wait`), and the run waits for all of them before it
    ends (`drain`), so that nothing of it outlives it and every service log
    is whole before it is closed.  A stage's service logs are kept open
    across its attempts (`log`) and closed once its last services are gone
    (`close`).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logs: dict[str, dict[str, CappedLog]] = {}
        self._stopping: dict[str, list[threading.Thread]] = {}
        self._closing: list[threading.Thread] = []

    def log(self, stage: str, service: str, open_log: Callable[[], CappedLog]) -> CappedLog:
        """The service's log, opened at its first attempt."""
        with self._lock:
            logs = self._logs.setdefault(stage, {})
        if service not in logs:  # only the stage's own thread asks for its logs
            logs[service] = open_log()
        return logs[service]

    def later(self, stage: str, sidecars: Sidecars) -> None:
        """Stop and remove one attempt's services on a thread of their own."""
        thread = threading.Thread(target=sidecars.stop, name=f"stop-services-{stage}")
        thread.start()
        with self._lock:
            self._stopping.setdefault(stage, []).append(thread)

    def wait(self, stage: str) -> None:
        """Return once the stage's services so far are stopped and removed."""
        with self._lock:
            threads = self._stopping.pop(stage, [])
        for thread in threads:
            thread.join()

    def close(self, stage: str) -> None:
        """Close the stage's service logs once its services are gone (on a thread)."""
        with self._lock:
            logs = self._logs.pop(stage, {})
            if not logs and stage not in self._stopping:
                return

        def close() -> None:
            self.wait(stage)
            for log in logs.values():
                with contextlib.suppress(Exception):  # the stage's own log reports a store failure
                    log.close()

        thread = threading.Thread(target=close, name=f"close-services-{stage}")
        thread.start()
        with self._lock:
            self._closing.append(thread)

    def drain(self) -> None:
        """Return once every stage's services are stopped and their logs closed."""
        while True:
            with self._lock:
                closing, self._closing = self._closing, []
                stopping = [t for threads in self._stopping.values() for t in threads]
            if not closing and not any(t.is_alive() for t in stopping):
                return
            for thread in [*closing, *stopping]:
                thread.join()
