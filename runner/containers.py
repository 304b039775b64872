"""The Docker adapter of `runner.backend.ContainerBackend`: the only module that imports `docker`.

It uses the SDK's low-level API on purpose: the high-level `containers.run`
inspects the container again after every call, and a stage is mostly Docker
round trips (create, attach, start, wait, remove), so each saved one counts:
removals, for one, happen on a thread of their own, off the critical path.
Podman answers the same API: point DOCKER_HOST at its socket.
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime
from pathlib import Path
from typing import IO, Any, cast

import docker
import docker.errors
import docker.utils
import requests.exceptions
import urllib3.exceptions
from docker.types import LogConfig, Mount
from docker.utils import parse_repository_tag

from runner.backend import Kind, Labelled, Stream
from runner.caching import KEPT_IMAGES, KEPT_LABEL, KeptImage
from runner.errors import (
    BuildFailed,
    BuildTimedOut,
    ContainerFailed,
    EngineUnavailable,
    ImageUnavailable,
)
from runner.limits import Resources
from runner.networks import bridge_name
from runner.ownership import blank_labels
from runner.plan import BUILT_IMAGES, ContainerSpec, run_tag_prefix

__all__ = ["Containers"]

_ENGINE_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException)
"""What a call to the engine raises when the engine refuses or cannot be reached."""

_STEP = re.compile(r"^ ---> (Running in [0-9a-f]+|[0-9a-f]{12,64})$", re.MULTILINE)


def built_layers(text: str, fresh: bool = False) -> tuple[list[str], bool]:
    """The image ids the builder *made* in `text` (its output), and whether a step is running.

    A step it made prints `Running in <container>` before its id; a step taken
    from the cache (`Using cache`) or a `FROM` image prints only the id: those
    belong to other builds (a kept image, the base image, another run of the
    same Dockerfile) and must never be removed with a failed build.  `fresh`
    carries a step's state across chunks of output.
    """
    made: list[str] = []
    for found in _STEP.finditer(text):
        step = found.group(1)
        if step.startswith("Running in"):
            fresh = True
        else:
            if fresh:
                made.append(step)
            fresh = False
    return made, fresh


def build_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    """What a built image is labelled with: `labels` over every owner label blanked.

    The classic builder adds one `LABEL` step per label, after the
    Dockerfile's own steps, and a label whose value changes from build to
    build is a step the cache never has (a container made and committed each
    time).  So a built image names no run and no owner (its tag names the
    run, BUILT_IMAGES), and only what is the same in every build of a stage
    (the repository, `caching.KEPT_LABEL`) may be given: a second build of an
    unchanged Dockerfile is then the cache's from its first step to its last.
    Blank owner labels over the Dockerfile's own mean no Dockerfile can make
    its image pass for a dead run's.
    """
    return {**blank_labels(), "dockercise.run": "", **(labels or {})}


def _context_archive(context: Path, dockerfile: str, hidden: Sequence[str]) -> IO[bytes]:
    """The build context as `docker build` sends it (`.dockerignore` honoured), less `hidden`.

    Built here rather than by the SDK so that the results and state folder in
    a checkout, which other stages write to while this one builds, is never
    read (and never shown to the build).
    """
    exclude = list(hidden)
    ignore = context / ".dockerignore"
    if ignore.is_file():
        lines = (line.strip() for line in ignore.read_text(errors="replace").splitlines())
        exclude += [line for line in lines if line and not line.startswith("#")]
    archive = docker.utils.tar(context, exclude=exclude, dockerfile=(dockerfile, None))
    return cast("IO[bytes]", archive)  # a temporary file, since no fileobj is given


def _host_limits(resources: Resources) -> dict[str, Any]:
    """A stage container's limits as `create_host_config` takes them.

    Swap is capped at the memory itself (no swap beyond it).  The engine's
    own copy of the output is not kept at all when the log is limited: this
    adapter reads the output through `attach`, which any log driver serves,
    so a container printing without end cannot fill the engine's disk.
    """
    limits: dict[str, Any] = {}
    if resources.memory is not None:
        limits.update(mem_limit=resources.memory, memswap_limit=resources.memory)
    if resources.cpus is not None:
        limits["nano_cpus"] = int(resources.cpus * 1e9)
    if resources.pids is not None:
        limits["pids_limit"] = resources.pids
    if resources.log is not None:
        limits["log_config"] = LogConfig(type=LogConfig.types.NONE)
    return limits


def _moment(text: object) -> float:
    """An engine's RFC 3339 time (nanoseconds, `Z`) as seconds since the epoch; 0 if none."""
    if not isinstance(text, str) or not text or text.startswith("0001-"):
        return 0.0
    found = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text)
    if found is None:
        return 0.0
    whole, fraction, zone = found.groups()
    moment = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone))
    return moment.timestamp() + float(fraction or 0)


