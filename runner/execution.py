"""One stage, from start to outcome: attempts, image build, container, outputs, artefact.

Runs in a worker thread; the scheduler (`runner.engine`) only sees the
StageResult it returns.  Every exception is turned into a stage `error` here,
so one stage can never take the run down.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from runner import caching
from runner.backend import ContainerBackend, Stream
from runner.cacheio import Caches
from runner.caching import Scope
from runner.confine import build_paths, host_path
from runner.durations import format_duration
from runner.errors import BuildFailed, ContainerFailed, Refused, StoreUnavailable
from runner.guards import DISK_LIMIT, CappedLog, CappedWriter, log_cut_note, volume_size
from runner.limits import Limits, capped_timeout, format_size
from runner.masking import LineSplitter, Masker
from runner.model import CODE, Pipeline, Service, Stage
from runner.networks import NONE, stage_network
from runner.outcome import StageResult, Status, now
from runner.ownership import Owner, owner_tag
from runner.plan import (
    BUILT_IMAGES,
    HIDDEN_IN_CODE,
    Bind,
    ContainerSpec,
    RunDirs,
    build_context,
    container_spec,
    run_tag_prefix,
    service_spec,
)
from runner.services import log_name
from runner.sidecars import Readiness, ServiceFailed, Sidecars, Stopping
from runner.store import ResultStore
from runner.supervisor import Exit, Guard, OutputSink, Stop, Supervisor

__all__ = ["DEFAULT_TIMEOUT", "StageExecutor", "StageReporter", "backoff"]

DEFAULT_TIMEOUT = 3600.0
_FULL = (errno.ENOSPC, errno.EDQUOT)
"""Writing the run's own files failed for want of room: the run stops (exit 3), as for the store."""
MAX_OUTPUT = 1024 * 1024
"""Bytes of a stage's stdout read back for `env` items, noLog masking and watches."""


def backoff(attempt: int) -> float:
    """Seconds to wait before attempt `attempt + 1`: 1, 2, 4... at most 10."""
    return float(min(2 ** (attempt - 1), 10))


class StageReporter(Protocol):
    def stage_started(self, name: str) -> None: ...
    def stage_output(self, name: str, line: str) -> None: ...
    def stage_note(self, name: str, text: str) -> None: ...


