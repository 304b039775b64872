"""Runs a validated pipeline: scheduling in DAG order, stage outcomes, results, clean-up.

The main thread only schedules; each stage runs in a worker thread of a pool
sized by the concurrency, and the main thread wakes every `TICK` to see
whether Ctrl-C was asked for (`Interrupt`: the CLI's signal handler sets it
rather than raising into the scheduler).  Whatever happens, the run's
containers and private directory are removed, and every result written so
far stays in the store.  Everything the run makes carries its owner
(`runner.recovery`), so that what a killed process leaves is found later.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from runner import dag
from runner.backend import ContainerBackend
from runner.cacheio import Caches
from runner.cachestore import CacheStore
from runner.caching import Scope
from runner.errors import ContainerFailed, NetworkFailed, PipelineInvalid, Problem, StoreUnavailable
from runner.execution import DEFAULT_TIMEOUT, StageExecutor, backoff
from runner.limits import Limits, capped_timeout, too_many_stages
from runner.masking import Masker
from runner.model import Pipeline, Stage, When
from runner.networks import NONE, Networking, dns_aliases, network_name
from runner.outcome import RunResult, StageResult, Status, new_run_id, now
from runner.ownership import Owner, this_process
from runner.plan import RunDirs, paths_match, resolve_external
from runner.recovery import OWNER_FILE, RunRecord, write_record
from runner.remote import RemoteWaits, RemoteWatcher
from runner.store import ResultStore
from runner.supervisor import INTERRUPTED, Interrupt, Stop, Supervisor

__all__ = ["TICK", "Engine", "Reporter", "RunOptions", "RunPlan", "decide", "prepare"]

TICK = 0.1
"""Seconds between the scheduler's looks at an Interrupt (Ctrl-C) when nothing else wakes it."""


class Reporter(Protocol):
    """What the console (or the bot) is told as the run goes on; output is masked already."""

    def run_started(self, run: RunResult, order: list[str]) -> None: ...
    def stage_started(self, name: str) -> None: ...
    def stage_output(self, name: str, line: str) -> None: ...
    def stage_note(self, name: str, text: str) -> None: ...
    def stage_finished(self, result: StageResult) -> None: ...
    def run_finished(self, run: RunResult) -> None: ...


@dataclass
class RunOptions:
    targets: list[str] = field(default_factory=list)
    concurrency: int | None = None
    variables: list[Mapping[str, str]] = field(default_factory=list)
    """Sources of external variables, first match wins (--env, --env-file, environment)."""
    extra_env: dict[str, str] = field(default_factory=dict)
    trigger: dict[str, Any] | None = None
    masker: Masker = field(default_factory=Masker)
    literals: Mapping[tuple[str, str], str] = field(default_factory=dict)
    """Decrypted `{NAME: "secure:..."}` env items, by (stage, NAME)."""
    changed: list[str] | None = None
    """Files changed by the push or since a revision; None runs every `paths` stage."""
    denied: Mapping[str, str] = field(default_factory=dict)
    """Stage -> the reason it fails, in its turn, without its container ever starting.

    The bot decides before the run which stages its policy forbids (a fork's
    build naming secrets, a host path not allowed: `bot.builds.restrictions`).
    Failing each of them in its place in the DAG, rather than refusing the
    build, keeps the stages that do not need them running, puts the reason on
    the stage's own result, and lets `when: failure` stages hear of it.
    """
    remote: RemoteWatcher | None = None
    """Answers `remote` stages (the bot's received events); None fails them."""
    limits: Limits = field(default_factory=Limits)
    """The operator's limits (SPEC §10): every bot build's, a local run's when set."""
    build_network: str | None = None
    """The network mode of image builds; None: the engine's default (local runs)."""
    cache_store: CacheStore | None = None
    """Where `cache` paths are kept between runs (SPEC §13); None: not kept."""
    cache_scope: Scope | None = None
    """Whose caches and kept layers the run reads, and what it writes; None: nothing."""
    layer_salt: str = ""
    """The worker's own salt in the names of kept images (`runner.caching.kept_image`)."""
    networking: Networking = Networking.AS_WRITTEN
    """A bot build's stages join a network of the run's own (`OWN`) or none (SPEC §10)."""
    host_paths: tuple[str, ...] | None = None
    """The folders a host path must lie under, with no symbolic link on its way, checked as
    each container is created (a bot build's); None mounts host paths as written (local
    runs, trusted repositories)."""
    no_links: bool = False
    """No symbolic link on the way to a build context, its Dockerfile or `.dockerignore`
    (bot builds); otherwise they must only resolve inside the project."""


