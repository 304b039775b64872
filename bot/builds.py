"""One bot build: claim -> checkout -> load -> run -> statuses -> clean up.

Runs in a queue worker.  It always ends with a final commit status (or none
at all when the commit has no pipeline), and always deletes its checkout;
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
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from secrets import token_hex

from bot import statuses
from bot.checkout import Mirrors
from bot.github_api import GitHubApp, Installation
from bot.jobs import Job, JobKind
from bot.policy import allowance, host_paths, networking, trusted_repository
from bot.reasons import PlaceMasker, Redactor, Step, crashed
from bot.remotes import scope_remotes
from bot.settings import Settings
from bot.state import StateStore
from bot.triggers import unwanted
from pages.links import results_url
from runner import caching
from runner import pipeline as pipelines
from runner.cachestore import CacheStore
from runner.encryption import Audience, Secrets, decrypt_pipeline
from runner.engine import Engine, RunOptions, prepare
from runner.errors import DockerciseError, PipelineInvalid
from runner.masking import Masker
from runner.model import Pipeline
from runner.outcome import RunResult, StageResult, Status, now
from runner.store import open_store
from webhooks.events import BuildStatus, RemoteBuildComplete

__all__ = ["Builder"]

log = logging.getLogger("dockercise.bot")

_EVENT_STATUS: dict[Status, BuildStatus] = {
    Status.SUCCESS: "success",
    Status.FAILURE: "failure",
    Status.ERROR: "error",
    Status.CANCELLED: "cancelled",
}
"""A finished run's status as its remote-build-complete event says it (anything else: error)."""


@dataclass
class _Reporter:
    """The engine's reporter in a bot build: records the run, posts per-stage statuses."""

    state: StateStore
    job: Job
    post: Callable[[statuses.CommitStatus], None] | None
    url: Callable[[str], str]
    run_id: str = ""

    def run_started(self, run: RunResult, order: list[str]) -> None:
        self.run_id = run.id
        self.state.set_run(self.job.id, run.id)

    def stage_started(self, name: str) -> None:
        pass

    def stage_output(self, name: str, line: str) -> None:
        pass

    def stage_note(self, name: str, text: str) -> None:
        pass

    def stage_finished(self, result: StageResult) -> None:
        if self.post is not None:
            self.post(statuses.for_stage(result, self.url(self.run_id)))

    def run_finished(self, run: RunResult) -> None:
        pass


Notify = Callable[[dict[str, str], tuple[str, ...]], None]
"""Sends a finished build's event to the bot itself and to `meta.downstream` URLs."""


def _post_meanwhile(installation: Installation, job: Job, what: str) -> Future[None]:
    """Post `pending` while the build goes on.

    Writes to one installation are spaced (`bot.github_api`), and the
    announcer has just posted `build queued`: waiting here would hold the
    first container back by that spacing.
    """
    posted: Future[None] = Future()

    def post() -> None:
        try:
            installation.post_status(job.repo, job.sha, statuses.pending(what=what))
            posted.set_result(None)
        except BaseException as e:  # handed to whoever waits for it
            posted.set_exception(e)

    threading.Thread(target=post, name=f"status-{job.id}", daemon=True).start()
    return posted


