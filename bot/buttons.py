"""The run page's **Re-run** and **Cancel** (SPEC §11): who sees them, what pressing them does.

    POST /results/<owner>/<repo>/run/<run_id>/cancel   a writer cancels the run's build
    POST /results/<owner>/<repo>/run/<run_id>/rerun    a writer builds its commit again

A run's build is the one its `run.json` names (`trigger.build`, written by
the worker) while the state remembers it as a build of that repository; a
run without one (a local run, a build forgotten after DOCKERCISE_KEEP_DAYS)
has no buttons. As on GitHub Actions, **Cancel** is offered while the run is
running and **Re-run** once it has ended (a re-run of a running build is
refused, 409: cancel it first). The buttons are shown to a signed-in viewer
with write access (the remembered permission); pressing one asks GitHub
afresh, then checks the CSRF token: no read access 404, read 403, then a bad
token 400, as Approve does. Both only write to the state (`bot.acting`), so
any web process may take the request.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, abort, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from bot.acting import cancel, rerun
from bot.github_user import Permission
from bot.site import Site, message_page
from bot.state.base import Build, Phase
from pages import reading
from pages.actions import NO_CONTROLS, Button, RunControls
from pages.links import build_url, run_url
from runner.outcome import Status
from runner.store.base import valid_part

__all__ = ["Offer", "RunButtons", "offer"]

log = logging.getLogger("dockercise.bot")


@dataclass(frozen=True)
class Offer:
    """What a writer may press on a run page, and what the page says was asked."""

    cancel: bool
    rerun: bool
    note: str | None = None


def offer(run_status: object, phase: Phase, cancel_asked: str | None) -> Offer:
    """The buttons of a run page (pure): Cancel while the run runs and its build is not done
    (and no cancel was asked yet: the page says so instead), Re-run once the run has ended."""
    running = run_status == Status.RUNNING
    if running and phase is not Phase.DONE and cancel_asked is not None:
        return Offer(False, False, f"Cancel requested ({cancel_asked}): the build is stopping.")
    return Offer(cancel=running and phase is not Phase.DONE, rerun=not running)


_METHODS = ["GET", "POST"]
"""GET too, only to answer it 405: else the run's `<stage>.log` route would take it (404)."""


def _post_only() -> None:
    if request.method != "POST":
        abort(405, valid_methods=["POST"])


class RunButtons:
    def __init__(self, site: Site) -> None:
        self.site = site

    def build_of(self, full: str, run: Mapping[str, Any]) -> Build | None:
        """The state's build that made `run`, if it is still remembered and of `full`."""
        trigger = run.get("trigger")
        build_id = trigger.get("build") if isinstance(trigger, dict) else None
        if not isinstance(build_id, str) or not valid_part(build_id):
            return None
        build = self.site.state.get(build_id)
        if build is None or build.job.repo.casefold() != full.casefold():
            return None
        return build

    def controls(self, owner: str, repo: str, run_id: str, run: Mapping[str, Any]) -> RunControls:
        """A run page's buttons for its viewer; nothing at all costs an anonymous visit."""
        viewer = self.site.viewer()
        if viewer is None:
            return NO_CONTROLS
        full = f"{owner}/{repo}"
        build = self.build_of(full, run)
        if build is None or self.site.access.permission(viewer, full) < Permission.WRITE:
            return NO_CONTROLS
        asked = None
        if build.status is not Phase.DONE:
            asked = self.site.state.cancel_requested(build.job.id)
        found = offer(run.get("status"), build.status, asked)
        page = run_url("", owner, repo, run_id)
        buttons = []
        if found.cancel:
            buttons.append(Button("Cancel", f"{page}/cancel", "cancel"))
        if found.rerun:
            buttons.append(Button("Re-run", f"{page}/rerun", "rerun"))
        return RunControls(tuple(buttons), found.note)

    # --- the forms' targets ---------------------------------------------------------

    def _target(self, owner: str, repo: str, run_id: str) -> tuple[Build, Mapping[str, Any]]:
        """The run's build; 404 when the viewer may not read the repository (as if the run
        did not exist), when there is no such run, or when its build is forgotten."""
        full = f"{owner}/{repo}"
        if not (valid_part(owner) and valid_part(repo) and valid_part(run_id)):
            abort(404)
        if not self.site.readable(full):
            abort(404)
        store = self.site.stores(full)
        found = reading.run_state(store, run_id) if store is not None else None
        if found is None:
            abort(404)
        build = self.build_of(full, found.run)
        if build is None:
            abort(404)
        return build, found.run

    def blueprint(self) -> Blueprint:
        bp = Blueprint("buttons", __name__)

        @bp.route("/results/<owner>/<repo>/run/<run_id>/cancel", methods=_METHODS)
        def cancel_build(owner: str, repo: str, run_id: str) -> BaseResponse:
            _post_only()
            build, _ = self._target(owner, repo, run_id)
            viewer = self.site.writer(f"{owner}/{repo}")
            phase = cancel(self.site.state, build.job.id)
            log.info("build %s of %s: cancel asked by %s (%s)",
                     build.job.id, build.job.repo, viewer.login, phase)  # fmt: skip
            return redirect(run_url("", owner, repo, run_id), 303)

        @bp.route("/results/<owner>/<repo>/run/<run_id>/rerun", methods=_METHODS)
        def rerun_build(owner: str, repo: str, run_id: str) -> BaseResponse | tuple[str, int]:
            _post_only()
            build, run = self._target(owner, repo, run_id)
            viewer = self.site.writer(f"{owner}/{repo}")
            if run.get("status") == Status.RUNNING:
                return message_page(
                    "Still running", "This run has not ended: cancel it, or wait for its end."
                ), 409
            again = rerun(self.site.state, build.job.id, viewer.login)
            if again is None:  # forgotten since the page was read
                abort(404)
            log.info("build %s of %s: re-run as %s by %s",
                     build.job.id, build.job.repo, again.id, viewer.login)  # fmt: skip
            return redirect(build_url("", build.job.repo, again.id), 303)

        return bp
