"""The only module that uses GitPython: a checkout of one commit, and nothing of the token left.

The installation token travels in an `Authorization` header given to git
through its environment (GIT_CONFIG_COUNT/KEY/VALUE), so it is never in the
command line, never in `.git/config`, and never in the checkout a stage sees.
"""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import git

from runner.errors import DockerciseError

__all__ = ["CheckoutFailed", "checkout"]


class CheckoutFailed(DockerciseError):
    """git could not fetch the commit; the build ends as `error` with this reason."""


def _auth_env(token: str | None) -> dict[str, str]:
    if not token:
        return {}
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.extraHeader",
        "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
        "GIT_TERMINAL_PROMPT": "0",
    }


def _tell(e: git.GitCommandError, token: str | None) -> str:
    text = str(e.stderr or e).strip().splitlines()
    last = next((line for line in reversed(text) if line.strip()), "git failed")
    last = re.sub(r"^\s*stderr: ", "", last).strip(" '")
    return last.replace(token, "***") if token else last


def checkout(url: str, ref: str, sha: str, into: Path, token: str | None) -> Path:
    """Fetch `ref` from `url` and check out exactly `sha` into `into` (created, must not exist).

    A pull request is fetched as `refs/pull/N/head` from the base repository.
    """
    into.mkdir(parents=True)
    env = _auth_env(token)
    try:
        repo = git.Repo.init(into)
        with repo.git.custom_environment(**env):
            repo.git.fetch("--quiet", "--no-tags", url, f"+{ref}:refs/dockercise/build")
        repo.git.checkout("--quiet", "--detach", sha)
        repo.close()
    except git.GitCommandError as e:
        shutil.rmtree(into, ignore_errors=True)
        raise CheckoutFailed(f"cannot check out {sha[:12]} ({ref}): {_tell(e, token)}") from None
    return into
