"""`pending` as soon as a build is queued (SPEC §8, issue: the GitHub App).

The web process only records a delivery and answers; reading the commit's
pipeline and posting statuses is GitHub round trips it must not pay for,
and a burst of deliveries would otherwise spend the web process on them.
Announcer threads run in every queue consumer (`dockercise serve`,
`dockercise worker`): each claims a recorded build, reads the commit's
pipeline files through the API, and only when the commit has a pipeline that
wants the build does it post `pending` -- then, and only then, it puts the
build on the queue, so no final status can ever be overtaken by this one.
A build whose announcer died is claimed again after the state's lease.

Nothing a commit holds may keep its build from ending (SPEC §10): a pipeline
that crashes the loader, or any other surprise while announcing, ends the
build as `error` with a one-line reason, at once; and a build whose
announcers keep dying on it (each claim is counted) is given up as `error`
at its MAX_TRIES-th claim without being read again. Only what the worker
can do better (GitHub could not answer, the pipeline is invalid: the worker
says so with the checkout in hand) is queued unannounced.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from bot import checks, statuses
from bot.approval import (
    WAITING,
    WAITING_TEXT,
    approved_id,
    approved_text,
    needs_approval,
    waiting_of,
)
from bot.checkout import Mirrors
from bot.checks import ReportMode
from bot.github_api import GitHubApp, Installation
from bot.jobs import Job, JobKind
from bot.reasons import Redactor, Step, crashed
from bot.report import BuildReport, uses_checks
from bot.settings import ForkApproval
from bot.state import ANNOUNCE_LEASE, Build, Claim, StateStore
from bot.supersede import SUPERSEDED, in_line, skip_applies, skip_ci, superseded
from bot.triggers import unwanted
from pages.links import runs_url
from runner import pipeline as pipelines
from runner.errors import DockerciseError
from runner.model import Supersede

__all__ = ["MAX_TRIES", "Announcer", "Reporting", "announce", "give_up"]

log = logging.getLogger("dockercise.bot")

MAX_TRIES = 3
"""Claims of one build after which it is ended as `error` rather than read again."""


@dataclass(frozen=True)
class Reporting:
    """How the announcer reports: `DOCKERCISE_REPORT`, and where run pages live."""

    mode: ReportMode = ReportMode.CHECKS
    public_url: str = ""


def _skipped(installation: Installation, job: Job) -> bool:
    """A pull request's head commit asks for no build (`[skip ci]`, read through the API)."""
    return skip_applies(job) and skip_ci(installation.commit_message(job.repo, job.sha))


def _supersede(
    state: StateStore, job: Job, policy: Supersede, end: Callable[[Build], None]
) -> None:
    """Cancel the older builds of `job`'s pull request (or branch); a waiting one is ended
    here (`end` tells GitHub), as no worker will ever take it."""
    waiting = (
        state.waiting(job.repo, job.number)
        if job.kind is JobKind.PULL_REQUEST and job.number is not None
        and policy is not Supersede.NONE
        else []
    )  # fmt: skip
    unfinished = state.unfinished(job.repo)
    waited: dict[str, float] = {}
    for build in unfinished:
        twin_of = waiting_of(build.job)
        if twin_of is not None and (found := state.get(twin_of)) is not None:
            waited[twin_of] = found.created or 0.0
    waits = {b.job.id: b for b in waiting}
    for build_id in superseded(job, policy, in_line([*waiting, *unfinished], waited)):
        log.info("build %s of %s supersedes build %s", job.id, job.repo, build_id)
        if build_id not in waits:
            state.request_cancel(build_id, SUPERSEDED)
        elif state.end_waiting(build_id, SUPERSEDED):
            end(waits[build_id])
        else:  # approved meanwhile: its approved build is the older commit's, superseded too
            state.request_cancel(approved_id(build_id), SUPERSEDED)


