"""`pending` as soon as a build is queued (SPEC §8, issue: the GitHub App).

The web process hands each recorded build to an Announcer thread, off the
request: it reads the commit's pipeline files through the API, and only when
the commit has a pipeline that wants this build does it post `pending` --
then, and only then, it puts the build on the queue, so no final status can
ever be overtaken by this one. A build whose web process died before that is
an orphan; the reaper queues it.
"""

from __future__ import annotations

import logging
import queue
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from bot import statuses
from bot.github_api import GitHubApp
from bot.state import Job, StateStore
from bot.triggers import unwanted
from runner import pipeline as pipelines
from runner.errors import DockerciseError

__all__ = ["Announcer", "announce"]

log = logging.getLogger("dockercise.bot")


def announce(github: GitHubApp, state: StateStore, enqueue: Callable[[Job], None], job: Job) -> str:
    """Post `pending` when the commit's pipeline wants the build, then queue it; the outcome.

    Anything unclear (GitHub cannot answer, the pipeline does not load) queues
    the build all the same: the worker, with the checkout, has the last word.
    """
    try:
        installation = github.installation(job.repo, job.installation_id)
        files = installation.pipeline_files(job.repo, job.sha)
        if not files:
            state.finish(job.id, "none")  # no pipeline: no status, nothing to build
            return "none"
        with tempfile.TemporaryDirectory(prefix="pipeline-") as folder:
            for path, text in files.items():
                target = Path(folder, path)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
            loaded = pipelines.load(Path(folder))
        if loaded is not None and unwanted(loaded.meta.on, job) is not None:
            state.finish(job.id, "filtered")
            return "filtered"
        installation.post_status(job.repo, job.sha, statuses.pending(what="build queued"))
        outcome = "announced"
    except DockerciseError as e:
        log.info("build %s of %s queued unannounced: %s", job.id, job.repo, e)
        outcome = "queued"
    enqueue(job)
    state.handed_over(job.id)
    return outcome


class Announcer:
    """A few daemon threads of the web process that announce and queue builds after the answer.

    The backlog is bounded: in a burst, builds past it are queued unannounced
    (the worker still posts `pending` when it starts). Daemon threads do not
    hold a stopping process; what they leave is queued by the reaper.
    """

    BACKLOG = 256

    def __init__(self, github: GitHubApp, state: StateStore, enqueue: Callable[[Job], None]):
        self.github = github
        self.state = state
        self.enqueue = enqueue
        self.jobs: queue.Queue[Job] = queue.Queue(maxsize=self.BACKLOG)
        for n in range(4):
            threading.Thread(target=self._work, name=f"announce-{n}", daemon=True).start()

    def submit(self, job: Job) -> None:
        try:
            self.jobs.put_nowait(job)
        except queue.Full:
            self.enqueue(job)
            self.state.handed_over(job.id)

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            try:
                announce(self.github, self.state, self.enqueue, job)
            except Exception:  # the thread's one catch-all: the reaper queues the orphan later
                log.exception("cannot announce build %s of %s", job.id, job.repo)
