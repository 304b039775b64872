"""One bot build: claim -> checkout -> load -> run -> report -> clean up.

Runs in a queue worker.  It always ends with a final report (a check run, or
a commit status where checks are not granted; none at all when the commit
has no pipeline), and always deletes its checkout. Reports go out on a side
thread (`bot.report`), so they never hold the build back. The heartbeat
thread also polls the state for a cancel request (SPEC §11): whichever
process took it, this worker stops the build's containers within a second or
two and reports it `cancelled`;
the one catch-all of the worker task is here: whatever breaks, in whichever
step, ends the build as `error` with a one-line reason that `bot.reasons`
has masked and cleared of the worker's paths (SPEC §10), and the worker
goes on with the next build.

The build is the stored one: the worker reads the job back from the state
after claiming it, so its trust (`Job.fork`) is what was recorded from the
delivery, whatever the queue's copy says.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from secrets import token_hex

from bot import checks, statuses
from bot.checkout import Mirrors
from bot.github_api import GitHubApp, Installation
from bot.jobs import Job, JobKind
from bot.policy import allowance, host_paths, networking, trusted_repository
from bot.reasons import PlaceMasker, Redactor, Step, crashed
from bot.remotes import scope_remotes
from bot.report import BuildReport, uses_checks
from bot.settings import Settings
from bot.state import StateStore
from bot.supersede import skip_applies, skip_ci
from bot.triggers import unwanted
from pages.links import results_url, runs_url
from runner import caching, pruning
from runner import pipeline as pipelines
from runner.backend import ContainerBackend
from runner.cachestore import CacheStore
from runner.encryption import Audience, Secrets, decrypt_pipeline
from runner.engine import Engine, RunOptions, prepare
from runner.errors import DockerciseError, PipelineInvalid
from runner.masking import Masker
from runner.model import Pipeline
from runner.outcome import RunResult, StageResult, Status, now
from runner.store import open_store
from runner.store.base import ResultReader
from runner.supervisor import Interrupt
from webhooks.events import BuildStatus, RemoteBuildComplete

__all__ = ["Builder"]

log = logging.getLogger("dockercise.bot")

CANCEL_POLL = 1.0
"""Seconds between a running build's looks at the state for a cancel request."""

_EVENT_STATUS: dict[Status, BuildStatus] = {
    Status.SUCCESS: "success",
    Status.FAILURE: "failure",
    Status.ERROR: "error",
    Status.CANCELLED: "cancelled",
}
"""A finished run's status as its remote-build-complete event says it (anything else: error)."""


@dataclass
class _Cancel:
    """A build's cancel request, as the heartbeat thread found it; what the engine watches."""

    interrupt: Interrupt = field(default_factory=Interrupt)
    why: str | None = None

    def request(self, why: str) -> None:
        if self.why is None:
            self.why = why
        self.interrupt.request()


@dataclass
class _Reporter:
    """The engine's reporter in a bot build: records the run, reports its progress."""

    state: StateStore
    job: Job
    report: BuildReport
    per_stage: bool
    url: Callable[[str], str]
    scrub: Callable[[str], str]
    run_id: str = ""
    started: bool = False

    def run_started(self, run: RunResult, order: list[str]) -> None:
        self.run_id = run.id
        self.state.set_run(self.job.id, run.id)

    def stage_started(self, name: str) -> None:
        if not self.started and self.job.kind is not JobKind.WATCH:  # in progress at the first
            self.started = True
            self.report.post(
                checks.in_progress(self.job.id, self.url(self.run_id)),
                statuses.pending(what="build running") if self.report.checks else None,
            )

    def stage_output(self, name: str, line: str) -> None:
        pass

    def stage_note(self, name: str, text: str) -> None:
        pass

    def stage_finished(self, result: StageResult) -> None:
        if self.per_stage:
            url = self.url(self.run_id)
            check = checks.for_stage(self.job.id, result, url)
            status = statuses.for_stage(result, url)
            self.report.post(
                replace(check, title=self.scrub(check.title), summary=self.scrub(check.summary)),
                replace(status, description=statuses.fit(self.scrub(status.description))),
            )

    def run_finished(self, run: RunResult) -> None:
        pass


Notify = Callable[[dict[str, str], tuple[str, ...]], None]
"""Sends a finished build's event to the bot itself and to `meta.downstream` URLs."""