def _superseded_waiting(
    installation: Installation, checks_wanted: bool, build_url: Callable[[Job], str | None]
) -> Callable[[Build], None]:
    """Tell GitHub that a waiting build was superseded: its `queued` check run (or `pending`
    status) completed `cancelled`, linking to its page, which says so."""

    def end(build: Build) -> None:
        url = build_url(build.job)
        BuildReport(installation, build.job, checks_wanted).post_now(
            checks.cancelled_before(build.job.id, SUPERSEDED, url),
            statuses.CommitStatus("error", statuses.fit(SUPERSEDED), target_url=url),
        )

    return end


def announce(
    github: GitHubApp,
    state: StateStore,
    enqueue: Callable[[Job], None],
    job: Job,
    mirrors: Mirrors,
    approval: ForkApproval = ForkApproval.OUTSIDE,
    build_url: Callable[[Job], str | None] = lambda job: None,
    reporting: Reporting | None = None,
) -> str:
    """Report `queued` when the commit's pipeline wants the build, then queue it; the outcome.

    Anything unclear (GitHub cannot answer, the pipeline does not load) queues
    the build all the same: the worker, with the checkout, has the last word.
    When GitHub cuts the commit's tree short, the files are listed from the
    repository's mirror (fetched here, so the build's checkout has less to do).
    A fork's build that needs approval (`bot.approval`) is not queued: it ends
    `waiting`, its `pending` status linking to its page (`build_url`), where a
    writer's Approve records its approved twin. If GitHub cannot say whether
    the author collaborates, the build waits too.
    A build the pipeline wants supersedes the older ones of its pull request
    (`meta.supersede`), waiting or not, whether it waits itself or not.
    """
    reporting = reporting or Reporting()
    try:
        installation = github.installation(job.repo, job.installation_id)
        if _skipped(installation, job):
            state.finish(job.id, "skipped")  # [skip ci]: nothing built, nothing reported
            return "skipped"
        files = installation.pipeline_files(job.repo, job.sha)
        if files is None:
            log.info("the tree of %s@%s is truncated: listing it from the mirror",
                     job.repo, job.sha[:12])  # fmt: skip
            files = mirrors.pipeline_files(
                job.repo, job.clone_url, job.ref, job.sha, installation.token
            )
        if not files:
            state.finish(job.id, "none")  # no pipeline: no status, nothing to build
            return "none"
        loaded = pipelines.load_texts(files)
        if loaded is not None and unwanted(loaded.meta.on, job) is not None:
            state.finish(job.id, "filtered")
            return "filtered"
        report = BuildReport(installation, job, uses_checks(reporting.mode, installation))
        owner, name = job.repo.split("/", 1)
        policy = loaded.meta.supersede if loaded else Supersede.PULL_REQUESTS
        try:
            waits = needs_approval(
                approval, job, lambda login: installation.is_collaborator(job.repo, login)
            )
        except DockerciseError as e:
            log.info("build %s of %s waits: %s", job.id, job.repo, e)
            waits = True
        if waits:
            url = build_url(job)
            report.post_now(
                replace(checks.queued(job.id, url), title=WAITING_TEXT, summary=WAITING_TEXT),
                statuses.pending(url, what=WAITING_TEXT),
            )
            state.finish(job.id, WAITING)
            _supersede(
                state, job, policy, _superseded_waiting(installation, report.checks, build_url)
            )
            return WAITING
        queued = checks.queued(job.id, runs_url(reporting.public_url, owner, name))
        waited = waiting_of(job)
        if waited is None:
            report.post_now(queued, statuses.pending(what="build queued"))
        else:  # approved: the check run "waiting for approval" becomes this build's
            text = approved_text(job)
            report.take_over(waited, replace(queued, title=text, summary=text),
                             statuses.pending(what="build queued"))  # fmt: skip
        _supersede(state, job, policy, _superseded_waiting(installation, report.checks, build_url))
        outcome = "announced"
    except DockerciseError as e:
        log.info("build %s of %s queued unannounced: %s", job.id, job.repo, e)
        outcome = "queued"
    except Exception as e:  # a bug, or a commit that breaks the loader: end it, never again
        log.exception("build %s of %s broke its announcer", job.id, job.repo)
        return _end(github, state, job, crashed(Step.ANNOUNCE, e), reporting)
    enqueue(job)
    state.handed_over(job.id)
    return outcome


