"""Why a delivery is refused: each error maps to one HTTP answer in the views.

They belong to the DockerciseError family so that the one catch-all at each
entry point never shows them as a traceback.
"""

from __future__ import annotations

from runner.errors import DockerciseError

__all__ = ["BodyNotJSON", "HeaderInvalid", "PayloadInvalid", "SignatureInvalid", "WebhookError"]


class WebhookError(DockerciseError):
    """Base of every reason a webhook delivery is refused."""


class SignatureInvalid(WebhookError):
    """The body is not signed with our secret (HTTP 401); nothing of it may be trusted or parsed."""


class PayloadInvalid(WebhookError):
    """A signed payload lacks a field or has one of the wrong type (HTTP 400).

    `field` is the dotted path of the offending value (`repository.full_name`,
    `commits.0.added`), so the sender can see at once what to fix.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class HeaderInvalid(WebhookError):
    """A signed delivery lacks a required header or has a malformed one (HTTP 400)."""

    def __init__(self, header: str, problem: str) -> None:
        self.header = header
        self.problem = problem
        super().__init__(f"header {header}: {problem}")


class BodyNotJSON(WebhookError):
    """A signed body that does not decode as JSON (HTTP 400)."""

    def __init__(self) -> None:
        super().__init__("body is not JSON (set the webhook's content type to application/json)")