@dataclass
class StageExecutor:
    """What every stage of one run shares; `execute` is called from worker threads."""

    pipeline: Pipeline
    run_id: str
    dirs: RunDirs
    backend: ContainerBackend
    supervisor: Supervisor
    store: ResultStore
    reporter: StageReporter
    masker: Masker
    external: dict[str, str]
    extra_env: dict[str, str]
    literals: Mapping[tuple[str, str], str]
    denied: Mapping[str, str]
    network: str | None
    """The network mode of every container (the run's own network in a bot build)."""
    aliases: Mapping[str, str]
    """Stage -> the name it answers to on the run's own network."""
    host_paths: tuple[str, ...] | None
    """Where host paths may lie, checked at creation (`runner.confine`); None: anywhere."""
    no_links: bool
    """No symbolic link on the way to a build context, Dockerfile or `.dockerignore`."""
    checks: set[str]
    cancel: Stop
    retry_pause: Callable[[int], float] = backoff
    """Seconds to wait after a failed attempt (tests make it 0)."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """The run's and its owner's, on every container and image it makes (`runner.recovery`)."""
    limits: Limits = field(default_factory=Limits)
    build_network: str | None = None
    """The network mode of image builds (None: the engine's default)."""
    run_deadline: float | None = None
    """When (time.monotonic) the run's build time is up; the engine stops it then."""
    outputs: dict[str, str] = field(default_factory=dict)
    caches: Caches | None = None
    """The run's `cache` paths (SPEC §13); None: stages run without them."""
    scope: Scope | None = None
    """Whose kept layers `build` stages start from, and whether theirs are kept; None: neither."""
    layer_salt: str = ""
    _services: Stopping = field(default_factory=Stopping, init=False)
    """Stages' services being stopped off their stage's clock, and their logs."""

    def execute(self, stage: Stage) -> StageResult:
        """Run the stage, again after a failure as `retry` allows.

        Raises only StoreUnavailable (the results cannot be written: the run
        ends, exit 3); anything else is the stage's outcome.
        """
        result = StageResult(stage.name, Status.RUNNING, started=now(), image=stage.img)
        self.store.write_json(self.run_id, f"{stage.name}.json", result.to_json())
        self.reporter.stage_started(stage.name)
        log = (
            None
            if stage.no_log
            else CappedLog(self.store.open_log(self.run_id, stage.name), self.limits.max_log)
        )
        try:
            if stage.name in self.denied:
                result.status, result.reason = Status.FAILURE, self.denied[stage.name]
                self._note(stage, log, self.denied[stage.name])
                return result
            wanted = stage.timeout or self.pipeline.meta.timeout or DEFAULT_TIMEOUT
            timeout, cut = capped_timeout(wanted, self.limits)
            if cut is not None:
                self._note(stage, log, cut)
            for attempt in range(1, stage.retry + 2):
                result.attempts = attempt
                if stage.retry:
                    self._note(stage, log, f"--- attempt {attempt} ---", bare=True)
                self._attempt(stage, result, log, timeout)
                if not result.status.bad or attempt > stage.retry or self.cancel.is_set():
                    break
                pause = self.retry_pause(attempt)
                self._note(stage, log, f"{result.reason}; trying again in {format_duration(pause)}")
                self.cancel.wait(pause)
                self._services.wait(stage.name)  # gone before the next attempt's start
        except StoreUnavailable:
            if log is not None:
                with contextlib.suppress(StoreUnavailable):
                    log.close()  # the write that failed would fail again
                log = None
            raise
        finally:
            self._services.close(stage.name)
            if log is not None:
                log.close()
                result.logs = f"{stage.name}.log"
            result.finished = now()
        if self.cancel.is_set() and result.status is not Status.SUCCESS:
            result.status, result.reason = Status.CANCELLED, self.cancel.reason
        return result

    def _attempt(
        self, stage: Stage, result: StageResult, log: CappedLog | None, timeout: float
    ) -> None:
        result.exit_code = result.reason = None
        result.status = Status.RUNNING  # what the stage's JSON says if written meanwhile
        failed: ServiceFailed | None = None
        try:
            self._run(stage, result, log, timeout)
        except ServiceFailed as e:
            result.status, result.reason = Status.ERROR, self.masker(str(e))
            failed = e
        except (BuildFailed, Refused) as e:
            result.status, result.reason = Status.FAILURE, self.masker(str(e))
        except ContainerFailed as e:
            result.status, result.reason = Status.ERROR, self.masker(str(e))
        except StoreUnavailable:
            raise  # not this stage's failure: the run cannot go on
        except OSError as e:
            if e.errno in _FULL:  # the run's own files (stdout, volumes, zips): a full disk
                where = self.dirs.private.parent
                why = f"cannot write the run's files to {where}: {e.strerror}"
                raise StoreUnavailable(why) from None
            result.status, result.reason = Status.ERROR, self.masker(f"{type(e).__name__}: {e}")
        except Exception as e:  # one place turns the unexpected into an outcome
            result.status, result.reason = Status.ERROR, self.masker(f"{type(e).__name__}: {e}")
        if result.status is Status.ERROR:
            self._note(stage, log, str(result.reason))
        if failed is not None:
            # The console shows no service output (SPEC §14), but why one was not ready: the
            # last lines of its log, each under its name, masked (the pump masked them too).
            for line in failed.tail:
                self._note(stage, log, f"{failed.service} | {line}")

    def _note(self, stage: Stage, log: CappedLog | None, text: str, bare: bool = False) -> None:
        text = self.masker(text)
        if log is not None:
            log.note(text if bare else f"dockercise: {text}")
            log.flush()
        if not stage.no_log:
            self.reporter.stage_note(stage.name, text)

    def spec(self, stage: Stage) -> ContainerSpec:
        spec = container_spec(
            self.pipeline,
            stage,
            self.dirs,
            self.run_id,
            self.external,
            self.outputs,
            self.extra_env,
            self.literals,
            self.limits.resources,
        )
        spec.labels = {**self.labels, **spec.labels}
        alias = self.aliases.get(stage.name)
        return replace(spec, network=self.network, aliases=(alias,) if alias else ())

    def _confined(self, spec: ContainerSpec) -> ContainerSpec:
        """The spec with its host paths checked now, right before the container is created.

        An earlier stage may have planted a link in an allowed folder since the
        run started: it is refused here (Refused: the stage fails).
        """
        if self.host_paths is None:
            return spec
        binds = [
            replace(b, source=host_path(b.source, self.host_paths)) if b.host else b
            for b in spec.binds
        ]
        return replace(spec, binds=binds)

    def _fresh_volume(self, stage: Stage) -> Path:
        volume = self.dirs.volume(stage.name)
        shutil.rmtree(volume, ignore_errors=True)
        volume.mkdir()
        volume.chmod(0o777)  # the image's own user may not be root
        return volume

    def _run(
        self, stage: Stage, result: StageResult, log: CappedLog | None, timeout: float
    ) -> None:
        """One attempt; `timeout` covers the image build and the container together."""
        deadline = time.monotonic() + timeout
        volume = self._fresh_volume(stage)
        if stage.build is not None:
            self._build(stage, log, timeout)
        if stage.run is None:
            if stage.build is None:
                self._note(stage, log, "nothing to do")
            result.status = Status.SUCCESS
            (self.dirs.out / stage.name).write_bytes(b"")
            self._keep_layers(stage)
            return
        spec = self.spec(stage)
        result.image = spec.image
        refused = self._foreign_kept(spec.image)
        if refused is not None:
            result.status, result.reason = Status.FAILURE, refused
            self._note(stage, log, refused)
            return
        if stage.cache and self.caches is not None:
            slots = self.caches.restore(stage, lambda text: self._note(stage, log, text))
            spec.binds += [Bind(slot.folder, slot.cache.path, False) for slot in slots]
            result.cache = self.caches.results(stage)
        if spec.copy_from is not None:
            _copy_tree(spec.copy_from, volume, HIDDEN_IN_CODE if stage.on == CODE else None)
        if not spec.built:
            self.backend.ensure_image(spec.image, lambda text: self._note(stage, log, text))
        if self.cancel.is_set():
            result.status, result.reason = Status.CANCELLED, self.cancel.reason
            return
        spec = self._confined(spec)  # after the pull, which may take long: nothing in between
        sidecars = self._sidecars(stage, log, result) if stage.services else None
        try:
            if sidecars is not None:
                readiness = sidecars.start(max(deadline - time.monotonic(), 0.0))
                if readiness is not Readiness.READY:
                    result.status, result.reason = (
                        (Status.CANCELLED, self.cancel.reason)
                        if readiness is Readiness.CANCELLED
                        else (Status.FAILURE, "timeout")
                    )
                    return
                spec = _beside(spec, sidecars.network, self.network)
            exit = self._container(stage, log, spec, volume, deadline, sidecars)
        finally:
            if sidecars is not None:
                sidecars.halt()
                result.services = sidecars.results()
                self._services.later(stage.name, sidecars)
        os.replace(self.dirs.stdout(stage.name), self.dirs.out / stage.name)
        with (self.dirs.out / stage.name).open("rb") as produced:
            # What `env` items and masking need; a stage printing gigabytes must not fill memory.
            output = produced.read(MAX_OUTPUT).decode("utf-8", "replace").strip()
        if stage.no_log:
            self.masker.add(output)
        self.outputs[stage.name] = output
        result.exit_code = exit.code
        if stage.name in self.checks:
            result.check = exit.code == 0
        over = exit.limit == DISK_LIMIT or (
            self.limits.stage_disk is not None
            and volume_size(volume, self.limits.stage_disk) > self.limits.stage_disk
        )
        if exit.killed:
            result.status, result.reason = Status.CANCELLED, self.cancel.reason
        elif exit.limit is not None or over:
            result.status, result.reason = Status.FAILURE, exit.limit or DISK_LIMIT
            self._note(stage, log, self._disk_note())
        elif exit.timed_out:
            result.status, result.reason = Status.FAILURE, "timeout"
        elif exit.code == 0:
            result.status = Status.SUCCESS
        elif stage.name in self.checks:  # a check's non-zero exit is an answer, not a failure
            result.status, result.reason = Status.SUCCESS, f"check false (exit {exit.code})"
        elif stage.never_fail:
            result.status, result.reason = Status.SUCCESS, f"exit {exit.code} ignored (neverFail)"
        else:
            result.status, result.reason = Status.FAILURE, f"exit {exit.code}"
        if result.status is Status.SUCCESS and not exit.killed:
            if stage.cache and self.caches is not None:
                self.caches.save(stage, lambda text: self._note(stage, log, text))
                result.cache = self.caches.results(stage)
            self._keep_layers(stage)
        if not stage.no_log and not over and any(volume.iterdir()):
            archive = self.dirs.private / f"{stage.name}.zip"
            _zip(volume, archive)
            self.store.put_file(self.run_id, f"{stage.name}.zip", archive)
            result.artefact = f"{stage.name}.zip"

    def _container(
        self,
        stage: Stage,
        log: CappedLog | None,
        spec: ContainerSpec,
        volume: Path,
        deadline: float,
        sidecars: Sidecars | None = None,
    ) -> Exit:
        stdout_path = self.dirs.stdout(stage.name)
        with stdout_path.open("wb") as stdout:
            sink, flush = self._sink(stage, log, CappedWriter(stdout, self.limits.max_log))
            left = max(deadline - time.monotonic(), 0.0)
            guard = self._disk_guard(volume, sidecars)
            exit = self.supervisor.run(spec, sink, left, guard)
            flush()
        return exit

    def _sidecars(self, stage: Stage, log: CappedLog | None, result: StageResult) -> Sidecars:
        """The stage's services, their images there (pulled when missing) or refused (Refused)."""
        network = stage_network(self.run_id, stage.name, result.attempts)
        specs = []
        for service in stage.services:
            made = service_spec(
                self.pipeline,
                stage,
                service,
                self.run_id,
                self.external,
                self.outputs,
                self.extra_env,
                self.literals,
                self.limits.resources,
            )
            refused = self._foreign_kept(made.image)
            if refused is not None:
                raise Refused(f"service {service.name}: {refused}")
            if not made.built:
                self.backend.ensure_image(made.image, lambda text: self._note(stage, log, text))
            made.labels = {**self.labels, **made.labels}
            specs.append((service, replace(made, network=network)))
        sidecars = Sidecars(
            backend=self.backend,
            stage=stage.name,
            network=network,
            internal=self.network == NONE,
            labels={**self.labels, "dockercise.stage": stage.name},
            specs=specs,
            masker=self.masker,
            logs=lambda service: self._service_log(stage, service),
            cancel=self.cancel,
            note=lambda text: self._note(stage, log, text),
        )

        def changed() -> None:
            result.services = sidecars.results()
            self.store.write_json(self.run_id, f"{stage.name}.json", result.to_json())

        sidecars.changed = changed
        return sidecars

    def _service_log(self, stage: Stage, service: Service) -> CappedLog | None:
        """`<stage>.<service>.log`, one for every attempt (as the stage's); none with noLog."""
        if stage.no_log:
            return None
        name = log_name(stage.name, service.name)
        return self._services.log(
            stage.name,
            service.name,
            lambda: CappedLog(self.store.open_log(self.run_id, name), self.limits.max_log),
        )

    def drain(self) -> None:
        """Wait until every stage's services are stopped and removed, their logs closed."""
        self._services.drain()

    def _disk_guard(self, volume: Path, sidecars: Sidecars | None) -> Guard | None:
        limit = self.limits.stage_disk
        if limit is None:
            return None
        services = sidecars.containers() if sidecars is not None else []

        def guard(container: str) -> str | None:
            # What it writes outside its volume, into its own layer, counts too: it is disk;
            # and so does what its services write into theirs (SPEC §14: the stage's limits).
            layer = sum(self.backend.disk_usage(c) or 0 for c in [container, *services])
            return DISK_LIMIT if layer + volume_size(volume, limit - layer) > limit else None

        return guard

    def _disk_note(self) -> str:
        assert self.limits.stage_disk is not None
        return (
            f"the stage wrote more than {format_size(self.limits.stage_disk)}"
            " (DOCKERCISE_STAGE_DISK): stopped, its volume not kept"
        )

    def _build(self, stage: Stage, log: CappedLog | None, timeout: float) -> None:
        """Build the stage's image from its Dockerfile; the builder's output is the log."""
        assert stage.build is not None
        if self.run_deadline is not None:
            # An image build is no container the engine can kill at the build time limit:
            # it ends itself just after it (the stage is cancelled by then, not timed out).
            timeout = min(timeout, max(self.run_deadline - time.monotonic(), 0.0) + 1.0)
        context, dockerfile = build_context(self.dirs.project, stage.build)
        build_paths(self.dirs.project, context, dockerfile, strict=self.no_links)
        if not (context / dockerfile).is_file():
            raise BuildFailed(f"no Dockerfile at '{stage.build}' in the checkout")
        splitter = LineSplitter(self.masker)
        emit = self._emitter(stage, log)
        tag = self.spec(stage).image
        refused = _foreign_from(context / dockerfile, self._own_kept(), self.run_id)
        if refused is not None:
            raise BuildFailed(refused)
        self._note(stage, log, f"building {tag} from {stage.build}")
        # Only what every build of the stage shares: a label that changes from run to run
        # would be a step the builder's cache never has (its tag names the run instead).
        labels: dict[str, str] = {}
        cache_from = None
        if self.scope is not None:
            labels[caching.KEPT_LABEL] = self.scope.repo
            kept = caching.kept_image(self.scope.repo, stage.name, self.layer_salt)
            if self.scope.reuse_layers and self.backend.has_image(kept):
                cache_from = kept
                self.backend.use_kept(kept)  # not stale while builds start from it
                self._note(stage, log, "reusing the layers of this stage's last kept build")
        self.backend.build(
            context,
            dockerfile,
            tag,
            self.run_id,
            lambda text: emit(splitter.feed(text.encode())),
            hidden=[HIDDEN_IN_CODE] if context.resolve() == self.dirs.project.resolve() else [],
            labels=labels,
            resources=self.limits.resources if self.limits.resources else None,
            network=self.build_network,
            timeout=timeout,
            cache_from=cache_from,
            owner_tag=self._owner_tag(),
        )
        emit(splitter.close())

    def _owner_tag(self) -> str | None:
        """The tag naming this run's owner on its built images (their labels cannot)."""
        owner = Owner.from_labels(self.labels)
        return None if owner is None else owner_tag(self.run_id, owner)

    def _own_kept(self) -> str | None:
        if self.scope is None:
            return None
        return caching.own_kept_prefix(self.scope.repo, self.layer_salt)

    def _foreign_kept(self, image: str) -> str | None:
        """Why `img` may not run this image: another repository's kept layer cache (SPEC §13),
        or another run's built image, which may be one (a build of an unchanged Dockerfile
        *is* its kept image).  Anywhere in the name: `docker.io/...` names the same image."""
        own = self._own_kept()
        if caching.KEPT_IMAGES in image and not (own and own in image):
            return f"image {image!r} is a layer cache kept for another repository"
        if f"{BUILT_IMAGES}:" in image and run_tag_prefix(self.run_id) not in image:
            return f"image {image!r} is another run's build"
        return None

    def _keep_layers(self, stage: Stage) -> None:
        """After a `build` stage passed where its layers may be kept: keep its image (SPEC §13)."""
        if stage.build is None or self.scope is None or not self.scope.keep_layers:
            return
        tag = self.spec(stage).image
        kept = caching.kept_image(self.scope.repo, stage.name, self.layer_salt)
        self.backend.keep(tag, kept, self.scope.repo)

    def _emitter(self, stage: Stage, log: CappedLog | None) -> Callable[[Iterable[str]], None]:
        """Lines, masked, to the log and the console, both cut where the log is (`max_log`)."""

        def emit(lines: Iterable[str]) -> None:
            if stage.no_log or log is None:
                return
            for line in lines:
                if log.cut:
                    break
                masked = self.masker(line)
                if log.output(masked.encode()):
                    self.reporter.stage_output(stage.name, masked)
                if log.cut and log.cap is not None:
                    self.reporter.stage_note(stage.name, log_cut_note(log.cap))
            log.flush()

        return emit

    def _sink(
        self, stage: Stage, log: CappedLog | None, stdout: CappedWriter
    ) -> tuple[OutputSink, Callable[[], None]]:
        """Where a container's output goes: stdout raw to /out, lines masked to log and console."""
        splitters = {stream: LineSplitter(self.masker) for stream in Stream}
        emit = self._emitter(stage, log)

        def sink(stream: Stream, chunk: bytes) -> None:
            if stream is Stream.STDOUT:
                stdout.write(chunk)
            emit(splitters[stream].feed(chunk))

        def flush() -> None:
            for splitter in splitters.values():
                emit(splitter.close())

        return sink, flush


def _beside(spec: ContainerSpec, own: str, run_network: str | None) -> ContainerSpec:
    """The stage's container on its own network, its services', besides the run's.

    With the engine's default network (None) or none at all, the stage's own
    network is its only one; on a named network (a bot build's own), it stays
    there too, so it still reaches the build's other stages by name.
    """
    if run_network is None or run_network == NONE:
        return replace(spec, network=own)
    return replace(spec, joins=(*spec.joins, own))


def _foreign_from(dockerfile: Path, own: str | None, run_id: str) -> str | None:
    """A `FROM` naming another repository's kept image (or another run's built image), as far
    as the Dockerfile spells it.

    Best effort (an `ARG` can spell a name piecewise); kept images' names are
    salted per worker besides, so another repository cannot guess them.
    """
    try:
        text = dockerfile.read_text(errors="replace")
    except OSError:
        return None
    for word in text.split():
        word = word.strip("\"'")
        if caching.KEPT_IMAGES in word and not (own and own in word):
            return "the Dockerfile names a layer cache kept for another repository"
        if f"{BUILT_IMAGES}:" in word and run_tag_prefix(run_id) not in word:
            return "the Dockerfile names another run's built image"
    return None


def _copy_tree(source: Path, target: Path, skip_top: str | None) -> None:
    """Copy every file's bytes (never link): a bot checkout's files are hard links into the
    repository's mirror, and the stage may write its copy (SPEC §13)."""

    def ignore(folder: str, names: list[str]) -> list[str]:
        return [skip_top] if skip_top in names and Path(folder) == source else []

    shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True, ignore=ignore)


def _zip(folder: Path, archive: Path) -> None:
    """Zip a stage's volume; symlinks are stored as links, never followed out of the volume."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for top, dirnames, filenames in os.walk(folder):
            dirnames.sort()
            for name in sorted(filenames) + [d for d in dirnames if Path(top, d).is_symlink()]:
                path = Path(top, name)
                arcname = str(path.relative_to(folder))
                if path.is_symlink():
                    info = zipfile.ZipInfo(arcname)
                    info.external_attr = 0o120777 << 16
                    z.writestr(info, os.readlink(path))
                elif path.is_file():
                    z.write(path, arcname)
            if top != str(folder) and not dirnames and not filenames:
                z.write(top, str(Path(top).relative_to(folder)))
