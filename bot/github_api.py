"""The only module that talks to GitHub (PyGithub): app auth, installation tokens, statuses.

Tokens come from `Auth.AppInstallationAuth`, which fetches a new one when
the current one is within 20 seconds of its hour running out; `GITHUB_API_URL`
points everything at GitHub Enterprise (or, in tests, at a fake on 127.0.0.1).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from github import Auth, Github, GithubException, GithubIntegration
from github.GithubObject import NotSet

from bot.statuses import CommitStatus
from runner.errors import DockerciseError
from runner.pipeline import is_pipeline_path

__all__ = ["GitHubApp", "GitHubFailed", "Installation"]


class GitHubFailed(DockerciseError):
    """GitHub refused or could not be reached; the build ends as `error` with this reason."""


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
                    auth = self.app_auth.get_installation_auth(installation_id)
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