def _explain(e: Exception) -> str:
    if isinstance(e, docker.errors.APIError):
        return str(e.explanation or e)
    if isinstance(e, requests.exceptions.ConnectionError):
        return "the Docker engine stopped answering"
    return str(e) or type(e).__name__


class Containers:
    """A ContainerBackend on the Docker engine that DOCKER_HOST (in `environment`) names.

    Making one asks the engine its API version: EngineUnavailable (exit 3)
    when it does not answer.
    """

    def __init__(self, environment: Mapping[str, str] | None = None) -> None:
        client = None
        try:
            # Asks the engine its API version first: an engine that does not answer fails here.
            client = docker.from_env(environment=dict(environment) if environment else None)
        except _ENGINE_ERRORS as e:
            if client is not None:
                client.close()
            raise EngineUnavailable(
                f"cannot reach the Docker engine ({_explain(e)}); start it, or set DOCKER_HOST"
            ) from None
        self.client = client
        self.api = client.api
        self._images: dict[str, threading.Lock] = {}
        self._present: set[str] = set()
        self._lock = threading.Lock()
        self._streams: dict[str, Any] = {}  # container id -> its attached output stream
        self._remover = ThreadPoolExecutor(max_workers=2, thread_name_prefix="remove")
        self._removals: list[Future[None]] = []
        self._built: set[str] = set()  # runs that built images
        self._ncpu: int | None = None  # the engine's CPUs, once a build needs to know

    def ensure_image(self, image: str, progress: Callable[[str], None]) -> None:
        """Pull the image when the engine lacks it; ImageUnavailable when that is impossible."""
        with self._lock:
            lock = self._images.setdefault(image, threading.Lock())
        with lock:
            if image in self._present:
                return
            try:
                self.api.inspect_image(image)  # type: ignore[no-untyped-call]
            except docker.errors.ImageNotFound:
                self._pull(image, progress)
            except _ENGINE_ERRORS as e:
                raise ContainerFailed(f"cannot inspect image '{image}': {_explain(e)}") from None
            self._present.add(image)

    def _pull(self, image: str, progress: Callable[[str], None]) -> None:
        repo, tag = parse_repository_tag(image)
        progress(f"pulling image {image}")
        seen: dict[str, str] = {}
        try:
            for event in self.api.pull(repo, tag or "latest", stream=True, decode=True):
                if "error" in event:
                    raise ImageUnavailable(f"cannot pull image '{image}': {event['error']}")
                status, layer = event.get("status", ""), event.get("id", "")
                if status and seen.get(layer) != status and "ing" not in status[-4:]:
                    seen[layer] = status
                    progress(f"{layer}: {status}" if layer else status)
        except _ENGINE_ERRORS as e:
            raise ImageUnavailable(
                f"image '{image}' is not on this engine and cannot be pulled: {_explain(e)}"
            ) from None

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
        """Build and tag an image; BuildFailed with the builder's message when a step fails.

        The classic builder reuses the layers of *any* image the engine holds
        unless `cache_from` names the images it may use: so it always does (the
        repository's kept image), or the build uses no cache at all.  Another
        repository's layers can then neither leak into a build nor poison it.

        The image is labelled with the run, so remove_run() removes it; the
        layers of a failed build are removed here, since nothing tags them.
        `hidden` paths of the context are never sent to the engine.  The
        classic builder takes memory and a CPU set (not a CPU quota): a build
        limited to N CPUs runs on the engine's first N.  Past `timeout` the
        connection is dropped, which stops the build in the engine.
        """
        layers: list[str] = []
        fresh = False
        archive: IO[bytes] | None = None
        with self._lock:
            self._built.add(run_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        options: dict[str, Any] = {}
        if resources is not None:
            options["container_limits"] = self._build_limits(resources)
        if network is not None:
            options["network_mode"] = network
        if timeout is not None:  # no answer for that long: the read ends (the build is stuck)
            options["timeout"] = max(timeout, 1.0)
        events = None
        try:
            archive = _context_archive(context, dockerfile, hidden)
            events = self.api.build(
                fileobj=archive,
                custom_context=True,
                dockerfile=dockerfile,
                tag=tag,
                rm=True,
                forcerm=True,
                cache_from=[cache_from] if cache_from else None,
                nocache=cache_from is None,
                decode=True,
                labels=build_labels(labels),
                **options,
            )
            for event in events:
                if deadline is not None and time.monotonic() > deadline:
                    raise BuildTimedOut()
                text = event.get("stream", "")
                if text:
                    output(text)
                    made, fresh = built_layers(text, fresh)
                    layers += made
                if "error" in event:
                    raise BuildFailed(f"build failed: {str(event['error']).strip()}")
            if owner_tag is not None:  # its run's owner, for the sweep (`runner.recovery`)
                with contextlib.suppress(*_ENGINE_ERRORS):
                    self.api.tag(tag, BUILT_IMAGES, owner_tag, force=True)
        except BuildFailed:
            self._forget_layers(layers)
            raise
        except (*_ENGINE_ERRORS, urllib3.exceptions.HTTPError) as e:
            self._forget_layers(layers)
            if deadline is not None and time.monotonic() >= deadline:  # the read timed out
                raise BuildTimedOut() from None
            raise BuildFailed(f"build failed: {_explain(e)}") from None
        except OSError as e:  # the context cannot be read
            raise BuildFailed(f"build failed: cannot read the build context: {e}") from None
        finally:
            if events is not None:
                events.close()  # dropping the connection stops a build that is cut short
            if archive is not None:
                archive.close()

    def _build_limits(self, resources: Resources) -> dict[str, Any]:
        """`container_limits` of a build: memory and swap alike, and a CPU set."""
        limits: dict[str, Any] = {}
        if resources.memory is not None:
            limits.update(memory=resources.memory, memswap=resources.memory)
        if resources.cpus is not None:
            wanted = max(1, math.ceil(resources.cpus))
            if self._ncpu is None:
                with contextlib.suppress(*_ENGINE_ERRORS):
                    self._ncpu = int(self.api.info()["NCPU"])
            if self._ncpu is None or wanted < self._ncpu:
                limits["cpusetcpus"] = f"0-{wanted - 1}"
        return limits

    def has_image(self, image: str) -> bool:
        try:
            self.api.inspect_image(image)  # type: ignore[no-untyped-call]
        except _ENGINE_ERRORS:
            return False
        return True

    def keep(self, tag: str, kept: str, repo: str) -> None:
        """Keep the image `tag` as `kept`, its stage's layer cache: one more tag on it.

        A built image names no owner (`build_labels`), so a kept one is never
        any sweeper's to remove (`runner.recovery`), and the run's clean-up
        removes only its own tag.  The image kept before under that name
        loses the name, and goes unless something else still holds it.
        """
        with contextlib.suppress(*_ENGINE_ERRORS):
            built = self.api.inspect_image(tag)  # type: ignore[no-untyped-call]
            if ((built.get("Config") or {}).get("Labels") or {}).get(KEPT_LABEL) != repo:
                return  # not built for this repository: never kept for it
            try:
                before = self.api.inspect_image(kept)  # type: ignore[no-untyped-call]
            except docker.errors.ImageNotFound:
                before = None
            if before is not None and before["Id"] == built["Id"]:
                return
            repository, name = parse_repository_tag(kept)
            self.api.tag(built["Id"], repository, name or "latest", force=True)
            if before is not None:
                with contextlib.suppress(docker.errors.APIError):
                    self.api.remove_image(before["Id"])  # refused while it has other names

    def use_kept(self, kept: str) -> None:
        """Tag it again: the engine records the time (`LastTagTime`), which every worker and
        run sharing the engine sees, so no record of our own is needed."""
        repository, name = parse_repository_tag(kept)
        with contextlib.suppress(*_ENGINE_ERRORS):
            self.api.tag(kept, repository, name or "latest", force=True)

    def kept_images(self) -> list[KeptImage]:
        found: list[KeptImage] = []
        try:
            for info in self.api.images(filters={"label": KEPT_LABEL}):
                names = [t for t in info.get("RepoTags") or [] if t.startswith(KEPT_IMAGES)]
                if not names:
                    continue
                repo = (info.get("Labels") or {}).get(KEPT_LABEL, "")
                used = float(info.get("Created") or 0)
                with contextlib.suppress(docker.errors.ImageNotFound):
                    details = self.api.inspect_image(info["Id"])  # type: ignore[no-untyped-call]
                    used = max(used, _moment(details.get("Metadata", {}).get("LastTagTime")))
                found += [KeptImage(name, repo, used) for name in names]
        except _ENGINE_ERRORS as e:
            raise ContainerFailed(f"cannot list the kept images: {_explain(e)}") from None
        return found

    def drop_kept(self, kept: str) -> None:
        with contextlib.suppress(*_ENGINE_ERRORS):
            self.api.remove_image(kept)  # the name; the image too when nothing else names it

    def built_images(self, run_id: str) -> list[Labelled]:
        """The run's built images, by their tags (`dockercise-build:<runId>-...`)."""
        try:
            found = self.api.images(filters={"reference": f"{run_tag_prefix(run_id)}*"})
        except _ENGINE_ERRORS as e:
            why = _explain(e)
            raise ContainerFailed(f"cannot list the images of run {run_id}: {why}") from None
        prefix = run_tag_prefix(run_id)
        return [
            Labelled(Kind.IMAGE, tag, info.get("Labels") or {})
            for info in found
            for tag in info.get("RepoTags") or []
            if tag.startswith(prefix)
        ]

    def built_tags(self) -> list[str]:
        try:
            found = self.api.images(name=BUILT_IMAGES)
        except _ENGINE_ERRORS as e:
            raise ContainerFailed(f"cannot list the built images: {_explain(e)}") from None
        prefix = f"{BUILT_IMAGES}:"
        return [t for info in found for t in info.get("RepoTags") or [] if t.startswith(prefix)]

    def _remove_image(self, image: str) -> None:
        """Remove a run's image: a built image's tag (what else names it stays), or an
        image that older versions labelled with the run, by id, unless a kept image is it."""
        if image.startswith(f"{BUILT_IMAGES}:"):
            self.api.remove_image(image)  # the tag; the image too when nothing else names it
            return
        info = self.api.inspect_image(image)  # type: ignore[no-untyped-call]
        tags = [t for t in info.get("RepoTags") or [] if not t.startswith(KEPT_IMAGES)]
        for other in tags:
            self.api.remove_image(other)
        with contextlib.suppress(docker.errors.ImageNotFound):
            if not any(
                t.startswith(KEPT_IMAGES)
                for t in self.api.inspect_image(image).get("RepoTags") or []  # type: ignore[no-untyped-call]
            ):
                self.api.remove_image(image, force=True)

    def _forget_layers(self, layers: list[str]) -> None:
        if layers:  # removing the last layer removes its untagged parents too
            with contextlib.suppress(*_ENGINE_ERRORS):
                self.api.remove_image(layers[-1], force=True)

    def create_network(self, name: str, labels: Mapping[str, str], internal: bool = False) -> None:
        """A bridge network of the run's own (DNS between its containers), labelled with it.

        Its host interface is `bridge_name(name)` (`dcx-...`), which the
        operators' egress policy matches.
        """
        try:
            self.api.create_network(
                name,
                driver="bridge",
                options={"com.docker.network.bridge.name": bridge_name(name)},
                labels=dict(labels),
                check_duplicate=True,
                internal=internal,
            )
        except _ENGINE_ERRORS as e:
            raise ContainerFailed(f"cannot create the network {name}: {_explain(e)}") from None

    def remove_network(self, name: str) -> None:
        """Schedule its removal: its containers first (by force), then the network itself."""
        with self._lock:
            self._removals.append(self._remover.submit(self._remove_network_now, name))

    def _remove_network_now(self, name: str) -> None:
        try:
            on_it = self.api.containers(all=True, filters={"network": name})
        except _ENGINE_ERRORS:
            on_it = []
        for info in on_it:
            self._remove(info["Id"])
        for pause in (0.0, 0.1, 0.3, 1.0, 2.0):  # a removal begun elsewhere may still be ending
            time.sleep(pause)
            try:
                self.api.remove_network(name)
                return
            except docker.errors.NotFound:
                return
            except _ENGINE_ERRORS:
                continue  # left to remove_run, and to the sweep after that

    def create(self, spec: ContainerSpec) -> str:
        """Create and attach to a container, ready to start; ContainerFailed if Docker says no."""
        try:
            host_config = self.api.create_host_config(
                mounts=[
                    Mount(b.target, str(b.source), type="bind", read_only=b.read_only)
                    for b in spec.binds
                ],
                network_mode=spec.network,
                **_host_limits(spec.resources),
            )
            networking = None
            if spec.network is not None and spec.aliases:
                endpoint = self.api.create_endpoint_config(aliases=list(spec.aliases))
                # The SDK's hint says one EndpointConfig; the API takes them by network.
                networks = {spec.network: endpoint}
                networking = self.api.create_networking_config(networks)  # type: ignore[arg-type]
            created = self.api.create_container(
                spec.image,
                command=spec.command,
                environment=spec.env,
                working_dir=spec.workdir,
                host_config=host_config,
                networking_config=networking,
                labels={**blank_labels(), **spec.labels},  # the image's never stand for ours
            )
        except _ENGINE_ERRORS as e:
            raise ContainerFailed(f"cannot create the container: {_explain(e)}") from None
        cid: str = created["Id"]
        for network in spec.joins:
            try:
                self.api.connect_container_to_network(cid, network, aliases=list(spec.aliases))
            except _ENGINE_ERRORS as e:
                self._schedule_removal(cid)
                why = _explain(e)
                raise ContainerFailed(f"cannot join the network {network}: {why}") from None
        try:
            # Attached before it starts, so no output can be missed (as `docker run` does).
            stream = self.api.attach(cid, stdout=True, stderr=True, stream=True, demux=True)
        except _ENGINE_ERRORS as e:
            self._schedule_removal(cid)
            raise ContainerFailed(f"cannot attach to the container: {_explain(e)}") from None
        with self._lock:
            self._streams[cid] = stream
        return cid

    def start(self, container: str) -> None:
        try:
            self.api.start(container)
        except _ENGINE_ERRORS as e:
            raise ContainerFailed(f"the container failed: {_explain(e)}") from None

    def exec(self, container: str, command: Sequence[str], timeout: float) -> int | None:
        """Started detached, then asked after until it ends: a hanging command blocks nothing."""
        deadline = time.monotonic() + timeout
        try:
            created = self.api.exec_create(container, list(command), stdout=False, stderr=False)
            self.api.exec_start(created["Id"], detach=True)
            pause = 0.01
            while True:
                info = self.api.exec_inspect(created["Id"])
                if not info.get("Running") and info.get("ExitCode") is not None:
                    return int(info["ExitCode"])
                if time.monotonic() >= deadline:
                    return None
                time.sleep(min(pause, max(deadline - time.monotonic(), 0.0)))
                pause = min(pause * 2, 0.1)
        except _ENGINE_ERRORS as e:
            raise ContainerFailed(f"cannot run a command in the container: {_explain(e)}") from None

    def output(self, container: str) -> Iterator[tuple[Stream, bytes]]:
        with self._lock:
            stream = self._streams[container]
        try:
            for out, err in stream:
                if out:
                    yield Stream.STDOUT, out
                if err:
                    yield Stream.STDERR, err
        except _ENGINE_ERRORS as e:
            raise ContainerFailed(f"the container failed: {_explain(e)}") from None

    def wait(self, container: str) -> int:
        try:
            result = self.api.wait(container)
        except _ENGINE_ERRORS as e:
            raise ContainerFailed(f"the container failed: {_explain(e)}") from None
        return int(result.get("StatusCode", -1))

    def disk_usage(self, container: str) -> int | None:
        """The container's `SizeRw` (the engine walks its writable layer to tell)."""
        try:
            found = self.api.containers(all=True, size=True, filters={"id": container})
        except _ENGINE_ERRORS:
            return None
        size = found[0].get("SizeRw") if found else None
        return int(size) if isinstance(size, int) else None

    def kill(self, container: str) -> None:
        with contextlib.suppress(*_ENGINE_ERRORS):
            self.api.kill(container)  # fails only when it is gone already

    def remove(self, container: str) -> None:
        with self._lock:
            stream = self._streams.pop(container, None)
        if stream is not None:
            # CancellableStream.close() shuts the socket but leaves the response open,
            # which leaks the hijacked socket; closing the response releases it.
            stream._response.close()
        self._schedule_removal(container)

    def _schedule_removal(self, cid: str) -> None:
        # Removing takes a round trip the next stage need not wait for;
        # remove_run() waits for every removal before the run ends.
        with self._lock:
            self._removals.append(self._remover.submit(self._remove, cid))

    def _remove(self, cid: str) -> None:
        # Already gone, or the engine is gone: nothing more can be done from here.
        with contextlib.suppress(*_ENGINE_ERRORS):
            self.api.remove_container(cid, force=True, v=True)

    def _remove_network(self, network: str) -> None:
        with contextlib.suppress(*_ENGINE_ERRORS):
            self.api.remove_network(network)

    def close(self) -> None:
        self._remover.shutdown(wait=True)
        self.client.close()

    def labelled(self, label: str) -> list[Labelled]:
        """Containers, networks and images with the label, in the order they can be removed."""
        found: list[Labelled] = []
        try:
            for info in self.api.containers(all=True, filters={"label": label}):
                found.append(Labelled(Kind.CONTAINER, info["Id"], info.get("Labels") or {}))
            for info in self.api.networks(filters={"label": label}):
                found.append(Labelled(Kind.NETWORK, info["Id"], info.get("Labels") or {}))
            for info in self.api.images(filters={"label": label}):
                tags = info.get("RepoTags") or []
                if tags and all(t.startswith(KEPT_IMAGES) for t in tags):
                    continue  # kept for its layers (SPEC §13): no run's leftover
                found.append(Labelled(Kind.IMAGE, info["Id"], info.get("Labels") or {}))
        except _ENGINE_ERRORS as e:
            raise ContainerFailed(f"cannot list what runs left: {_explain(e)}") from None
        return found

    def discard(self, thing: Labelled) -> None:
        with contextlib.suppress(*_ENGINE_ERRORS):
            if thing.kind is Kind.CONTAINER:
                self.api.remove_container(thing.id, force=True, v=True)
            elif thing.kind is Kind.NETWORK:
                self.api.remove_network(thing.id)
            else:
                self._remove_image(thing.id)

    def remove_run(self, run_id: str) -> None:
        """Remove the run's containers, then its networks and built images (their tags), once
        pending removals are done."""
        with self._lock:
            pending, self._removals = self._removals, []
        wait(pending)
        try:
            label = {"label": f"dockercise.run={run_id}"}
            for info in self.api.containers(all=True, filters=label):
                self._remove(info["Id"])
            for network in self.api.networks(filters=label):
                self._remove_network(network["Id"])
            with self._lock:
                built = run_id in self._built
                self._built.discard(run_id)
            images = self.built_images(run_id) if built else []
        except (ContainerFailed, *_ENGINE_ERRORS):
            return
        for image in images:
            with contextlib.suppress(*_ENGINE_ERRORS):
                self._remove_image(image.id)
