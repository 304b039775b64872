"""One build's reports to GitHub: check runs where granted, commit statuses otherwise.

Every report is a pair (the check run's create or update, the commit status
that says the same), posted in order on one side thread per build, so that
reporting never delays the build and a report that fails never fails it
(it is logged). Check runs are used when `DOCKERCISE_REPORT` is `checks` and
the installation's token has `checks: write`; a 403 on a check run switches
the installation to statuses, and the refused report is posted as a status.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass

from bot import checks, statuses
from bot.checks import CheckRun, ReportMode
from bot.github_api import ChecksRefused, Installation
from bot.jobs import Job
from runner.errors import DockerciseError

__all__ = ["BuildReport", "ReportMode", "uses_checks"]

log = logging.getLogger("dockercise.bot")

FINAL_WAIT = 120.0
"""Seconds a finished build waits for its reports to be posted before it lets them go."""


def uses_checks(mode: ReportMode, installation: Installation) -> bool:
    """Check runs for this installation: wanted, and granted (else statuses, SPEC §12)."""
    if mode is not ReportMode.CHECKS:
        return False
    try:
        return installation.checks_granted()
    except DockerciseError:
        return False


@dataclass(frozen=True)
class _Item:
    check: CheckRun | None
    status: statuses.CommitStatus | None


class BuildReport:
    """The reports of one build, posted in order on a side thread (started on first use)."""

    def __init__(self, installation: Installation, job: Job, checks_wanted: bool) -> None:
        self.installation = installation
        self.job = job
        self.checks = checks_wanted
        self._check_id: int | None = None
        self._items: queue.Queue[_Item | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def post(self, check: CheckRun | None, status: statuses.CommitStatus | None) -> None:
        """Queue a report: `check` where check runs are used, else `status` (None: nothing)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._drain, name=f"report-{self.job.id}", daemon=True
                )
                self._thread.start()
        self._items.put(_Item(check, status))

    def post_now(self, check: CheckRun | None, status: statuses.CommitStatus | None) -> None:
        """Post in this thread (the announcer's, which does nothing else meanwhile)."""
        self._send(_Item(check, status))

    def take_over(
        self, previous: str, check: CheckRun, status: statuses.CommitStatus | None
    ) -> None:
        """Post `check` (in this thread) as an update of build `previous`'s check run, which
        becomes this build's (its `external_id` changed); a new one if it cannot be found.

        An approved fork build takes over the check run its waiting twin left `queued`
        (SPEC §11), so no check run waits forever for an approval already given.
        """
        if self.checks:
            try:
                found = self.installation.find_check_run(
                    self.job.repo, self.job.sha, check.name, previous
                )
            except DockerciseError as e:  # a 403 falls back when the report itself is sent
                log.info("build %s: cannot find build %s's check run: %s", self.job.id, previous, e)
                found = None
            self._check_id = found  # None: a new check run, as for any build
        self._send(_Item(check, status))

    def close(self, wait: float = FINAL_WAIT) -> None:
        """Let the side thread post what is queued (at most `wait` seconds) and end."""
        with self._lock:
            thread = self._thread
        if thread is None:
            return
        self._items.put(None)
        thread.join(wait)
        if thread.is_alive():
            log.warning("reports of build %s still unsent after %gs", self.job.id, wait)

    def _drain(self) -> None:
        while (item := self._items.get()) is not None:
            self._send(item)

    def _send(self, item: _Item) -> None:
        try:
            if self.checks and item.check is not None:
                try:
                    self._send_check(item.check)
                    return
                except ChecksRefused as e:
                    log.info("build %s: %s; reporting with statuses", self.job.id, e)
                    self.checks = False
            if not self.checks and item.status is not None:
                self.installation.post_status(self.job.repo, self.job.sha, item.status)
        except DockerciseError as e:  # a report that fails never fails the build
            log.warning("build %s of %s: %s", self.job.id, self.job.repo, e)
        except Exception:  # the side thread's one catch-all
            log.exception("cannot report build %s of %s", self.job.id, self.job.repo)

    def _send_check(self, check: CheckRun) -> None:
        repo, sha = self.job.repo, self.job.sha
        if check.name != checks.CHECK_NAME:  # a stage's own: made once, completed
            self.installation.create_check_run(repo, sha, check)
            return
        if check.status is checks.CheckStatus.QUEUED and self._check_id is None:
            self._check_id = self.installation.create_check_run(repo, sha, check)  # announced
            return
        if self._check_id is None:
            self._check_id = self.installation.find_check_run(
                repo, sha, check.name, check.external_id
            )
        if self._check_id is None:
            self._check_id = self.installation.create_check_run(repo, sha, check)
        else:
            self.installation.update_check_run(repo, self._check_id, check)
