"""Builds whose worker died: finished as `error` (or queued again once), never left `pending`.

Runs when a worker starts and every minute.  A build is dead when its worker
has not beaten its heartbeat for STALE seconds; what its run left behind
(containers, built images, the checkout) is removed.

The state moves first and GitHub is told after, so a GitHub that cannot be
reached (or anything else that breaks while settling) never leaves a dead
build to be found dead again every minute. The build queued again is the
stored one, with the trust it was recorded with (SPEC §10).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable

from bot import checks, statuses
from bot.github_api import GitHubApp
from bot.jobs import Job, JobKind
from bot.report import BuildReport, uses_checks
from bot.settings import Settings
from bot.state import Build, StateStore
from pages.links import results_url
from runner.errors import DockerciseError

__all__ = ["Reaper"]

log = logging.getLogger("dockercise.bot")

MAX_ATTEMPTS = 2


class Reaper:
    def __init__(
        self,
        settings: Settings,
        github: GitHubApp,
        state: StateStore,
        enqueue: Callable[[Job], None],
    ) -> None:
        self.settings = settings
        self.github = github
        self.state = state
        self.enqueue = enqueue

    def reap(self) -> list[str]:
        """Finish or re-queue every dead build; the ids handled."""
        handled = []
        for build in self.state.stale(self.settings.stale_after):
            if not self.state.take_stale(build.job.id, self.settings.stale_after):
                continue  # another worker's reaper has it
            try:
                self._clean(build)
                self._settle(build)
            except Exception:  # one dead build must not keep the others from being settled
                log.exception("cannot settle dead build %s", build.job.id)
                self.state.finish(build.job.id, "error")
                why = "the worker building it died"
                self._tell(
                    build.job, checks.errored(build.job.id, why, None), statuses.errored(why)
                )
            handled.append(build.job.id)
        return handled

    def _clean(self, build: Build) -> None:
        shutil.rmtree(self.settings.data_dir / "checkouts" / build.job.id, ignore_errors=True)
        if build.run_id is None:
            return
        try:
            from runner.containers import Containers

            containers = Containers()
            try:
                containers.remove_run(build.run_id)
            finally:
                containers.close()
        except DockerciseError:
            log.warning("cannot reach the engine to remove run %s's containers", build.run_id)

    def _settle(self, build: Build) -> None:
        job = build.job
        url = (
            results_url(self.settings.public_url, job.repo, build.run_id) if build.run_id else None
        )
        if build.attempts < MAX_ATTEMPTS:
            log.warning("build %s of %s lost its worker; queued again", job.id, job.repo)
            self.state.requeue(job.id)
            # Said before it is queued, so that it never overtakes the new worker's statuses.
            # A check run stays in progress: the next worker finds it by its external_id.
            self._tell(job, None, statuses.pending(url, "worker died; build queued again"))
            self.enqueue(job)
        else:
            log.warning("build %s of %s lost its worker again; giving up", job.id, job.repo)
            self.state.finish(job.id, "error")
            why = "the worker building it died"
            self._tell(job, checks.errored(job.id, why, url), statuses.errored(why, url))

    def _tell(self, job: Job, check: checks.CheckRun | None, status: statuses.CommitStatus) -> None:
        if job.kind is JobKind.WATCH or job.sha == "HEAD":  # a watch check posts nothing;
            return  # a schedule's commit was never stored, so there is none to post on
        try:
            installation = self.github.installation(job.repo, job.installation_id)
            report = BuildReport(installation, job, uses_checks(self.settings.report, installation))
            report.post_now(check, status)
        except Exception:
            log.exception("cannot tell GitHub about dead build %s", job.id)