def give_up(
    github: GitHubApp, state: StateStore, claim: Claim, reporting: Reporting | None = None
) -> str:
    """End a build whose announcers have died on it MAX_TRIES times, without reading it."""
    job = claim.job
    log.warning(
        "build %s of %s: %d announcers gave out on it; ended", job.id, job.repo, claim.tries
    )
    why = f"could not be announced ({claim.tries - 1} tries)"
    return _end(github, state, job, why, reporting or Reporting())


def _end(github: GitHubApp, state: StateStore, job: Job, why: str, reporting: Reporting) -> str:
    """Finish the build as `error` first (so it is never claimed again), then tell the commit
    the way its build would have: a completed check run where checks are used, else the
    status (SPEC §12), linking to the repository's runs (the build has no run)."""
    state.finish(job.id, "error")
    reason = Redactor()(why)
    try:
        installation = github.installation(job.repo, job.installation_id)
        report = BuildReport(installation, job, uses_checks(reporting.mode, installation))
        owner, name = job.repo.split("/", 1)
        url = runs_url(reporting.public_url, owner, name)
        report.post_now(checks.errored(job.id, reason, url), statuses.errored(reason))
    except Exception:  # the state says `error`; GitHub is told when it can be
        log.exception("cannot report the error of %s", job.id)
    return "error"


class Announcer:
    """A poller thread of a consumer process, and a few threads announcing what it claims.

    The poller reads the state every POLL seconds while there is nothing to
    do (one small index), so a delivery is announced within about that.
    """

    POLL = 0.05
    BACKOFF = 5.0
    """Seconds between tries while the state cannot be read (Redis down, say)."""
    THREADS = 4
    LEASE = ANNOUNCE_LEASE
    """Seconds a claimed build is this announcer's before another may take it."""

    def __init__(
        self,
        github: GitHubApp,
        state: StateStore,
        enqueue: Callable[[Job], None],
        mirrors: Mirrors,
        approval: ForkApproval = ForkApproval.OUTSIDE,
        build_url: Callable[[Job], str | None] = lambda job: None,
        reporting: Reporting | None = None,
    ):
        self.reporting = reporting or Reporting()
        self.github = github
        self.state = state
        self.enqueue = enqueue
        self.mirrors = mirrors
        self.approval = approval
        self.build_url = build_url
        self._stop = threading.Event()
        self._free = threading.Semaphore(self.THREADS)
        self._pool = ThreadPoolExecutor(self.THREADS, thread_name_prefix="announce")
        self._poller = threading.Thread(target=self._poll, name="announce-poll", daemon=True)

    def start(self) -> None:
        self._poller.start()

    def stop(self) -> None:
        """Finish the builds in hand; what is left stays recorded for the next announcer."""
        self._stop.set()
        if self._poller.is_alive():
            self._poller.join(timeout=10)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._free.acquire()  # a thread is free: only then claim, so none waits claimed
            try:
                claims = self.state.claim_unannounced(1, self.LEASE)
            except Exception:  # the state is unreachable for now: try again, not at once
                log.exception(
                    "cannot look for builds to announce; trying again in %gs", self.BACKOFF
                )
                self._free.release()
                self._stop.wait(self.BACKOFF)
                continue
            if not claims:
                self._free.release()
                self._stop.wait(self.POLL)
                continue
            self._pool.submit(self._announce, claims[0])

    def _announce(self, claim: Claim) -> None:
        job = claim.job
        try:
            if claim.tries > MAX_TRIES:
                give_up(self.github, self.state, claim, self.reporting)
            else:
                announce(
                    self.github,
                    self.state,
                    self.enqueue,
                    job,
                    self.mirrors,
                    self.approval,
                    self.build_url,
                    self.reporting,
                )
        except Exception:  # the thread's one catch-all: the lease offers it again later
            log.exception("cannot announce build %s of %s", job.id, job.repo)
        finally:
            self._free.release()
