"""Signed `remote-build-complete` events out (SPEC §8, §10), and builds for the pipelines that wait.

`send_event` raises DeliveryFailed when trying again may help (the queue
retries it with backoff) and DeliveryRefused when it cannot: SPEC §10
forbids the URL or its address, or the receiver answered no (a 4xx, or a
redirect, which is never followed).
"""

from __future__ import annotations

import json
import logging

from bot.destinations import Allowance
from bot.github_api import GitHubApp
from bot.jobs import Job, JobKind, new_build_id
from bot.sending import DeliveryFailed, DeliveryRefused, post
from bot.state import StateStore
from runner.downstream import MAX_URLS, UrlInvalid, parse_target
from runner.errors import DockerciseError
from webhooks.verify import sign

__all__ = ["downstream_jobs", "downstream_targets", "send_event"]

log = logging.getLogger("dockercise.bot")


def send_event(url: str, event: dict[str, str], secret: str, allowance: Allowance | None) -> None:
    """POST the signed event to `url`; `allowance` None for the bot's own URL (not judged)."""
    body = json.dumps(event).encode()
    try:
        target = parse_target(url)
    except UrlInvalid as e:
        raise DeliveryRefused(f"{url!r} {e}") from None
    headers = {"X-Dockercise-Signature-256": sign(body, secret)}
    status = post(target, body, headers, allowance)
    if 200 <= status < 300:
        return
    if status >= 500 or status in (408, 429):
        raise DeliveryFailed(f"{target} answered {status}")
    redirect = " (a redirect: not followed)" if 300 <= status < 400 else ""
    raise DeliveryRefused(f"{target} answered {status}{redirect}")


def downstream_targets(own_url: str, downstream: tuple[str, ...], signed: bool) -> list[str]:
    """The `meta.downstream` URLs an event goes to: each once, never the bot's own again,
    at most MAX_URLS (the loader refuses more), and none when `signed` is False: without
    its own DOCKERCISE_EVENTS_SECRET the bot sends no event beyond itself (SPEC §10)."""
    urls = [u for u in dict.fromkeys(downstream) if u != own_url][:MAX_URLS]
    if urls and not signed:
        log.warning(
            "not sending to meta.downstream (%d URL(s)): DOCKERCISE_EVENTS_SECRET is not set",
            len(urls),
        )
        return []
    return urls


def downstream_jobs(state: StateStore, github: GitHubApp, event: dict[str, str]) -> list[Job]:
    """Builds of every known pipeline whose `meta.on.upstream` names the finished one.

    Each builds the head of its default branch; the trigger records the upstream run.
    Only pipelines of the upstream's own installation are started (SPEC §10).
    """
    try:
        upstream_installation = github.installation_id_of(event["pipeline"])
    except DockerciseError as e:
        log.warning("cannot start the subscribers of %s: %s", event["pipeline"], e)
        return []
    jobs = []
    for known in state.subscribers(event["pipeline"]):
        if upstream_installation is None or known.installation_id != upstream_installation:
            log.info("%s is of another installation than %s", known.repo, event["pipeline"])
            continue
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
                fork=False,  # the subscriber's own default branch, whoever built upstream
                trigger={
                    "pipeline": event["pipeline"],
                    "run_id": event["run_id"],
                    "url": event["url"],
                    "default_branch": branch,
                },
            )
        )
    return jobs
