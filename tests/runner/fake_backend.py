"""An in-memory ContainerBackend: containers whose run the test scripts, every call recorded.

It lets the engine's scheduling be tested in milliseconds with no Docker
engine at all.  A container "runs" in the stage thread that reads its
output: it writes its scripted lines, then ends after its scripted seconds
(short real sleeps), or when killed, or (`hang`) only when killed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from runner.backend import ContainerBackend, Kind, Labelled, Stream
from runner.caching import KEPT_IMAGES, KEPT_LABEL, KeptImage
from runner.errors import BuildFailed, ContainerFailed, ImageUnavailable
from runner.limits import Resources
from runner.plan import ContainerSpec

__all__ = ["FakeBackend", "FakeContainer", "Script"]

KILLED = 137
HANG_LIMIT = 20.0
"""Seconds a hanging container waits to be killed before it fails the test."""


@dataclass(frozen=True)
class Script:
    """What one container does once started."""

    exit: int = 0
    stdout: Sequence[str] = ()
    stderr: Sequence[str] = ()
    seconds: float = 0.0
    hang: bool = False
    """Runs until killed (a timeout, an interrupted run)."""
    files: Sequence[str] = ()
    """Files it writes into its own volume (`$OUT`)."""
    fill: int = 0
    """Bytes of one more file (`fill`) it writes into its own volume once started."""
    layer: int = 0
    """Bytes it writes outside its volume, into its own writable layer."""


@dataclass
class FakeContainer:
    id: str
    spec: ContainerSpec
    script: Script
    stage: str
    volume_at_start: list[str] = field(default_factory=list)
    """What its own volume held when it started (a retry must find it empty)."""
    started: bool = False
    killed: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)
    code: int | None = None
    removed: bool = False


class FakeBackend:
    """Scripts by stage name: one Script, or one per attempt (the last one repeats)."""

    def __init__(self, scripts: dict[str, Script | Sequence[Script]] | None = None) -> None:
        self.scripts: dict[str, list[Script]] = {
            name: [s] if isinstance(s, Script) else list(s) for name, s in (scripts or {}).items()
        }
        self.missing_images: set[str] = set()
        """Images that are not there and cannot be pulled."""
        self.refused: set[str] = set()
        """Stages whose container the engine refuses to create."""
        self.failing_builds: set[str] = set()
        """Tags whose build fails."""
        self.builds: list[dict[str, object]] = []
        """Each build's tag, resources, network and timeout, in order."""
        self.containers: list[FakeContainer] = []
        self.calls: list[tuple[str, str]] = []
        """(method, container id or image or run id), in order."""
        self.events: list[tuple[str, str]] = []
        """("start" | "end", stage), in order: what ran when."""
        self.images: dict[str, dict[str, str]] = {}
        """Built images (by tag) and their labels, until removed."""
        self.leftovers: list[Labelled] = []
        """What other processes left on the engine, for `labelled` (tests of recovery)."""
        self.networks: dict[str, dict[str, str]] = {}
        """Network name -> its labels, while it exists."""
        self.internal: set[str] = set()
        """Networks made `internal` (no way out)."""
        self.ready: dict[str, list[int | None]] = {}
        """`stage.service` -> what its `ready` tries exit with, in turn (the last repeats;
        None: the try did not end in time); 0 when not scripted."""
        self.tries: dict[str, int] = {}
        """`stage.service` -> how many times its `ready` was tried."""
        self.refuse_networks = False
        """The engine refuses to make networks."""
        self.max_running = 0
        self.on_call: Callable[[int], None] | None = None
        """Called with the number of calls so far, at each call (a test's Ctrl-C moment)."""
        self.closed = False
        self._running = 0
        self._lock = threading.Condition()
        self._by_id: dict[str, FakeContainer] = {}

    # --- what a test asks ---------------------------------------------------------------

    def of(self, stage: str) -> list[FakeContainer]:
        """The stage's containers, one per attempt."""
        return [c for c in self.containers if c.stage == stage]

    def started(self) -> list[str]:
        return [stage for what, stage in self.events if what == "start"]

    def wait_running(self, count: int, timeout: float = 5.0) -> None:
        """Return once `count` containers are running at the same time."""
        with self._lock:
            if not self._lock.wait_for(lambda: self._running >= count, timeout):
                raise AssertionError(f"{count} containers never ran at once: {self.events}")

    def _record(self, method: str, what: str) -> None:
        with self._lock:
            self.calls.append((method, what))
            count = len(self.calls)
        if self.on_call is not None:
            self.on_call(count)

    # --- ContainerBackend ---------------------------------------------------------------

    def ensure_image(self, image: str, progress: Callable[[str], None]) -> None:
        self._record("ensure_image", image)
        if image in self.missing_images:
            raise ImageUnavailable(f"image '{image}' is not on this engine and cannot be pulled")

    def build(
        self,
        context: Path,
        dockerfile: str,
        tag: str,
        run_id: str,
        output: Callable[[str], None],
        hidden: Sequence[str] = (),
        labels: Mapping[str, str] | None = None,
        resources: Resources | None = None,
        network: str | None = None,
        timeout: float | None = None,
        cache_from: str | None = None,
        owner_tag: str | None = None,
    ) -> None:
        self._record("build", tag)
        self.images[tag] = {**(labels or {})}  # named by the run's tag, never labelled with it
        if owner_tag is not None:
            self.images[f"dockercise-build:{owner_tag}"] = {**(labels or {})}
        with self._lock:
            self.builds.append(
                {"tag": tag, "resources": resources, "network": network, "timeout": timeout}
            )
        output(f"building {tag}\n")
        if tag in self.failing_builds:
            raise BuildFailed("build failed: scripted")

    def keep(self, tag: str, kept: str, repo: str) -> None:
        self._record("keep", kept)
        self.images[kept] = dict(self.images.get(tag, {}))

    def use_kept(self, kept: str) -> None:
        self._record("use_kept", kept)

    def kept_images(self) -> list[KeptImage]:
        with self._lock:
            return [
                KeptImage(t, ls.get(KEPT_LABEL, ""), 0.0)
                for t, ls in self.images.items()
                if t.startswith(KEPT_IMAGES)
            ]

    def drop_kept(self, kept: str) -> None:
        self._record("drop_kept", kept)
        with self._lock:
            self.images.pop(kept, None)

    def built_tags(self) -> list[str]:
        self._record("built_tags", "")
        with self._lock:
            return [t for t in self.images if t.startswith("dockercise-build:")]

    def built_images(self, run_id: str) -> list[Labelled]:
        self._record("built_images", run_id)
        with self._lock:
            return [
                Labelled(Kind.IMAGE, t, ls)
                for t, ls in self.images.items()
                if t.startswith(f"dockercise-build:{run_id}-")
            ]

    def has_image(self, image: str) -> bool:
        return image in self.images

    def create_network(self, name: str, labels: Mapping[str, str], internal: bool = False) -> None:
        self._record("create_network", name)
        if self.refuse_networks:
            raise ContainerFailed(f"cannot create the network {name}: scripted refusal")
        with self._lock:
            assert name not in self.networks, f"network {name} made twice"
            self.networks[name] = dict(labels)
            if internal:
                self.internal.add(name)

    def remove_network(self, name: str) -> None:
        self._record("remove_network", name)
        with self._lock:
            on_it = [
                c
                for c in self.containers
                if not c.removed and name in (c.spec.network, *c.spec.joins)
            ]
            self.networks.pop(name, None)
        for c in on_it:
            self.remove(c.id)

    def exec(self, container: str, command: Sequence[str], timeout: float) -> int | None:
        self._record("exec", container)
        c = self._by_id[container]
        if c.ended.is_set() or not c.started:
            raise ContainerFailed("cannot run a command in the container: it is not running")
        with self._lock:
            codes = self.ready.get(c.stage, [0])
            tried = self.tries[c.stage] = self.tries.get(c.stage, 0) + 1
        return codes[min(tried, len(codes)) - 1]

    def create(self, spec: ContainerSpec) -> str:
        stage = spec.labels["dockercise.stage"]
        if "dockercise.service" in spec.labels:  # scripted as `stage.service`
            stage = f"{stage}.{spec.labels['dockercise.service']}"
        if spec.network is not None and spec.network not in ("none", "host", "bridge"):
            assert spec.network in self.networks, f"{stage}: joins missing network {spec.network}"
        for network in spec.joins:
            assert network in self.networks, f"{stage}: joins missing network {network}"
        self._record("create", stage)
        if stage in self.refused:
            raise ContainerFailed("cannot create the container: scripted refusal")
        with self._lock:
            attempt = len(self.of(stage))
            # An unscripted service serves until it is stopped, as services do.
            default = Script(hang=True) if "dockercise.service" in spec.labels else Script()
            scripts = self.scripts.get(stage, [default])
            container = FakeContainer(
                f"c{len(self.containers) + 1}", spec, scripts[min(attempt, len(scripts) - 1)], stage
            )
            self.containers.append(container)
            self._by_id[container.id] = container
        return container.id

    def start(self, container: str) -> None:
        self._record("start", container)
        c = self._by_id[container]
        own = next((b.source for b in c.spec.binds if not b.read_only), None)
        if own is not None:  # a service has no volume
            c.volume_at_start = sorted(p.name for p in own.iterdir())
            for name in c.script.files:
                (own / name).write_text(name)
            if c.script.fill:
                with (own / "fill").open("wb") as fill:
                    fill.write(b"x" * c.script.fill)
        with self._lock:
            c.started = True
            self._running += 1
            self.max_running = max(self.max_running, self._running)
            self.events.append(("start", c.stage))
            self._lock.notify_all()

    def output(self, container: str) -> Iterator[tuple[Stream, bytes]]:
        c = self._by_id[container]
        for line in c.script.stdout:
            yield Stream.STDOUT, f"{line}\n".encode()
        for line in c.script.stderr:
            yield Stream.STDERR, f"{line}\n".encode()
        if c.script.hang:
            if not c.killed.wait(HANG_LIMIT):
                raise AssertionError(f"{c.stage}: never killed")
        else:
            c.killed.wait(c.script.seconds)
        self._end(c)

    def _end(self, c: FakeContainer) -> None:
        with self._lock:
            if c.ended.is_set():
                return
            c.code = KILLED if c.killed.is_set() else c.script.exit
            c.ended.set()
            self._running -= 1
            self.events.append(("end", c.stage))
            self._lock.notify_all()

    def wait(self, container: str) -> int:
        self._record("wait", container)
        c = self._by_id[container]
        if not c.ended.wait(HANG_LIMIT):
            raise AssertionError(f"{c.stage}: waited for, never ended")
        assert c.code is not None
        return c.code

    def disk_usage(self, container: str) -> int | None:
        self._record("disk_usage", container)
        return self._by_id[container].script.layer

    def kill(self, container: str) -> None:
        self._record("kill", container)
        self._by_id[container].killed.set()

    def remove(self, container: str) -> None:
        self._record("remove", container)
        c = self._by_id[container]
        c.killed.set()  # force=True: a running container goes too
        if c.started:
            self._end(c)
        c.removed = True

    def remove_run(self, run_id: str) -> None:
        self._record("remove_run", run_id)
        with self._lock:
            for name in [n for n, x in self.networks.items() if x["dockercise.run"] == run_id]:
                del self.networks[name]

    def labelled(self, label: str) -> list[Labelled]:
        self._record("labelled", label)
        with self._lock:
            mine = [
                Labelled(Kind.CONTAINER, c.id, c.spec.labels)
                for c in self.containers
                if not c.removed and label in c.spec.labels
            ]
            images = [Labelled(Kind.IMAGE, t, ls) for t, ls in self.images.items() if label in ls]
            theirs = [t for t in self.leftovers if label in t.labels]
        order = list(Kind)
        return sorted(mine + theirs + images, key=lambda t: order.index(t.kind))

    def discard(self, thing: Labelled) -> None:
        self._record("discard", thing.id)
        with self._lock:
            self.leftovers = [t for t in self.leftovers if t.id != thing.id]
            self.images.pop(thing.id, None)
        if thing.id in self._by_id:
            self.remove(thing.id)

    def close(self) -> None:
        self.closed = True


def _conforms(backend: FakeBackend) -> ContainerBackend:
    return backend  # mypy checks that the fake keeps to the protocol