_FAILED = {Status.FAILURE: "failed", Status.ERROR: "errored", Status.CANCELLED: "was cancelled"}


def blame(deps: Mapping[str, StageResult]) -> str | None:
    """The failed stage behind these dependencies: one of them, or one further up."""
    failed = sorted(n for n, r in deps.items() if r.status in _FAILED)
    upstream = sorted(r.failed_upstream for r in deps.values() if r.failed_upstream)
    named = failed or upstream
    return named[0] if named else None


def decide(stage: Stage, deps: Mapping[str, StageResult]) -> str | None:
    """Why a stage whose dependencies have all finished must not run, or None to run it.

    A failure further up counts for `when: failure` too: a notifier after a
    skipped stage still hears of the failure that skipped it.
    """
    culprit = blame(deps)
    if stage.when is When.FAILURE and culprit is None:
        return "no dependency failed (when: failure)"
    if stage.when is When.SUCCESS:
        failed = sorted(n for n, r in deps.items() if r.status in _FAILED)
        if failed:
            return f"dependency {failed[0]} {_FAILED[deps[failed[0]].status]}"
        skipped = sorted(n for n, r in deps.items() if r.status is Status.SKIPPED)
        if skipped:
            why = f" ({culprit} failed)" if culprit else ""
            return f"dependency {skipped[0]} was skipped{why}"
    for check, wanted in ((stage.if_, True), (stage.unless, False)):
        if check is not None and deps[check].check is not wanted:
            return f"check {check} was {'false' if wanted else 'true'}"
    return None


BUILD_TIME_LIMIT = "build time limit"
"""The reason of the stages a run cancels when it runs past DOCKERCISE_MAX_BUILD_TIME."""


def _concurrency(pipeline: Pipeline, options: RunOptions) -> int:
    wanted = options.concurrency or pipeline.meta.concurrency or max(2, os.cpu_count() or 2)
    cap = options.limits.build_concurrency
    return wanted if cap is None else min(wanted, cap)


class Engine:
    """Runs plans on a container backend, storing results as they come.

    The caller makes the backend (the Docker one, `runner.containers`, for the
    CLI and the bot) and closes it. `retry_pause` (seconds before attempt n + 1) is
    `backoff` except in tests, which need not wait.  `interrupt` is what the
    caller's signal handlers set (the CLI's; the bot has none); `owner` is
    this process, written on everything the run makes.
    """

    def __init__(
        self,
        backend: ContainerBackend,
        store: ResultStore,
        reporter: Reporter,
        retry_pause: Callable[[int], float] = backoff,
        interrupt: Interrupt | None = None,
        owner: Owner | None = None,
    ) -> None:
        self.backend = backend
        self.store = store
        self.reporter = reporter
        self.retry_pause = retry_pause
        self.interrupt = interrupt or Interrupt()
        self.owner = owner or this_process()

    def run(self, plan: RunPlan) -> RunResult:
        """Run a prepared plan: results stored, containers and private files removed, always."""
        pipeline, options = plan.pipeline, plan.options
        run = RunResult(
            id=new_run_id(),
            pipeline=pipeline.meta.name,
            status=Status.RUNNING,
            started=now(),
            edges=dag.edges(plan.deps),
        )
        if options.trigger is not None:
            run.trigger = options.trigger
        run.stages = {n: StageResult(n, Status.WAITING) for n in plan.order}
        record = RunRecord(run.id, self.store.url, self.owner)
        private = Path(tempfile.mkdtemp(prefix=f"dockercise-{run.id}-"))
        dirs = RunDirs(private, pipeline.root)
        unfinished = False
        scheduler = None
        try:
            write_record(private, record)  # first: a process killed from now on is recovered
            network = self._network(options.networking, pipeline, run.id, record.labels())
            for sub in (dirs.out, dirs.empty, dirs.private / "stdout", dirs.private / "vol"):
                sub.mkdir()
            scheduler = _Run(self, plan, run, dirs, record.labels(), network)
            scheduler.go()
        except StoreUnavailable:
            unfinished = scheduler is not None and scheduler.saved  # run.json says `running`
            raise
        finally:
            if scheduler is not None:
                scheduler.executor.drain()  # services stopped, their logs closed
            self.backend.remove_run(run.id)
            _remove_private(private, keep_record=unfinished)
        return run

    def _network(
        self, networking: Networking, pipeline: Pipeline, run_id: str, labels: Mapping[str, str]
    ) -> str | None:
        """The network mode of the run's containers; the run's own network is made here,
        labelled as everything the run makes is (`labels`: the run, its store, its owner).

        Made before any stage starts and removed with the run (`remove_run`),
        whatever the outcome.  NetworkFailed when the engine will not make it.
        """
        if networking is Networking.AS_WRITTEN:
            return pipeline.meta.network
        if networking is Networking.NONE:
            return NONE
        name = network_name(run_id)
        try:
            self.backend.create_network(name, labels)
        except ContainerFailed as e:
            raise NetworkFailed(str(e)) from None
        return name


