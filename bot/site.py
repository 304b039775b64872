"""The bot's side of the results site (SPEC §11): sign-in, who may see what, Approve, `/`, badges.

    GET  /login?next=PATH          to GitHub's authorize page (a fresh `state` in the session)
    GET  /login/callback           `state` checked, code exchanged, a new session id, to `next`
    POST /logout                   the session ended on the server (CSRF token)
    GET  /                         the signed-in user's built repositories, latest build per branch
    GET  /badge/<owner>/<repo>.svg?branch=B   a public repository's badge
    GET  /results/<owner>/<repo>/build/<id>           a build's page (a fork's waiting one)
    POST /results/<owner>/<repo>/build/<id>/approve   a writer approves it (CSRF token)

A run page's Re-run and Cancel are `bot.buttons`, on the same checks.

The results pages themselves (`pages.blueprint`) ask `Site.readable` through
the bot's `locate`, so every page, log, artefact and listing of a private
repository is a 404 to whoever may not read it.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, g, redirect, render_template, request, session
from flask_wtf.csrf import generate_csrf, validate_csrf
from werkzeug.wrappers import Response as BaseResponse
from wtforms import ValidationError

from bot.access import Access, Viewer
from bot.approval import WAITING, approved, approved_id
from bot.github_user import GitHubUser, GitHubUserFailed, Permission, Token
from bot.sessions import ServerSession
from bot.state.base import StateStore
from bot.supersede import SUPERSEDED
from pages import reading
from pages.badge import badge
from pages.links import build_url, results_url
from runner.store.base import ResultReader, valid_part

__all__ = ["Site", "check_csrf", "message_page", "safe_next"]

log = logging.getLogger("dockercise.bot")

_CONTROL = re.compile(r"[\x00-\x20\x7f\\]")
Stores = Callable[[str], ResultReader | None]
"""The store of `owner/repo` when the bot has built it, whoever asks."""


def safe_next(target: str | None) -> str:
    """`target` when it is a path of this site, else `/` (pure; no open redirect).

    Refused: anything with a scheme or host (`https://x`, `//x`, `/\\x`, which
    browsers read as `//x`), backslashes, spaces and control characters anywhere.
    """
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    if _CONTROL.search(target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


class Site:
    def __init__(
        self,
        state: StateStore,
        github: GitHubUser | None,
        stores: Stores,
        public_url: str,
    ) -> None:
        self.state = state
        self.github = github
        self.access = Access(state, github)
        self.stores = stores
        self.public_url = public_url

    # --- the request's viewer ---------------------------------------------------

    def viewer(self) -> Viewer | None:
        """The signed-in user, their token refreshed when it expires (a refused refresh
        ends the session); None when nobody is signed in."""
        if "viewer" in g:
            found: Viewer | None = g.viewer
            return found
        g.viewer = None
        user = session.get("user")
        if not isinstance(user, dict) or self.github is None:
            return None
        try:
            token = Token.from_json(user["token"])
            viewer = Viewer(int(user["id"]), str(user["login"]), token)
        except (KeyError, TypeError, ValueError):
            session.clear()
            return None
        if token.expiring(time.time()):
            try:
                token = self.github.refresh(token)
            except GitHubUserFailed as e:
                log.info("sign-in of %s ended: %s", viewer.login, e)
                session.clear()
                return None
            session["user"] = {**user, "token": token.to_json()}
            viewer = Viewer(viewer.id, viewer.login, token)
        g.viewer = viewer
        return viewer

    def readable(self, repo: str) -> bool:
        permission = self.access.permission(self.viewer(), repo)
        if permission >= Permission.READ and self.access.private(repo):
            g.private_view = True
        return permission >= Permission.READ

    def writer(self, repo: str) -> Viewer:
        """The viewer, if GitHub says now (not the remembered answer) that they may write
        `repo`; else 403. Then the form's CSRF token (400): a button's POST (SPEC §11)."""
        viewer = self.viewer()
        if viewer is None or self.access.permission(viewer, repo, fresh=True) < Permission.WRITE:
            abort(403)
        check_csrf()
        return viewer

    # --- the blueprint ----------------------------------------------------------

    def blueprint(self) -> Blueprint:
        bp = Blueprint("site", __name__)
        signin = self.github is not None

        @bp.app_context_processor
        def viewer_values() -> dict[str, Any]:
            viewer = self.viewer() if signin else None
            return {
                "signin": signin,
                "viewer_login": None if viewer is None else viewer.login,
                "csrf_token": generate_csrf,
            }

        @bp.after_app_request
        def private_answers(response: Response) -> Response:
            if g.get("private_view"):
                response.headers["Cache-Control"] = "private, no-store"
            return response

        @bp.get("/login")
        def login() -> BaseResponse:
            if self.github is None:
                abort(404)
            state = secrets.token_urlsafe(32)
            session["oauth_state"] = state
            session["next"] = safe_next(request.args.get("next"))
            return redirect(self.github.authorize_url(state), 302)

        @bp.get("/login/callback")
        def callback() -> BaseResponse | tuple[str, int]:
            if self.github is None:
                abort(404)
            expected = session.pop("oauth_state", None)
            target = safe_next(session.pop("next", None))
            given = request.args.get("state", "")
            if not isinstance(expected, str) or not hmac.compare_digest(
                expected.encode(), given.encode()
            ):
                return message_page(
                    "Sign-in failed", "The sign-in expired or did not start here."
                ), 400
            code = request.args.get("code", "")
            if not code:
                return message_page("Sign-in failed", "GitHub did not sign you in."), 400
            try:
                token = self.github.exchange(code)
                user_id, login = self.github.user(token)
            except GitHubUserFailed as e:
                log.info("sign-in failed: %s", e)
                return message_page("Sign-in failed", "GitHub did not sign you in."), 400
            session.clear()
            assert isinstance(session, ServerSession)
            session.renew()  # a new id: one planted before sign-in names nothing now
            session["user"] = {"id": user_id, "login": login, "token": token.to_json()}
            return redirect(target, 303)

        @bp.post("/logout")
        def logout() -> BaseResponse:
            check_csrf()
            viewer = self.viewer()
            if viewer is not None:
                self.access.forget(viewer.id)
            session.clear()
            return redirect("/", 303)

        @bp.get("/")
        def home() -> str:
            viewer = self.viewer() if signin else None
            rows = []
            if viewer is not None:
                try:
                    repositories = self.access.repositories(viewer)
                except GitHubUserFailed as e:
                    log.warning("cannot list the repositories of %s: %s", viewer.login, e)
                    repositories = []
                for repo in repositories:
                    if repo.permission < Permission.READ:
                        continue
                    store = self.stores(repo.full_name)
                    if store is None:
                        continue
                    owner, name = repo.full_name.split("/", 1)
                    rows.append((owner, name, reading.latest_per_branch(store)))
            return render_template("results/home.html", rows=rows, signed_in=viewer is not None)

        @bp.get("/badge/<owner>/<filename>")
        def badge_svg(owner: str, filename: str) -> Response:
            name = filename.removesuffix(".svg")
            repo = f"{owner}/{name}"
            if (
                not filename.endswith(".svg")
                or not valid_part(owner)
                or not valid_part(name)
                or self.access.private(repo)
            ):
                abort(404)
            store = self.stores(repo)
            if store is None:
                abort(404)
            branch = request.args.get("branch")
            latest = reading.latest_per_branch(store)
            newest = next(iter(latest.values()), None)
            row = latest.get(branch) if branch is not None else newest
            return Response(
                badge(None if row is None else row.status),
                mimetype="image/svg+xml",
                headers={"Cache-Control": "no-cache"},
            )

        def waiting_build(owner: str, repo: str, build_id: str) -> tuple[str, Any]:
            full = f"{owner}/{repo}"
            if not (valid_part(owner) and valid_part(repo) and valid_part(build_id)):
                abort(404)
            if not self.readable(full):
                abort(404)
            build = self.state.get(build_id)
            if build is None or build.job.repo.lower() != full.lower():
                abort(404)
            return full, build

        @bp.get("/results/<owner>/<repo>/build/<build_id>")
        def build_page(owner: str, repo: str, build_id: str) -> BaseResponse | str:
            full, build = waiting_build(owner, repo, build_id)
            twin = self.state.get(approved_id(build_id))
            if twin is not None:
                return redirect(build_url("", twin.job.repo, twin.job.id), 303)
            if build.run_id is not None:
                return redirect(results_url("", build.job.repo, build.run_id), 303)
            viewer = self.viewer()
            may_approve = (
                build.state == WAITING
                and viewer is not None
                and self.access.permission(viewer, full) >= Permission.WRITE
            )
            return render_template(
                "results/build.html",
                owner=owner,
                repo=repo,
                build=build,
                job=build.job,
                waiting=build.state == WAITING,
                superseded=build.state == SUPERSEDED,
                may_approve=may_approve,
            )

        @bp.post("/results/<owner>/<repo>/build/<build_id>/approve")
        def approve(owner: str, repo: str, build_id: str) -> BaseResponse:
            full, build = waiting_build(owner, repo, build_id)  # no read: 404
            viewer = self.writer(full)
            if build.state == WAITING:
                job = approved(build.job, viewer.login)
                # One approved build however often it is pressed; none once superseded.
                recorded = self.state.record(job)
                log.info("build %s of %s approved by %s: %s", build_id, full, viewer.login,
                         recorded if isinstance(recorded, str) else "recorded")  # fmt: skip
            if self.state.get(approved_id(build_id)) is None:  # superseded: its page says so
                return redirect(build_url("", build.job.repo, build_id), 303)
            return redirect(build_url("", build.job.repo, approved_id(build_id)), 303)

        return bp


def check_csrf() -> None:
    try:
        validate_csrf(request.form.get("csrf_token", ""))
    except ValidationError:
        abort(400)


def message_page(heading: str, message: str) -> str:
    return render_template("results/message.html", heading=heading, message=message)
