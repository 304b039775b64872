"""The results website as a Flask app of its own (`dockercise serve-results`).

The bot's app mounts the same pages with `app.register_blueprint(make_blueprint(locate))`;
this factory is for when the site is all there is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from pages.blueprint import Locate, make_blueprint, secure

__all__ = ["create_results_app"]


def create_results_app(locate: Locate, config: Mapping[str, Any] | None = None) -> Flask:
    """An app serving /results/... for the pipelines `locate` knows; `config` overrides defaults."""
    app = Flask(__name__, static_folder=None)  # the blueprint brings its own static files
    app.config.update(config or {})
    app.register_blueprint(make_blueprint(locate))
    app.after_request(secure)  # errors outside the blueprint's routes (404, 405) included
    return app