def _caches(plan: RunPlan, dirs: RunDirs) -> Caches | None:
    store, scope = plan.options.cache_store, plan.options.cache_scope
    if store is None or scope is None:
        return None
    return Caches(store, scope, dirs.private, dirs.project)


def _remove_private(private: Path, keep_record: bool) -> None:
    """Remove the run's private directory; with `keep_record`, all of it but its owner record.

    A run whose store failed leaves run.json `running`; once this process
    has ended, the next sweep (`runner.recovery`) finds the record and
    finishes the run, when the store can be written again.
    """
    if not keep_record:
        shutil.rmtree(private, ignore_errors=True)
        return
    for entry in private.iterdir() if private.is_dir() else ():
        if entry.name != OWNER_FILE:
            shutil.rmtree(entry, ignore_errors=True)


@dataclass
class RunPlan:
    """What a run will do, settled before anything starts."""

    pipeline: Pipeline
    options: RunOptions
    deps: dict[str, set[str]]
    order: list[str]
    external: dict[str, str]


def prepare(pipeline: Pipeline, options: RunOptions) -> RunPlan:
    """Select the targets' stages and resolve external variables (pure).

    Raises UsageError (unknown target), PipelineInvalid (more stages than
    `max_stages`) or MissingVariables: exit 2, nothing started.
    """
    # A matrix stage named as a target stands for all of its expansions.
    targets = [t for target in options.targets for t in pipeline.matrices.get(target, (target,))]
    selected = dag.select(pipeline.deps, targets)
    too_many = too_many_stages(len(selected), options.limits)
    if too_many is not None:
        where = pipeline.files[0] if pipeline.files else ""
        raise PipelineInvalid([Problem(where, 0, None, too_many)])
    external = resolve_external(pipeline, selected, options.variables)
    deps = {n: pipeline.deps[n] & selected for n in selected}
    return RunPlan(pipeline, options, deps, dag.order(deps), external)