def _settle(posted: Future[None], job: Job) -> None:
    try:
        posted.result()
    except Exception as e:  # the final status says what matters
        log.warning("build %s of %s: cannot say it is running: %r", job.id, job.repo, e)


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
        alive = threading.Event()
        beating = threading.Thread(target=self._beat, args=(job.id, alive), daemon=True)
        beating.start()
        workdir = self.settings.data_dir / "checkouts" / job.id
        final = "error"
        try:
            final = self._build(job, workdir)
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

    def _beat(self, build_id: str, done: threading.Event) -> None:
        while not done.wait(self.settings.stale_after / 3):
            self.state.beat(build_id)

    def _redactor(self, masker: Masker, workdir: Path) -> Redactor:
        places = [(str(workdir), "<checkout>"), (str(self.settings.data_dir), "<data>")]
        results = self.settings.results
        if "://" not in results or results.startswith("file://"):
            places.append((results.removeprefix("file://"), "<results>"))
        return Redactor.of(masker, places, tempfile.gettempdir())

    def _build(self, job: Job, workdir: Path) -> str:
        masker = PlaceMasker(self.settings.tokens)
        own = Redactor.of(Masker(), [(str(workdir), "<checkout>")], tempfile.gettempdir())
        masker.hide = own.hide_places
        redact = self._redactor(masker, workdir)
        progress = _Progress()
        installation: Installation | None = None
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
            self.mirrors.checkout(job.repo, job.clone_url, job.ref, job.sha, workdir, token)
            progress.step = Step.LOAD
            return self._run(job, workdir, installation, masker, redact, progress)
        except Exception as e:  # the worker task's one catch-all: never leave `pending`
            if isinstance(e, DockerciseError):
                log.warning("build %s of %s: %s", job.id, job.repo, e)
                why = redact(str(e)) or crashed(progress.step, e)
            else:
                log.exception("build %s of %s failed while %s", job.id, job.repo, progress.step)
                why = crashed(progress.step, e)
            if progress.reported is not None:  # the commit has its final word: keep it
                return progress.reported
            return self._errored(job, installation, why)

    def _errored(self, job: Job, installation: Installation | None, why: str) -> str:
        # A watch check posts nothing.
        if installation is not None and job.kind is not JobKind.WATCH:
            try:
                installation.post_status(job.repo, job.sha, statuses.errored(why))
            except Exception:  # GitHub cannot be told; the state still says `error`
                log.exception("cannot post the error status of %s", job.id)
        return "error"

    def _invalid(
        self,
        job: Job,
        installation: Installation,
        e: PipelineInvalid,
        redact: Redactor,
        progress: _Progress,
    ) -> str:
        first = redact(str(e.problems[0]))
        more = f" (+{len(e.problems) - 1} more)" if len(e.problems) > 1 else ""
        status = statuses.CommitStatus("failure", statuses.fit(f"pipeline invalid: {first}{more}"))
        progress.step = Step.REPORT
        installation.post_status(job.repo, job.sha, status)
        return "failure"

    def _run(
        self,
        job: Job,
        workdir: Path,
        installation: Installation,
        masker: Masker,
        redact: Redactor,
        progress: _Progress,
    ) -> str:
        try:
            loaded = pipelines.load(workdir, allow_symlinks=False)  # SPEC §10
        except PipelineInvalid as e:
            return self._invalid(job, installation, e, redact, progress)
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
        running = None if watching else _post_meanwhile(installation, job, "build running")
        run: RunResult | PipelineInvalid
        try:
            run = self._engine_run(job, loaded, workdir, installation, masker, redact)
        except PipelineInvalid as e:  # more stages than the operator allows
            run = e
        finally:
            if running is not None:  # whatever comes next is posted after it
                _settle(running, job)
        if isinstance(run, PipelineInvalid):
            return self._invalid(job, installation, run, redact, progress)
        progress.step = Step.REPORT
        if watching:
            return self._compare_watch(job, run)
        final = statuses.for_run(run, results_url(self.settings.public_url, job.repo, run.id))
        final = replace(final, description=statuses.fit(redact.scrub(final.description)))
        installation.post_status(job.repo, job.sha, final)
        progress.reported = final.state
        if self.notify is not None and not job.fork:  # a fork's result counts nowhere (§10)
            try:
                self.notify(self._event(job, run, final.target_url or ""), loaded.meta.downstream)
            except Exception:  # the build is reported; its events are lost, and said so
                log.exception("build %s of %s: cannot send its events", job.id, job.repo)
        return final.state

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
        installation: Installation,
        masker: Masker,
        redact: Redactor,
    ) -> RunResult:
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
            trigger={"kind": job.kind.value, **job.trigger},
            changed=list(job.changed) if job.changed is not None else None,
            denied=allowed.denied,
            remote=scope_remotes(
                self.state,
                loaded,
                job.installation_id or self.github.installation_id_of(job.repo),
                self.github.installation_id_of,
                installation.default_branch,
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
                self.settings.data_dir / "cache", self.settings.cache_max, self.settings.cache_url
            )
        plan = prepare(loaded, options)
        store = open_store(
            f"{self.settings.results.rstrip('/')}/{job.repo}", workdir, self.settings.environ
        )

        def url(run_id: str) -> str:
            return results_url(self.settings.public_url, job.repo, run_id)

        def post(status: statuses.CommitStatus) -> None:
            text = statuses.fit(redact.scrub(status.description))
            installation.post_status(job.repo, job.sha, replace(status, description=text))

        per_stage = loaded.meta.statuses == "stages" and job.kind is not JobKind.WATCH
        reporter = _Reporter(self.state, job, post if per_stage else None, url)
        from runner.containers import Containers

        containers = Containers()
        try:
            return Engine(containers, store, reporter).run(plan)
        finally:
            containers.close()
            store.close()
            if options.cache_store is not None:
                options.cache_store.close()

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
