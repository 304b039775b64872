"""What a run page offers besides reading it: the bot's buttons (SPEC §11), as plain values.

The results pages know nothing of users or builds: the bot passes
`make_blueprint` a `Controls` function, which says for one run page which
buttons to show (each a POST form with the site's CSRF token) and a note on
what was asked of the build. `dockercise serve-results` passes none, so its
pages have no buttons.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["NO_CONTROLS", "Button", "Controls", "RunControls"]


@dataclass(frozen=True)
class Button:
    """A POST form of one button: `label` on it, `action` the URL, `name` its CSS class."""

    label: str
    action: str
    name: str


@dataclass(frozen=True)
class RunControls:
    buttons: tuple[Button, ...] = ()
    note: str | None = None
    """A line on the build's state that the run's own files do not say yet (a cancel asked)."""


NO_CONTROLS = RunControls()

Controls = Callable[[str, str, str, Mapping[str, Any]], RunControls]
"""(owner, repo, run id, the run's run.json) -> what the page offers its viewer."""
