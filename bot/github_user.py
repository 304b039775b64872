"""GitHub as a signed-in user sees it: the OAuth web flow (Authlib) and the user's own reads.

The GitHub App's user authorization (SPEC §11): `authorize_url` sends the
browser to GitHub, `exchange` turns the callback's code into a user token,
`refresh` renews an expiring one with its refresh token. With the token,
`user`, `permission` (`GET /repos/{owner}/{repo}`: what this user may do
there) and `installed_repositories` (the user's installations' repositories,
a page of a hundred at a time, never one call per repository). Every failure
is `GitHubUserFailed`; a 404 of a repository is `Permission.NONE`, not an
error, since that is how GitHub says "you may not see it".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session

from runner.errors import DockerciseError

__all__ = [
    "GitHubUser",
    "GitHubUserFailed",
    "Permission",
    "Token",
    "UserRepository",
    "permission_of",
]

TIMEOUT = 10.0
MAX_PAGES = 10
"""Pages of a hundred repositories read per installation for the landing page."""


class GitHubUserFailed(DockerciseError):
    """GitHub refused the user's request or could not be reached."""


class Permission(IntEnum):
    """What a user may do with a repository's results; ordered, so `>=` reads as "at least"."""

    NONE = 0
    READ = 1
    WRITE = 2


def permission_of(repository: Any) -> Permission:
    """`permissions.push` / `pull` of a `GET /repos/{owner}/{repo}` answer (pure)."""
    permissions = repository.get("permissions") if isinstance(repository, dict) else None
    if not isinstance(permissions, dict):
        return Permission.NONE
    if permissions.get("push") is True or permissions.get("admin") is True:
        return Permission.WRITE
    if permissions.get("pull") is True:
        return Permission.READ
    return Permission.NONE


@dataclass(frozen=True)
class Token:
    """A user token; `expires_at` None when it does not expire (user token expiry turned off)."""

    access: str
    refresh: str | None
    expires_at: float | None

    @classmethod
    def from_oauth(cls, answer: dict[str, Any]) -> Token:
        access = answer.get("access_token")
        if not isinstance(access, str) or not access:
            raise GitHubUserFailed("GitHub gave no access token")
        refresh = answer.get("refresh_token")
        expires_in = answer.get("expires_in")
        expires_at = (
            time.time() + float(expires_in) if isinstance(expires_in, int | float | str) else None
        )
        return cls(access, refresh if isinstance(refresh, str) and refresh else None, expires_at)

    def to_json(self) -> dict[str, Any]:
        return {"access": self.access, "refresh": self.refresh, "expires_at": self.expires_at}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Token:
        return cls(str(data["access"]), data.get("refresh"), data.get("expires_at"))

    def expiring(self, now: float, margin: float = 60.0) -> bool:
        return self.expires_at is not None and self.expires_at - margin <= now


@dataclass(frozen=True)
class UserRepository:
    full_name: str
    private: bool
    permission: Permission


