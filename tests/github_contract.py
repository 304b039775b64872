"""GitHub's published REST contract, for checking what the bot sends to the fake GitHub.

The description is npm's `@octokit/openapi` (`generated/api.github.com.json`),
fetched by `scripts/setup --test`. A request it would refuse (an unknown path or
method, a body field of the wrong type or value, a missing required field, a
query parameter GitHub does not take) is a bug in the bot that a lenient fake
would hide, so the fake answers it 422 and records it, and the test fails.
openapi-core does the checking; this module only finds the file and words
the refusal in one line.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openapi_core import Config, OpenAPI
from openapi_core.exceptions import OpenAPIError
from openapi_core.testing import MockRequest
from werkzeug.wrappers import Request

__all__ = ["OPENAPI_VERSION", "ContractViolation", "check_request", "description_path"]

OPENAPI_VERSION = "23.0.2"
"""The @octokit/openapi release scripts/setup fetches; the two must agree."""

_API_HOST = "https://api.github.com"


@dataclass(frozen=True)
class ContractViolation:
    method: str
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.method} {self.path}: {self.problem}"


def description_path(environ: os._Environ[str] | dict[str, str] = os.environ) -> Path:
    """Where scripts/setup --test puts GitHub's OpenAPI description."""
    cache = environ.get("DOCKERCISE_TEST_CACHE") or str(
        Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dockercise-test"
    )
    return Path(cache) / f"octokit-openapi-{OPENAPI_VERSION}" / "api.github.com.json"


_lock = threading.Lock()
_api: OpenAPI | None = None


def _openapi() -> OpenAPI:
    global _api
    with _lock:
        if _api is None:
            path = description_path()
            if not path.is_file():
                raise RuntimeError(
                    f"GitHub's OpenAPI description is missing at {path}: run scripts/setup --test"
                )
            spec: dict[str, Any] = json.loads(path.read_text())
            # The description is GitHub's own: checking it again costs seconds per session.
            _api = OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))  # type: ignore[arg-type]
        return _api


def check_request(request: Request) -> ContractViolation | None:
    """The way GitHub's description refuses `request`, or None when it takes it."""
    body = request.get_data(cache=True)
    # The fake lives on 127.0.0.1; the description's server is api.github.com.
    as_github = MockRequest(
        _API_HOST,
        request.method,
        request.path,
        args=request.args.to_dict(flat=False),
        headers=dict(request.headers),
        data=body or None,
        content_type=request.mimetype or "application/json",
    )
    try:
        _openapi().validate_request(as_github)
    except OpenAPIError as error:
        return ContractViolation(request.method, request.path, _one_line(error))
    return None


def _one_line(error: BaseException) -> str:
    """openapi-core's message and the schema errors under it, whitespace folded."""
    parts = [str(error)]
    for link in (error, error.__cause__):
        parts += [str(e.message) for e in getattr(link, "schema_errors", ())]
    return "; ".join(" ".join(p.split()) for p in dict.fromkeys(parts))