class _Run:
    """One run's mutable state; only the main thread schedules, workers execute stages."""

    def __init__(
        self,
        engine: Engine,
        plan: RunPlan,
        run: RunResult,
        dirs: RunDirs,
        labels: Mapping[str, str],
        network: str | None,
    ) -> None:
        self.engine = engine
        self.store = engine.store
        self.reporter = engine.reporter
        self.pipeline = plan.pipeline
        self.options = plan.options
        self.run = run
        self.deps = plan.deps
        self.order = plan.order
        self.cancel = Stop()
        self.interrupted = engine.interrupt
        self.saved = False
        """run.json is in the store."""
        self.remote = RemoteWaits(run.id, plan.options.remote)
        stages = [self.pipeline.stages[n] for n in plan.deps]
        self.supervisor = Supervisor(engine.backend)
        budget = plan.options.limits.max_build_time
        self.deadline = None if budget is None else time.monotonic() + budget
        self.executor = StageExecutor(
            pipeline=plan.pipeline,
            run_id=run.id,
            dirs=dirs,
            backend=engine.backend,
            supervisor=self.supervisor,
            store=engine.store,
            reporter=engine.reporter,
            masker=plan.options.masker,
            external=plan.external,
            extra_env=plan.options.extra_env,
            literals=plan.options.literals,
            denied=plan.options.denied,
            network=network,
            aliases=dns_aliases(plan.deps) if plan.options.networking is Networking.OWN else {},
            host_paths=plan.options.host_paths,
            no_links=plan.options.no_links,
            checks={c for s in stages for c in (s.if_, s.unless) if c is not None},
            cancel=self.cancel,
            retry_pause=engine.retry_pause,
            labels=labels,
            limits=plan.options.limits,
            # A build's image builds reach what its stages reach, never more (SPEC §10).
            build_network=network
            if plan.options.networking is Networking.OWN
            else plan.options.build_network,
            run_deadline=self.deadline,
            caches=_caches(plan, dirs),
            scope=plan.options.cache_scope,
            layer_salt=plan.options.layer_salt,
        )

    def save_run(self) -> None:
        self.store.write_json(self.run.id, "run.json", self.run.to_json())
        self.saved = True

    def finish(self, result: StageResult) -> None:
        self.run.stages[result.name] = result
        self.store.write_json(self.run.id, f"{result.name}.json", result.to_json())
        self.reporter.stage_finished(result)

    def go(self) -> None:
        self.save_run()
        self.reporter.run_started(self.run, self.order)
        pending = list(self.order)
        running: dict[Future[StageResult], str] = {}
        limit = _concurrency(self.pipeline, self.options)
        with ThreadPoolExecutor(max_workers=limit, thread_name_prefix="stage") as pool:
            try:
                while pending or running or self.remote:
                    if self.interrupted.requested:
                        self.stop(INTERRUPTED, pending, running)
                        break
                    if self.deadline is not None and time.monotonic() >= self.deadline:
                        self.run.reason = BUILD_TIME_LIMIT
                        self.stop(BUILD_TIME_LIMIT, pending, running)
                        break
                    used = sum(self.weight(n, limit) for n in running.values())
                    for name in self.ready(pending, limit - used, limit):
                        stage = self.pipeline.stages[name]
                        running[pool.submit(self.executor.execute, stage)] = name
                    for result in self.remote.poll():
                        self.finish(result)
                    if running:
                        done, _ = wait(running, timeout=TICK, return_when=FIRST_COMPLETED)
                        for future in done:
                            running.pop(future)
                            self.finish(future.result())
                    elif self.remote:
                        self.cancel.wait(TICK)  # only remote stages wait: nothing else to wake us
            except BaseException:
                # The store failed (a full disk: exit 3), or a bug: every stage stops, and
                # the pool's threads, tracked or not, end before the run's clean-up.
                self.cancel.set()
                self.supervisor.stop_all()
                raise
        self.run.finished = now()
        self.run.outputs = dict(self.executor.outputs)
        statuses = [r.status for r in self.run.stages.values()]
        if any(s.bad for s in statuses):
            self.run.status = Status.FAILURE
        elif Status.CANCELLED in statuses:
            self.run.status = Status.CANCELLED
        else:
            self.run.status = Status.SUCCESS
        self.save_run()
        self.reporter.run_finished(self.run)

    def weight(self, name: str, limit: int) -> int:
        """The slots a stage takes: its container and its services' (SPEC §10: containers at
        once), at most all of them, so that a stage with many services still runs, alone."""
        return min(1 + len(self.pipeline.stages[name].services), limit)

    def ready(self, pending: list[str], free: int, limit: int) -> list[str]:
        """Take from `pending` the stages to start now; skip those that must not run.

        A stage that needs more slots than are free waits, and so does every
        stage after it: it gets the next ones free, however many lighter
        stages there are.
        """
        started: list[str] = []
        for name in list(pending):
            if free <= 0:
                break
            deps = {d: self.run.stages[d] for d in self.deps[name]}
            if any(r.finished is None for r in deps.values()):
                continue
            stage = self.pipeline.stages[name]
            why = decide(stage, deps)
            if why is None and not paths_match(stage.paths, self.options.changed):
                why = "no changed file matches 'paths'"
            if why is None and stage.remote is None and self.weight(name, limit) > free:
                break  # it needs more slots: the next ones free are its
            pending.remove(name)
            if why is None and stage.remote is not None:
                wanted = stage.timeout or self.pipeline.meta.timeout or DEFAULT_TIMEOUT
                timeout, _ = capped_timeout(wanted, self.options.limits)
                waiting = self.remote.add(stage, timeout)
                self.run.stages[name] = waiting
                self.store.write_json(self.run.id, f"{name}.json", waiting.to_json())
                self.reporter.stage_started(name)
            elif why is None:
                self.run.stages[name].status = Status.RUNNING
                started.append(name)
                free -= self.weight(name, limit)
            else:
                skipped = StageResult(name, Status.SKIPPED, why, started=now(), finished=now())
                skipped.failed_upstream = blame(deps)
                self.finish(skipped)
        return started

    def stop(
        self, reason: str, pending: list[str], running: dict[Future[StageResult], str]
    ) -> None:
        """Ctrl-C or a limit: stop every container, mark what never started, wait for the rest.

        Every stage that had not finished ends `cancelled` with `reason`.
        """
        self.cancel.stop(reason)
        self.supervisor.stop_all()
        for result in self.remote.cancel(self.cancel.reason):
            self.finish(result)
        for name in pending:
            self.finish(StageResult(name, Status.CANCELLED, self.cancel.reason))
        pending.clear()
        while running:
            done, _ = wait(running, timeout=0.5)
            for future in done:
                running.pop(future)
                self.finish(future.result())
            self.supervisor.stop_all()
