"""The only module that talks to GitHub (PyGithub): app auth, installation tokens, statuses,
check runs (SPEC §12).

Tokens come from `Auth.AppInstallationAuth`, which fetches a new one when
the current one is within 20 seconds of its hour running out; `GITHUB_API_URL`
points everything at GitHub Enterprise (or, in tests, at a fake on 127.0.0.1).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from github import Auth, Github, GithubException, GithubIntegration
from github.GithubObject import NotSet
from github.InstallationAuthorization import InstallationAuthorization

from bot.checks import CheckRun
from bot.statuses import CommitStatus
from runner.errors import DockerciseError
from runner.pipeline import is_pipeline_path

__all__ = ["ChecksRefused", "GitHubApp", "GitHubFailed", "Installation"]


class GitHubFailed(DockerciseError):
    """GitHub refused or could not be reached; the build ends as `error` with this reason."""


class ChecksRefused(GitHubFailed):
    """GitHub answered 403 to a check run: the installation has not granted `checks: write`
    (the bot reports with commit statuses instead, SPEC §12)."""


class _InstallationAuth(Auth.AppInstallationAuth):
    """An installation's auth that keeps the permissions GitHub returned with its token."""

    permissions: dict[str, str] | None = None

    def _get_installation_authorization(self) -> InstallationAuthorization:
        found: InstallationAuthorization = super()._get_installation_authorization()
        raw = found.raw_data.get("permissions")
        self.permissions = dict(raw) if isinstance(raw, dict) else {}
        return found


def _explain(e: Exception) -> str:
    if isinstance(e, GithubException):
        message = e.data.get("message") if isinstance(e.data, dict) else None
        return f"GitHub answered {e.status}" + (f": {message}" if message else "")
    return str(e) or type(e).__name__


