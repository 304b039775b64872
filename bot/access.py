"""Who may see a repository's results and act on its builds (SPEC §11).

A public repository is readable by anyone; a private one -- or one whose
privacy no delivery has told yet -- only by a signed-in user whom GitHub
lets read it (`GET /repos/{owner}/{repo}` with their token). GitHub's
answer is remembered in this process for at most `REMEMBER` seconds per
user and repository, so a page and its polling cost one round trip every
five minutes; an action (Approve) always asks afresh. The privacy is read
from the state on every request, so a repository made private is hidden at
once.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from bot.github_user import GitHubUser, GitHubUserFailed, Permission, Token, UserRepository
from bot.state.base import StateStore

__all__ = ["REMEMBER", "Access", "Viewer"]

log = logging.getLogger("dockercise.bot")

REMEMBER = 300.0
"""Seconds a user's permission on a repository (and their repository list) is remembered."""
_MAX_REMEMBERED = 10_000


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of a request."""

    id: int
    login: str
    token: Token


class Access:
    def __init__(self, state: StateStore, github: GitHubUser | None) -> None:
        self.state = state
        self.github = github
        self._lock = threading.Lock()
        self._permissions: dict[tuple[int, str], tuple[Permission, float]] = {}
        self._repositories: dict[int, tuple[list[UserRepository], float]] = {}

    def private(self, repo: str) -> bool:
        """Unknown counts as private."""
        return self.state.is_private(repo) is not False

    def permission(self, viewer: Viewer | None, repo: str, fresh: bool = False) -> Permission:
        """What `viewer` (None: nobody signed in) may do with `repo`'s results."""
        floor = Permission.NONE if self.private(repo) else Permission.READ
        if viewer is None or self.github is None:
            return floor
        key = (viewer.id, repo.lower())
        now = time.monotonic()
        with self._lock:
            known = self._permissions.get(key)
        if known is not None and known[1] > now and not fresh:
            return max(floor, known[0])
        try:
            found = self.github.permission(viewer.token, repo)
        except GitHubUserFailed as e:  # GitHub cannot say: nothing more than anyone gets
            log.warning("cannot ask GitHub what %s may do with %s: %s", viewer.login, repo, e)
            return floor
        self.remember(viewer, repo, found)
        return max(floor, found)

    def remember(self, viewer: Viewer, repo: str, permission: Permission) -> None:
        with self._lock:
            if len(self._permissions) >= _MAX_REMEMBERED:
                self._permissions.clear()
            self._permissions[(viewer.id, repo.lower())] = (
                permission,
                time.monotonic() + REMEMBER,
            )

    def repositories(self, viewer: Viewer) -> list[UserRepository]:
        """The repositories of the viewer's installations (remembered like permissions)."""
        if self.github is None:
            return []
        now = time.monotonic()
        with self._lock:
            known = self._repositories.get(viewer.id)
        if known is not None and known[1] > now:
            return known[0]
        found = self.github.installed_repositories(viewer.token)
        with self._lock:
            if len(self._repositories) >= _MAX_REMEMBERED:
                self._repositories.clear()
            self._repositories[viewer.id] = (found, now + REMEMBER)
        for repo in found:
            self.remember(viewer, repo.full_name, repo.permission)
        return found

    def forget(self, viewer_id: int) -> None:
        """Sign-out: what this user could see is asked again at their next sign-in."""
        with self._lock:
            self._repositories.pop(viewer_id, None)
            for key in [k for k in self._permissions if k[0] == viewer_id]:
                del self._permissions[key]