class GitHubUser:
    """The OAuth client of the app and the REST calls made with a user's token."""

    def __init__(
        self, client_id: str, client_secret: str, web_url: str, api_url: str, redirect_uri: str
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.web_url = web_url.rstrip("/")
        self.api_url = api_url.rstrip("/")
        self.redirect_uri = redirect_uri

    def _oauth(self) -> OAuth2Session:
        return OAuth2Session(
            self.client_id,
            self.client_secret,
            token_endpoint_auth_method="client_secret_post",
            redirect_uri=self.redirect_uri,
        )

    def authorize_url(self, state: str) -> str:
        """Where to send the browser: GitHub's authorize page, carrying `state` back."""
        with self._oauth() as client:
            url, _ = client.create_authorization_url(
                f"{self.web_url}/login/oauth/authorize", state=state
            )
        return str(url)

    def exchange(self, code: str) -> Token:
        """The user token for the callback's `code`."""
        try:
            with self._oauth() as client:
                answer = client.fetch_token(
                    f"{self.web_url}/login/oauth/access_token", code=code, timeout=TIMEOUT
                )
        except (OAuthError, requests.RequestException, ValueError) as e:
            raise GitHubUserFailed(f"cannot sign in: {e}") from None
        return Token.from_oauth(dict(answer))

    def refresh(self, token: Token) -> Token:
        """A new token from `token`'s refresh token; GitHubUserFailed when GitHub refuses."""
        if token.refresh is None:
            raise GitHubUserFailed("the token has expired and cannot be refreshed")
        try:
            with self._oauth() as client:
                answer = client.refresh_token(
                    f"{self.web_url}/login/oauth/access_token",
                    refresh_token=token.refresh,
                    timeout=TIMEOUT,
                )
        except (OAuthError, requests.RequestException, ValueError) as e:
            raise GitHubUserFailed(f"cannot refresh the sign-in: {e}") from None
        return Token.from_oauth(dict(answer))

    def _get(self, token: Token, path: str, **params: Any) -> requests.Response:
        try:
            return requests.get(
                f"{self.api_url}{path}",
                params=params or None,
                headers={
                    "Authorization": f"Bearer {token.access}",
                    "Accept": "application/vnd.github+json",
                    "X-GitHub-Api-Version": "2022-11-28",
                },
                timeout=TIMEOUT,
                allow_redirects=False,
            )
        except requests.RequestException as e:
            raise GitHubUserFailed(f"GitHub cannot be reached: {type(e).__name__}") from None

    def _json(self, token: Token, path: str, **params: Any) -> Any:
        answer = self._get(token, path, **params)
        if answer.status_code != 200:
            raise GitHubUserFailed(f"GitHub answered {answer.status_code} to GET {path}")
        try:
            return answer.json()
        except ValueError:
            raise GitHubUserFailed(f"GitHub's answer to GET {path} is not JSON") from None

    def user(self, token: Token) -> tuple[int, str]:
        """(id, login) of the token's user."""
        found = self._json(token, "/user")
        if not isinstance(found, dict):
            raise GitHubUserFailed("GET /user did not answer a user")
        user_id, login = found.get("id"), found.get("login")
        if not isinstance(user_id, int) or not isinstance(login, str) or not login:
            raise GitHubUserFailed("GET /user did not answer a user")
        return user_id, login

    def permission(self, token: Token, full_name: str) -> Permission:
        """What the user may do with `full_name` on GitHub (404, or 403 of a policy: none)."""
        owner, _, name = full_name.partition("/")
        answer = self._get(token, f"/repos/{_part(owner)}/{_part(name)}")
        if answer.status_code in (403, 404):
            return Permission.NONE
        if answer.status_code != 200:
            raise GitHubUserFailed(f"GitHub answered {answer.status_code} about {full_name}")
        try:
            return permission_of(answer.json())
        except ValueError:
            raise GitHubUserFailed(f"GitHub's answer about {full_name} is not JSON") from None

    def installed_repositories(self, token: Token) -> list[UserRepository]:
        """The repositories of the user's installations of this app that the user may access."""
        found: dict[str, UserRepository] = {}
        installations = self._json(token, "/user/installations", per_page=100)
        items = installations.get("installations") if isinstance(installations, dict) else None
        for installation in items if isinstance(items, list) else []:
            installation_id = installation.get("id") if isinstance(installation, dict) else None
            if not isinstance(installation_id, int):
                continue
            for page in range(1, MAX_PAGES + 1):
                listing = self._json(
                    token,
                    f"/user/installations/{installation_id}/repositories",
                    per_page=100,
                    page=page,
                )
                repos = listing.get("repositories") if isinstance(listing, dict) else None
                if not isinstance(repos, list):
                    break
                for repo in repos:
                    name = repo.get("full_name") if isinstance(repo, dict) else None
                    if isinstance(name, str) and "/" in name:
                        found[name.lower()] = UserRepository(
                            name, repo.get("private") is not False, permission_of(repo)
                        )
                if len(repos) < 100:
                    break
        return sorted(found.values(), key=lambda r: r.full_name.lower())


def _part(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")
