"""Stable addresses of results pages (pure): what commit statuses and the CLI link to.

The blueprint serves exactly these paths (`PREFIX` is where it is mounted);
each part is percent-encoded whole, so a stage or pipeline name such as `☃`
or `a b` survives, and a `/` inside a part can never change the path.
"""

from __future__ import annotations

from urllib.parse import quote

__all__ = [
    "LOCAL_OWNER",
    "PREFIX",
    "build_url",
    "local_run_url",
    "results_url",
    "run_url",
    "runs_url",
]

PREFIX = "/results"
LOCAL_OWNER = "local"
"""The owner part of a local pipeline's pages: `/results/local/<pipeline name>/`."""


def _part(value: str) -> str:
    return quote(value, safe="")


def runs_url(public_url: str, owner: str, repo: str) -> str:
    """The pipeline's run list."""
    return f"{public_url.rstrip('/')}{PREFIX}/{_part(owner)}/{_part(repo)}/"


def run_url(public_url: str, owner: str, repo: str, run_id: str) -> str:
    """One run's page: `<public_url>/results/<owner>/<repo>/run/<runId>`."""
    return f"{runs_url(public_url, owner, repo)}run/{_part(run_id)}"


def results_url(public_url: str, repo: str, run_id: str) -> str:
    """A bot build's run page, for `repo` as `owner/name`: what its commit statuses link to."""
    owner, name = repo.split("/", 1)
    return run_url(public_url, owner, name, run_id)


def build_url(public_url: str, repo: str, build_id: str) -> str:
    """A bot build's own page (`/results/<owner>/<repo>/build/<id>`): for a build with no run
    yet, such as a fork's waiting for approval; it leads to the run once there is one."""
    owner, name = repo.split("/", 1)
    return f"{runs_url(public_url, owner, name)}build/{_part(build_id)}"


def local_run_url(public_url: str, pipeline: str, run_id: str) -> str:
    """One local run's page: `<public_url>/results/local/<pipeline name>/run/<runId>`."""
    return run_url(public_url, LOCAL_OWNER, pipeline, run_id)