def _lines(store: ResultReader, run_id: str, stage: str) -> Iterator[str]:
    """A stored (masked) log, line by line, however it is chunked."""
    rest = b""
    for chunk in store.iter_log(run_id, stage):
        rest += chunk
        *whole, rest = rest.split(b"\n")
        for line in whole:
            yield line.decode("utf-8", "replace")
    if rest:
        yield rest.decode("utf-8", "replace")


def _in_checkout(workdir: Path) -> Callable[[str], bool]:
    """Whether a relative path names a file of the checkout (never through a symlink out)."""
    top = workdir.resolve()

    def is_file(path: str) -> bool:
        candidate = workdir / path
        try:
            return candidate.resolve().is_relative_to(top) and candidate.is_file()
        except (OSError, ValueError):
            return False

    return is_file


@dataclass
class _Progress:
    """Where a build is: the step a failure is blamed on, and whether its final word is out."""

    step: Step = Step.CHECKOUT
    reported: str | None = None
    """The final status's state once posted: nothing after it may contradict it."""


class Builder:
    def __init__(
        self,
        settings: Settings,
        github: GitHubApp,
        state: StateStore,
        worker: str,
        enqueue: Callable[[Job], None] | None = None,
        notify: Notify | None = None,
    ) -> None:
        self.settings = settings
        self.github = github
        self.state = state
        self.worker = worker
        self.enqueue = enqueue
        self.notify = notify
        self.mirrors = Mirrors(settings.data_dir / "mirrors", settings.mirror_max)

    def build(self, job: Job) -> None:
        """Do the build unless another worker has it or it is done (redelivered events)."""
        if not self.state.start(job.id, self.worker):
            log.info("build %s of %s is taken or done; skipping", job.id, job.repo)
            return
        stored = self.state.get(job.id)
        # The stored build is the one to do; were it forgotten meanwhile, trust nothing.
        job = stored.job if stored is not None else replace(job, fork=True)
        cancel = _Cancel()
        alive = threading.Event()
        beating = threading.Thread(target=self._beat, args=(job.id, alive, cancel), daemon=True)
        workdir = self.settings.data_dir / "checkouts" / job.id
        final = "error"
        try:
            why = self.state.cancel_requested(job.id)
            if why is not None:  # cancelled while queued: it never runs
                final = self._cancelled_before(job, why)
                return
            beating.start()
            final = self._build(job, workdir, cancel)
        finally:
            alive.set()
            shutil.rmtree(workdir, ignore_errors=True)
            self.state.finish(job.id, final)
            self._evict(job)

    def _evict(self, job: Job) -> None:
        """Mirrors past DOCKERCISE_MIRROR_MAX go once the build is done, off its way."""
        try:
            self.mirrors.evict(keep=job.repo)
        except OSError:
            log.exception("cannot evict mirrors after build %s", job.id)

    def _beat(self, build_id: str, done: threading.Event, cancel: _Cancel) -> None:
        """Beat the heartbeat every third of DOCKERCISE_STALE_AFTER; look for a cancel request
        every CANCEL_POLL seconds (a failed look is tried again at the next one)."""
        period = self.settings.stale_after / 3
        since_beat = 0.0
        while not done.wait(min(CANCEL_POLL, period)):
            since_beat += min(CANCEL_POLL, period)
            try:
                if since_beat >= period:
                    since_beat = 0.0
                    self.state.beat(build_id)
                if cancel.why is None:
                    why = self.state.cancel_requested(build_id)
                    if why is not None:
                        log.info("build %s: %s", build_id, why)
                        cancel.request(why)
            except Exception:  # the state is unreachable for now: the reaper judges the beats
                log.exception("build %s: cannot reach the state", build_id)

    def _report(self, job: Job, installation: Installation) -> BuildReport:
        return BuildReport(installation, job, uses_checks(self.settings.report, installation))

    def _cancelled_before(self, job: Job, why: str) -> str:
        """A build cancelled while queued: reported cancelled, nothing run."""
        if job.kind is JobKind.WATCH:
            return "cancelled"
        try:
            installation = self.github.installation(job.repo, job.installation_id)
        except DockerciseError as e:
            log.warning("build %s of %s: %s", job.id, job.repo, e)
            return "cancelled"
        report = self._report(job, installation)
        owner, name = job.repo.split("/", 1)
        url = runs_url(self.settings.public_url, owner, name)
        report.post(
            checks.cancelled_before(job.id, why, url),
            statuses.CommitStatus("error", statuses.fit(why), target_url=url),
        )
        report.close()
        return "cancelled"

    def _redactor(self, masker: Masker, workdir: Path) -> Redactor:
        places = [(str(workdir), "<checkout>"), (str(self.settings.data_dir), "<data>")]
        results = self.settings.results
        if "://" not in results or results.startswith("file://"):
            places.append((results.removeprefix("file://"), "<results>"))
        return Redactor.of(masker, places, tempfile.gettempdir())

    def _build(self, job: Job, workdir: Path, cancel: _Cancel) -> str:
        masker = PlaceMasker(self.settings.tokens)
        own = Redactor.of(Masker(), [(str(workdir), "<checkout>")], tempfile.gettempdir())
        masker.hide = own.hide_places
        redact = self._redactor(masker, workdir)
        progress = _Progress()
        installation: Installation | None = None
        report: BuildReport | None = None
        try:
            installation = self.github.installation(job.repo, job.installation_id)
            if job.sha == "HEAD":  # a schedule builds whatever the default branch holds now
                branch, sha = installation.default_branch_head(job.repo)
                trigger = {**job.trigger, "default_branch": branch}
                job = replace(
                    job, ref=f"refs/heads/{branch}", sha=sha, branch=branch, trigger=trigger
                )
            token = installation.token
            masker.add(token)
            report = self._report(job, installation)
            self.mirrors.checkout(job.repo, job.clone_url, job.ref, job.sha, workdir, token)
            if skip_applies(job) and skip_ci(
                self.mirrors.commit_message(job.repo, job.ref, job.sha)
            ):  # the announcer could not read the message: nothing reported yet, nor now
                log.info("build %s of %s: [skip ci]", job.id, job.repo)
                return "skipped"
            progress.step = Step.LOAD
            return self._run(job, workdir, report, masker, redact, progress, cancel)
        except Exception as e:  # the worker task's one catch-all: never leave `pending`
            if isinstance(e, DockerciseError):
                log.warning("build %s of %s: %s", job.id, job.repo, e)
                why = redact(str(e)) or crashed(progress.step, e)
            else:
                log.exception("build %s of %s failed while %s", job.id, job.repo, progress.step)
                why = crashed(progress.step, e)
            if progress.reported is not None:  # the commit has its final word: keep it
                return progress.reported
            return self._errored(job, installation, report, why)
        finally:
            if report is not None:
                report.close()

    def _errored(
        self, job: Job, installation: Installation | None, report: BuildReport | None, why: str
    ) -> str:
        # A watch check posts nothing.
        if job.kind is JobKind.WATCH or installation is None:
            return "error"
        try:
            report = report or self._report(job, installation)
            report.post(checks.errored(job.id, why, None), statuses.errored(why))
        except Exception:  # GitHub cannot be told; the state still says `error`
            log.exception("cannot report the error of %s", job.id)
        return "error"

    def _invalid(
        self,
        job: Job,
        report: BuildReport,
        e: PipelineInvalid,
        redact: Redactor,
        progress: _Progress,
    ) -> str:
        first = redact(str(e.problems[0]))
        more = f" (+{len(e.problems) - 1} more)" if len(e.problems) > 1 else ""
        status = statuses.CommitStatus("failure", statuses.fit(f"pipeline invalid: {first}{more}"))
        progress.step = Step.REPORT
        report.post(checks.invalid(job.id, f"{first}{more}", None), status)
        progress.reported = "failure"
        return "failure"

    def _run(
        self,
        job: Job,
        workdir: Path,
        report: BuildReport,
        masker: Masker,
        redact: Redactor,
        progress: _Progress,
        cancel: _Cancel,
    ) -> str:
        try:
            loaded = pipelines.load(workdir, allow_symlinks=False)  # SPEC §10
        except PipelineInvalid as e:
            return self._invalid(job, report, e, redact, progress)
        if loaded is None:
            return "none"  # no pipeline: no status at all
        on = loaded.meta.on
        default = job.branch == job.trigger.get("default_branch")
        if not job.fork and job.kind is not JobKind.PULL_REQUEST and default:
            self.state.remember(
                job.repo, job.clone_url, job.installation_id, on.upstream, on.cron, on.watch
            )
        why = unwanted(on, job)
        if why is not None:
            log.info("not building %s@%s: %s", job.repo, job.sha[:12], why)
            return "filtered"
        networking(loaded.meta.network)  # NetworkRefused: the build ends `error`, nothing ran
        watching = job.kind is JobKind.WATCH
        progress.step = Step.RUN
        if not watching:  # statuses only: the check run is in progress at the first stage
            report.post(None, statuses.pending(what="build running"))
        try:
            run, scans = self._engine_run(job, loaded, workdir, report, masker, redact, cancel)
        except PipelineInvalid as e:  # more stages than the operator allows
            return self._invalid(job, report, e, redact, progress)
        progress.step = Step.REPORT
        if watching:
            return self._compare_watch(job, run)
        url = results_url(self.settings.public_url, job.repo, run.id)
        if cancel.why is not None:
            final = statuses.CommitStatus("error", statuses.fit(cancel.why), target_url=url)
        else:
            final = statuses.for_run(run, url)
        final = replace(final, description=statuses.fit(redact.scrub(final.description)))
        check = checks.completed(job.id, run, url, scans, cancel.why)
        check = replace(check, title=redact.scrub(check.title), summary=redact.scrub(check.summary))
        report.post(check, final)
        progress.reported = "cancelled" if cancel.why is not None else final.state
        if self.notify is not None and not job.fork:  # a fork's result counts nowhere (§10)
            try:
                self.notify(self._event(job, run, url), loaded.meta.downstream)
            except Exception:  # the build is reported; its events are lost, and said so
                log.exception("build %s of %s: cannot send its events", job.id, job.repo)
        return progress.reported

    def _event(self, job: Job, run: RunResult, url: str) -> dict[str, str]:
        """The remote-build-complete event of a finished build (SPEC §8)."""
        event = RemoteBuildComplete(
            pipeline=job.repo,
            ref=job.ref,
            sha=job.sha,
            status=_EVENT_STATUS.get(run.status, "error"),
            run_id=run.id,
            url=url,
            finished=run.finished or now(),
        )
        return event.to_json()

    def _compare_watch(self, job: Job, run: RunResult) -> str:
        """A schedule's watch stage ran: build the whole pipeline when its output changed."""
        (watch,) = job.targets
        if run.stages.get(watch) is None or run.stages[watch].status is not Status.SUCCESS:
            log.warning("watch stage %s of %s did not pass", watch, job.repo)
            return "failure"
        output = run.outputs.get(watch, "")
        previous = self.state.watched(job.repo, output)
        if previous is not None and previous != output and self.enqueue is not None:
            log.info("watch %s of %s changed: building", watch, job.repo)
            whole = replace(job.rerun(), kind=JobKind.SCHEDULE, targets=(),
                            trigger={**job.trigger, "watch": watch})  # fmt: skip
            self.enqueue(whole)
            return "changed"
        return "unchanged"

    def _engine_run(
        self,
        job: Job,
        loaded: Pipeline,
        workdir: Path,
        report: BuildReport,
        masker: Masker,
        redact: Redactor,
        cancel: _Cancel,
    ) -> tuple[RunResult, dict[str, checks.LogScan]]:
        """Run the pipeline; the run, and each failed stage's log read for the check run."""
        audience = Audience(job.repo, unbound=self.settings.accepts_unbound_secrets(job.repo))
        secrets = (
            Secrets() if job.fork else decrypt_pipeline(loaded, self.settings.secret_key, audience)
        )
        masker.add(*secrets.values())
        # A fork's build names secrets it will not get: its stages fail (restrictions), not the run.
        placeholders = {name: "" for name in loaded.meta.secrets} if job.fork else {}
        trusted = trusted_repository(job.fork, job.repo, self.settings.trusted_repos)
        allowed = allowance(
            loaded, job.fork, self.settings.allowed_host_paths, self.settings.limits, trusted
        )
        options = RunOptions(
            targets=list(job.targets),
            variables=[secrets.variables, placeholders],
            literals=secrets.literals,
            masker=masker,
            extra_env={
                "DOCKERCISE_REPO": job.repo,
                "DOCKERCISE_SHA": job.sha,
                "DOCKERCISE_REF": job.ref,
            },
            trigger={"kind": job.kind.value, **job.trigger, "build": job.id},
            changed=list(job.changed) if job.changed is not None else None,
            denied=allowed.denied,
            remote=scope_remotes(
                self.state,
                loaded,
                job.installation_id or self.github.installation_id_of(job.repo),
                self.github.installation_id_of,
                report.installation.default_branch,
            ),
            limits=allowed.limits,
            build_network=allowed.build_network,
            cache_scope=cache_scope(job),
            layer_salt=self._layer_salt(),
            networking=networking(loaded.meta.network),
            host_paths=host_paths(job.fork, trusted, self.settings.allowed_host_paths),
            no_links=True,
        )
        if any(stage.cache for stage in loaded.stages.values()):
            options.cache_store = CacheStore(
                self.settings.data_dir / "cache",
                self.settings.cache_max,
                self.settings.cache_url,
                days=self.settings.cache_days,
            )
        plan = prepare(loaded, options)
        store = open_store(
            f"{self.settings.results.rstrip('/')}/{job.repo}", workdir, self.settings.environ
        )

        def url(run_id: str) -> str:
            return results_url(self.settings.public_url, job.repo, run_id)

        per_stage = loaded.meta.statuses == "stages" and job.kind is not JobKind.WATCH
        reporter = _Reporter(self.state, job, report, per_stage, url, redact.scrub)
        from runner.containers import Containers

        containers = Containers()
        try:
            run = Engine(containers, store, reporter, interrupt=cancel.interrupt).run(plan)
            scans = self._scans(run, store, workdir) if report.checks else {}
            return run, scans
        finally:
            self._tidy(containers, options.cache_store)
            containers.close()
            store.close()
            if options.cache_store is not None:
                options.cache_store.close()

    def _tidy(self, containers: ContainerBackend, caches: CacheStore | None) -> None:
        """After a build: caches and kept images unused for DOCKERCISE_CACHE_DAYS days go
        (S3 and the engine's kept images at most hourly); a failure is only logged."""
        try:
            if caches is not None:
                gone = caches.tidy()
                if gone:
                    log.info("removed %d cache(s) unused or past the bound from S3", len(gone))
            if pruning.due(self.settings.data_dir / "cache" / ".pruned-kept"):
                dropped = pruning.prune_kept(containers, self.settings.cache_days, local=False)
                if dropped:
                    log.info("removed %d kept image(s) unused for days", len(dropped))
        except (DockerciseError, OSError) as e:  # never the build's: the next one tries again
            log.warning("cannot prune caches: %s", e)

    def _layer_salt(self) -> str:
        """This worker's salt in kept images' names, made once (`runner.caching.kept_image`)."""
        path = self.settings.data_dir / "cache" / "salt"
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            salt = token_hex(16)
            with contextlib.suppress(FileExistsError), path.open("x") as file:
                file.write(salt)
            return path.read_text().strip()

    @staticmethod
    def _scans(run: RunResult, store: ResultReader, workdir: Path) -> dict[str, checks.LogScan]:
        """Each failed stage's stored (masked) log: its last lines and its annotations."""
        is_file = _in_checkout(workdir)
        scans: dict[str, checks.LogScan] = {}
        room = checks.MAX_ANNOTATIONS
        for name in checks.failed_stages(run):
            if not run.stages[name].logs:
                scans[name] = checks.LogScan()
                continue
            try:
                scans[name] = checks.scan_log(_lines(store, run.id, name), is_file, room)
            except Exception:  # the log cannot be read: the check run says less, that is all
                log.exception("cannot read the log of %s in run %s", name, run.id)
                scans[name] = checks.LogScan()
            room -= len(scans[name].annotations)
        return scans


def cache_scope(job: Job) -> caching.Scope:
    """Whose caches a bot build reads and where it writes (SPEC §13; `caching.scope_for`)."""
    default = job.trigger.get("default_branch")
    if job.kind is JobKind.PULL_REQUEST:
        return caching.scope_for(
            job.repo,
            branch=None,
            default_branch=default if isinstance(default, str) else None,
            pull_request=job.number,
            base=job.trigger.get("base"),
            fork=job.fork,
        )
    return caching.scope_for(
        job.repo,
        branch=job.branch,
        default_branch=default if isinstance(default, str) else None,
        fork=job.fork,
    )
