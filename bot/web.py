"""The bot's web process: webhooks in, recorded for the queue's consumers, the results site out.

A delivery is verified, parsed and recorded (durably, deduplicated), and
answered: nothing else. The consumers' announcers (`bot.announce`) take it
from there, so no GitHub round trip is ever paid for by a webhook.

`create_bot_app()` is what gunicorn serves (`gunicorn 'bot.web:create_bot_app()'`);
`dockercise serve` serves the same app beside an in-process consumer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from flask import Flask

from bot.jobs import job_for
from bot.queue import BotQueue, make_queue
from bot.settings import Settings, load_settings
from runner.store import open_store
from runner.store.base import ResultReader
from webhooks.app import WebhookConfig, create_app
from webhooks.events import Event, RemoteBuildComplete

__all__ = ["create_bot_app"]

log = logging.getLogger("dockercise.bot")


def _locate(settings: Settings) -> Callable[[str, str], ResultReader | None]:
    def locate(owner: str, repo: str) -> ResultReader | None:
        """The store of a repository the bot has built; None (a 404) for any other."""
        url = f"{settings.results.rstrip('/')}/{owner}/{repo}"
        store = open_store(url, settings.data_dir, settings.environ)
        return store if store.run_ids() else None

    return locate


def create_bot_app(
    env: Mapping[str, str] | None = None,
    settings: Settings | None = None,
    queue: BotQueue | None = None,
) -> Flask:
    """The bot's Flask app, its settings read once from `env` (default: the environment)."""
    settings = settings or load_settings(env)
    queue = queue or make_queue(settings)

    def on_github_event(event: Event) -> str | None:
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

    blueprints = []
    try:
        from pages.blueprint import make_blueprint

        blueprints.append(make_blueprint(_locate(settings)))
    except ImportError:  # pragma: no cover - the results site ships with the bot
        log.warning("results website not available")
    return create_app(
        WebhookConfig(
            github_secret=settings.webhook_secret,
            events_secret=settings.events_secret,
            on_github_event=on_github_event,
            on_dockercise_event=on_dockercise_event,
            extra_blueprints=blueprints,
        )
    )
