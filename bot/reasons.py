"""What a build that went wrong says on its commit: one line, masked, no worker paths (pure).

SPEC §10: whatever goes wrong with one build ends it as `error` with a
one-line reason on the commit, and nothing the worker holds leaks through
it. Reasons are written by many hands (git's stderr, GitHub's answers, the
engine, a bug), so every one passes `Redactor` on its way to a status:
the first line only, control characters out, the bot's secrets and the
build's own masked (`runner.masking`), and the worker's own places (data
directory, checkout, results directory, dockercise's temp directories)
replaced by a neutral word, so a reason can name a file of the checkout
(`<checkout>/ci/.dockercise.yml`) without saying where the worker keeps it.

An exception that is not a `DockerciseError` is a bug or a library's
surprise: its text may hold anything (a file's bytes, a path, a value), so
only its type is shown, with the step of the build it broke (`crashed`);
the traceback goes to the bot's log, never to the commit.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from runner.masking import Masker

__all__ = ["PlaceMasker", "Redactor", "Step", "crashed"]

_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_AFTER_NAME = r"(?![\w.-])"
"""A place matches only as a whole path component: `/data` is not the start of `/database`."""


class Step(StrEnum):
    """The step of a build's life that went wrong; the value is said in its reason."""

    ANNOUNCE = "reading the pipeline"
    CHECKOUT = "checking out"
    LOAD = "loading the pipeline"
    RUN = "running"
    REPORT = "reporting"


class PlaceMasker(Masker):
    """A build's masker: secrets out, and the places only this build has (its checkout,
    dockercise's temp folders) replaced, in everything its run writes (logs, JSON).

    Only places no stage's output can name by chance: a data directory such as
    `/data` is replaced in statuses (`Redactor`), never in a stage's log.
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        super().__init__(values)
        self.hide: Callable[[str], str] = str

    def __call__(self, text: str) -> str:
        return self.hide(super().__call__(text))


def crashed(step: Step, error: BaseException) -> str:
    """The reason of an unexpected exception: its type and the step, never its text."""
    return f"internal error while {step} ({type(error).__name__})"


@dataclass(frozen=True)
class Redactor:
    """Text -> one line fit for a commit status: masked, worker places replaced."""

    masker: Masker = field(default_factory=Masker)
    rules: tuple[tuple[re.Pattern[str], str], ...] = ()
    """What each place looks like in text, longest first, and the word that replaces it."""

    @classmethod
    def of(
        cls,
        masker: Masker,
        places: Iterable[tuple[str, str]],
        temp: str | None = None,
    ) -> Redactor:
        """Places (absolute path, word) as given and resolved (a data dir given through a
        link), each matched only as whole path components; with `temp`, the temp directory's
        `dockercise-*` folders (dockercise's own: runs, spools) become `<temp>`."""
        found: dict[str, str] = {}
        for path, word in places:
            for spelling in _spellings(path):
                found.setdefault(spelling, word)
        ordered = sorted(found.items(), key=lambda item: len(item[0]), reverse=True)
        rules = [(re.compile(re.escape(path) + _AFTER_NAME), word) for path, word in ordered]
        for spelling in _spellings(temp) if temp else []:
            rules.append((re.compile(re.escape(spelling) + r"/dockercise-[^/\s'\"]*"), "<temp>"))
        return cls(masker, tuple(rules))

    def __call__(self, text: str) -> str:
        lines = [line for line in str(text).splitlines() if line.strip()]
        line = _CONTROLS.sub("", lines[0] if lines else "").strip()
        return self.scrub(line)

    def scrub(self, text: str) -> str:
        """`text` masked, with every worker place replaced by its word; its lines kept."""
        return self.hide_places(self.masker(text))

    def hide_places(self, text: str) -> str:
        """`text` with every worker place replaced by its word (secrets are not touched)."""
        for pattern, word in self.rules:
            text = pattern.sub(word, text)
        return text


def _spellings(path: str) -> list[str]:
    """`path` as given and resolved, without a trailing slash; none for `/` or a relative one.

    The one look at the file system here (resolving links), made once per build.
    """
    found = []
    for spelling in (path, os.path.realpath(path)):
        spelling = os.path.normpath(spelling)
        if spelling.startswith("/") and spelling != "/" and spelling not in found:
            found.append(spelling)
    return found
