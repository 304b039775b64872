"""The bot's web process: webhooks in, recorded for the queue's consumers, the results site out.

A delivery is verified, parsed and recorded (durably, deduplicated), and
answered: nothing else. The consumers' announcers (`bot.announce`) take it
from there, so no GitHub round trip is ever paid for by a webhook.

`create_bot_app()` is what gunicorn serves (`gunicorn 'bot.web:create_bot_app()'`);
`dockercise serve` serves the same app beside an in-process consumer.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Mapping

from flask import Flask

from bot.buttons import RunButtons
from bot.github_user import GitHubUser
from bot.jobs import Job, JobKind, job_for, rerun_job
from bot.queue import BotQueue, make_queue
from bot.sessions import StateSessions
from bot.settings import Settings, load_settings
from bot.site import Site
from bot.state import StateStore
from pages.blueprint import Locate, make_blueprint
from runner.store import open_store
from runner.store.base import ResultReader
from webhooks.app import WebhookConfig, create_app
from webhooks.events import (
    Event,
    PullRequestEvent,
    PushEvent,
    RemoteBuildComplete,
    RepositoryEvent,
    RerunRequested,
)

__all__ = ["create_bot_app"]

log = logging.getLogger("dockercise.bot")


def _stores(settings: Settings) -> Callable[[str], ResultReader | None]:
    def store_of(full_name: str) -> ResultReader | None:
        """The store of a repository the bot has built; None for any other."""
        url = f"{settings.results.rstrip('/')}/{full_name}"
        store = open_store(url, settings.data_dir, settings.environ)
        return store if store.run_ids() else None

    return store_of


def _locate(site: Site, stores: Callable[[str], ResultReader | None]) -> Locate:
    def locate(owner: str, repo: str) -> ResultReader | None:
        """A 404 (None) for a repository the viewer may not read, as for one never built."""
        full_name = f"{owner}/{repo}"
        return stores(full_name) if site.readable(full_name) else None

    return locate


def _note_privacy(state: StateStore, event: Event) -> None:
    """The latest delivery says whether the repository is private (SPEC §11)."""
    if not isinstance(event, PushEvent | PullRequestEvent | RepositoryEvent):
        return
    if state.is_private(event.repo_full_name) is not event.private:
        state.set_private(event.repo_full_name, event.private)


def _site(settings: Settings, state: StateStore) -> Site:
    github = None
    if settings.client_id and settings.client_secret:
        github = GitHubUser(
            settings.client_id,
            settings.client_secret,
            settings.web_url,
            settings.api_url,
            f"{settings.public_url}/login/callback",
        )
    return Site(state, github, _stores(settings), settings.public_url)


def _signing_key(settings: Settings) -> bytes:
    """Flask's secret key (CSRF tokens), the same in every web process of the bot."""
    secret = settings.client_secret or settings.webhook_secret
    return hmac.new(secret.encode(), b"dockercise results site", hashlib.sha256).digest()


def repeated_build(state: StateStore, event: RerunRequested) -> Job | None:
    """The build a Re-run on GitHub repeats: the one the check run's `external_id` names,
    if it is of that repository and commit, else the newest stored build of the commit
    (a schedule's watch check aside); None when the bot remembers none (SPEC §12)."""
    repo, sha = event.repo_full_name.casefold(), event.head_sha
    if event.external_id is not None:
        named = state.get(event.external_id)
        if named is not None and named.job.repo.casefold() == repo and named.job.sha == sha:
            return named.job
    for build in state.builds_of(event.repo_full_name, sha):
        if build.job.kind is not JobKind.WATCH:
            return build.job
    return None


def create_bot_app(
    env: Mapping[str, str] | None = None,
    settings: Settings | None = None,
    queue: BotQueue | None = None,
) -> Flask:
    """The bot's Flask app, its settings read once from `env` (default: the environment)."""
    settings = settings or load_settings(env)
    queue = queue or make_queue(settings)

    def on_github_event(event: Event) -> str | None:
        _note_privacy(queue.state, event)
        if isinstance(event, RerunRequested):
            rerun = rerun_job(event, repeated_build(queue.state, event))
            recorded = queue.state.record(rerun)
            return recorded if isinstance(recorded, str) else None
        job = job_for(event)
        if job is None:
            log.info("%s: %s", type(event).__name__, event)
            return "nothing to build"
        recorded = queue.state.record(job)  # a consumer's announcer queues it from here
        return recorded if isinstance(recorded, str) else None

    def on_dockercise_event(event: RemoteBuildComplete) -> str | None:
        log.info("remote build complete: %s %s %s", event.pipeline, event.status, event.run_id)
        body = event.to_json()
        fresh = queue.state.receive(
            event.run_id, event.pipeline, event.ref, event.sha, event.status, event.url
        )
        if not fresh:
            return "duplicate event"
        if event.status == "success":
            queue.upstream_green(body)  # builds of the subscribers, found off the request path
        return None

    site = _site(settings, queue.state)
    buttons = RunButtons(site)
    blueprints = [
        site.blueprint(),
        buttons.blueprint(),
        make_blueprint(_locate(site, site.stores), buttons.controls),
    ]
    app = create_app(
        WebhookConfig(
            github_secret=settings.webhook_secret,
            events_secret=settings.events_secret,
            on_github_event=on_github_event,
            on_dockercise_event=on_dockercise_event,
            extra_blueprints=blueprints,
        )
    )
    app.secret_key = _signing_key(settings)
    app.config["WTF_CSRF_TIME_LIMIT"] = None  # a token lives as long as its session
    app.session_interface = StateSessions(queue.state, settings.secure_cookies)
    return app
