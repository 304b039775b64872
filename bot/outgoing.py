"""Signed `remote-build-complete` events out (SPEC §8), and builds for the pipelines that wait.

`send_event` raises on any failure so that the queue retries it with backoff.
"""

from __future__ import annotations

import json
import logging
import urllib.request

from bot.github_api import GitHubApp
from bot.jobs import Job, JobKind, new_build_id
from bot.state import StateStore
from webhooks.verify import sign

__all__ = ["downstream_jobs", "each_target", "send_event"]

log = logging.getLogger("dockercise.bot")


def send_event(url: str, event: dict[str, str], secret: str, timeout: float = 10) -> None:
    body = json.dumps(event).encode()
    request = urllib.request.Request(
        url,
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Dockercise-Signature-256": sign(body, secret),
            "User-Agent": "dockercise",
        },
    )
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        answer.read()


def downstream_jobs(state: StateStore, github: GitHubApp, event: dict[str, str]) -> list[Job]:
    """Builds of every known pipeline whose `meta.on.upstream` names the finished one.

    Each builds the head of its default branch; the trigger records the upstream run.
    """
    jobs = []
    for known in state.subscribers(event["pipeline"]):
        try:
            installation = github.installation(known.repo, known.installation_id)
            branch, sha = installation.default_branch_head(known.repo)
        except Exception:  # one subscriber GitHub cannot answer for must not stop the others
            log.exception("cannot start %s after %s", known.repo, event["pipeline"])
            continue
        jobs.append(
            Job(
                id=new_build_id(),
                kind=JobKind.UPSTREAM,
                repo=known.repo,
                clone_url=known.clone_url,
                ref=f"refs/heads/{branch}",
                sha=sha,
                branch=branch,
                installation_id=known.installation_id,
                trigger={
                    "pipeline": event["pipeline"],
                    "run_id": event["run_id"],
                    "url": event["url"],
                    "default_branch": branch,
                },
            )
        )
    return jobs


def each_target(own_url: str, downstream: tuple[str, ...]) -> list[str]:
    """The bot itself first, then every `meta.downstream` URL, each once."""
    return list(dict.fromkeys([own_url, *downstream]))