@dataclass
class Installation:
    """Acting for one installation of the app (one account's repositories)."""

    auth: Auth.AppInstallationAuth
    client: Github
    checks_refused: bool = False
    """GitHub answered 403 to a check run of this installation: statuses from now on."""

    def checks_granted(self) -> bool:
        """Whether the installation's token may write check runs (its `permissions`)."""
        if self.checks_refused:
            return False
        self.token  # noqa: B018 - fetched (or refreshed) with its permissions
        permissions = getattr(self.auth, "permissions", None) or {}
        return permissions.get("checks") == "write"

    def _request(self, verb: str, url: str, body: dict[str, Any] | None = None,
                 parameters: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
        _, data = self.client.requester.requestJsonAndCheck(
            verb, url, parameters=parameters, input=body
        )
        return data if isinstance(data, dict) else {}

    def _check_call(self, what: str, verb: str, url: str, body: dict[str, Any] | None = None,
                    parameters: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
        try:
            return self._request(verb, url, body, parameters)
        except GithubException as e:
            if e.status == 403:
                self.checks_refused = True
                raise ChecksRefused(f"cannot {what}: {_explain(e)}") from None
            raise GitHubFailed(f"cannot {what}: {_explain(e)}") from None
        except OSError as e:
            raise GitHubFailed(f"cannot {what}: {_explain(e)}") from None

    def create_check_run(self, full_name: str, sha: str, check: CheckRun) -> int:
        """Create a check run on `sha`; its id."""
        body: dict[str, Any] = {
            "name": check.name,
            "head_sha": sha,
            "external_id": check.external_id,
            "status": check.status.value,
        }
        body.update(_check_fields(check))
        data = self._check_call(
            f"create the {check.name} check run", "POST", f"/repos/{full_name}/check-runs", body
        )
        check_id = data.get("id")
        if not isinstance(check_id, int):
            raise GitHubFailed(f"cannot create the {check.name} check run: no id in the answer")
        return check_id

    def update_check_run(self, full_name: str, check_id: int, check: CheckRun) -> None:
        body: dict[str, Any] = {
            "status": check.status.value,
            "external_id": check.external_id,  # an approved build takes over its twin's
            **_check_fields(check),
        }
        self._check_call(
            f"update the {check.name} check run",
            "PATCH",
            f"/repos/{full_name}/check-runs/{check_id}",
            body,
        )

    def find_check_run(self, full_name: str, sha: str, name: str, external_id: str) -> int | None:
        """The id of the check run `name` of `sha` made for build `external_id`, if any."""
        data = self._check_call(
            f"list the check runs of {sha[:12]}",
            "GET",
            f"/repos/{full_name}/commits/{sha}/check-runs",
            parameters={"check_name": name, "filter": "all", "per_page": 100},
        )
        for run in data.get("check_runs") or []:
            if isinstance(run, dict) and run.get("external_id") == external_id:
                found = run.get("id")
                return found if isinstance(found, int) else None
        return None

    def commit_message(self, full_name: str, sha: str) -> str:
        """The commit's message (`GET /repos/{owner}/{repo}/commits/{ref}`)."""
        try:
            data = self._request("GET", f"/repos/{full_name}/commits/{quote(sha, safe='')}")
        except (GithubException, OSError) as e:
            raise GitHubFailed(f"cannot read commit {sha[:12]}: {_explain(e)}") from None
        commit = data.get("commit")
        message = commit.get("message") if isinstance(commit, dict) else None
        return message if isinstance(message, str) else ""

    @property
    def token(self) -> str:
        """A live installation token (refreshed before it expires): for git over HTTPS."""
        try:
            return self.auth.token
        except (GithubException, OSError) as e:
            raise GitHubFailed(f"cannot get an installation token: {_explain(e)}") from None

    def post_status(self, full_name: str, sha: str, status: CommitStatus) -> None:
        try:
            commit = self.client.get_repo(full_name).get_commit(sha)
            commit.create_status(
                state=status.state,
                # No URL, no field: an empty `target_url` is a link to nowhere.
                target_url=status.target_url if status.target_url else NotSet,
                description=status.description,
                context=status.context,
            )
        except (GithubException, OSError) as e:
            raise GitHubFailed(f"cannot post the {status.context} status: {_explain(e)}") from None

    def pipeline_files(self, full_name: str, sha: str) -> dict[str, str] | None:
        """The commit's pipeline files (path -> text), read through the API: no clone needed.

        None when GitHub cut the recursive tree short (`truncated`): the caller
        lists the files from a mirror instead, which never misses one (SPEC §13).
        """
        try:
            repo = self.client.get_repo(full_name)
            tree = repo.get_git_tree(sha, recursive=True)
            if tree.raw_data.get("truncated"):
                return None
            paths = [e.path for e in tree.tree if e.type == "blob" and is_pipeline_path(e.path)]
            found = {}
            for path in paths:
                content = repo.get_contents(path, ref=sha)
                if not isinstance(content, list):  # a list would mean a folder
                    found[path] = content.decoded_content.decode("utf-8", "replace")
            return found
        except (GithubException, OSError) as e:
            raise GitHubFailed(f"cannot read the pipeline of {sha[:12]}: {_explain(e)}") from None

    def is_collaborator(self, full_name: str, login: str) -> bool:
        """Whether `login` is a collaborator of the repository (GitHub: 204 yes, 404 no)."""
        try:
            return bool(self.client.get_repo(full_name).has_in_collaborators(login))
        except (GithubException, OSError) as e:
            raise GitHubFailed(f"cannot ask whether {login} collaborates: {_explain(e)}") from None

    def default_branch_head(self, full_name: str) -> tuple[str, str]:
        """(branch, sha) of the repository's default branch."""
        try:
            repo = self.client.get_repo(full_name)
            branch = repo.default_branch
            return branch, repo.get_branch(branch).commit.sha
        except (GithubException, OSError) as e:
            raise GitHubFailed(f"cannot read {full_name}: {_explain(e)}") from None

    def default_branch(self, full_name: str) -> str:
        """The repository's default branch (what `remote: owner/repo` waits for)."""
        try:
            return str(self.client.get_repo(full_name).default_branch)
        except (GithubException, OSError) as e:
            raise GitHubFailed(f"cannot read {full_name}: {_explain(e)}") from None


class GitHubApp:
    """One per process: installations (and so their tokens) are kept and reused."""

    def __init__(self, app_id: int, private_key: str, api_url: str) -> None:
        self.app_auth = Auth.AppAuth(app_id, private_key)
        self.api_url = api_url
        self._installations: dict[int, Installation] = {}
        self._lock = threading.Lock()

    def installation(self, full_name: str, installation_id: int | None = None) -> Installation:
        """Act for the installation that covers `full_name` (looked up unless given).

        Its token is kept until 20 seconds before it expires, so builds share it.
        """
        try:
            if installation_id is None:
                installation_id = self._installation_id(full_name)
            with self._lock:
                known = self._installations.get(installation_id)
                if known is None:
                    auth = _InstallationAuth(self.app_auth, installation_id)
                    # PyGithub waits 1 s between writes by default, which caps a worker at
                    # ~30 builds a minute; GitHub asks for restraint with content-creating
                    # requests (secondary rate limits), so writes keep a short spacing.
                    client = Github(
                        auth=auth,
                        base_url=self.api_url,
                        lazy=True,
                        seconds_between_requests=None,
                        seconds_between_writes=0.25,
                    )
                    known = self._installations[installation_id] = Installation(auth, client)
            return known
        except (GithubException, OSError) as e:
            raise GitHubFailed(f"the app is not installed for {full_name}: {_explain(e)}") from None

    def _installation_id(self, full_name: str) -> int:
        owner, repo = full_name.split("/", 1)
        integration = GithubIntegration(auth=self.app_auth, base_url=self.api_url)
        return int(integration.get_repo_installation(owner, repo).id)

    def installation_id_of(self, full_name: str) -> int | None:
        """The id of the installation that covers `full_name`; None where the app is not
        installed (SPEC §10: `upstream` and `remote` see only their own installation)."""
        try:
            return self._installation_id(full_name)
        except GithubException as e:
            if e.status == 404:
                return None
            raise GitHubFailed(
                f"cannot find the installation of {full_name}: {_explain(e)}"
            ) from None
        except OSError as e:
            raise GitHubFailed(
                f"cannot find the installation of {full_name}: {_explain(e)}"
            ) from None


def _check_fields(check: CheckRun) -> dict[str, Any]:
    """The optional fields of a check run's create or update, only those that have a value."""
    body: dict[str, Any] = {}
    if check.details_url:
        body["details_url"] = check.details_url
    if check.conclusion is not None:
        body["conclusion"] = check.conclusion.value
    output = check.output()
    if output is not None:
        body["output"] = output
    return body
