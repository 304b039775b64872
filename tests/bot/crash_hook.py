"""`dockercise` with crashes injected: `python -m tests.bot.crash_hook serve --port N`.

The bot's end-to-end tests run the real processes; to see what a bug or a
hostile commit does to a build in each step of its life, this launcher
patches the step named by the repository (`*/hostile-<step>` crashes in that
step; every other repository builds as usual) and then runs the command
line as `dockercise` does. Nothing of this is in the bot itself.

Environment:
- DOCKERCISE_TEST_CRASH_TEXT: the crash's message (tests put a worker path
  and secrets in it, to see that none reaches the commit);
- DOCKERCISE_TEST_CRASH_KIND: `bug` (a RuntimeError, the default) or
  `dockercise` (a DockerciseError, whose text the bot shows, redacted);
- DOCKERCISE_TEST_LEASE: seconds of the announcers' lease (default: the bot's).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import bot.announce
import bot.builds
import bot.checkout
import bot.statuses
from bot.reasons import Step
from cli.main import main
from runner import pipeline as real_pipeline
from runner.errors import DockerciseError

MARKER = "hostile-"


def _crash(where: str) -> Exception:
    text = os.environ.get("DOCKERCISE_TEST_CRASH_TEXT", "injected crash") + f" ({where})"
    if os.environ.get("DOCKERCISE_TEST_CRASH_KIND") == "dockercise":
        return DockerciseError(text)
    return RuntimeError(text)


def _hostile(text: str, step: Step) -> bool:
    return f"{MARKER}{step.name.lower()}" in text


class _Loader:
    """runner.pipeline as one module sees it, its loading crashing for a hostile repository."""

    def __init__(self, step: Step) -> None:
        self.step = step

    def __getattr__(self, name: str) -> Any:
        return getattr(real_pipeline, name)

    def load(self, path: Path, *args: Any, **kwargs: Any) -> Any:
        texts = [
            p.read_text(errors="replace")
            for p in Path(path).rglob("*")
            if p.is_file() and ".git" not in p.parts
        ]
        if any(_hostile(t, self.step) for t in texts):
            raise _crash(f"{self.step.name.lower()} {path}")
        return real_pipeline.load(path, *args, **kwargs)

    def load_texts(self, files: dict[str, str], *args: Any, **kwargs: Any) -> Any:
        if any(_hostile(t, self.step) for t in files.values()):
            raise _crash(self.step.name.lower())
        return real_pipeline.load_texts(files, *args, **kwargs)


def install() -> None:
    lease = os.environ.get("DOCKERCISE_TEST_LEASE")
    if lease:
        bot.announce.Announcer.LEASE = float(lease)
    # announce and load: a pipeline file holding `hostile-announce` / `hostile-load`
    setattr(bot.announce, "pipelines", _Loader(Step.ANNOUNCE))  # noqa: B010
    setattr(bot.builds, "pipelines", _Loader(Step.LOAD))  # noqa: B010

    real_checkout = bot.checkout.Mirrors.checkout

    def checkout(self: bot.checkout.Mirrors, repo: str, url: str, *args: Any) -> Any:
        if _hostile(url, Step.CHECKOUT):
            raise _crash(f"checkout of {args} with token {args[-1]}")
        return real_checkout(self, repo, url, *args)

    bot.checkout.Mirrors.checkout = checkout  # type: ignore[method-assign,assignment]

    real_run = bot.builds.Builder._engine_run

    def engine_run(self: bot.builds.Builder, job: Any, *args: Any, **kwargs: Any) -> Any:
        if _hostile(job.repo, Step.RUN):
            raise _crash(f"run in {args[1]}")
        return real_run(self, job, *args, **kwargs)

    bot.builds.Builder._engine_run = engine_run  # type: ignore[method-assign]

    real_for_run = bot.statuses.for_run

    def for_run(run: Any, target_url: str | None) -> Any:
        if _hostile(target_url or "", Step.REPORT):
            raise _crash("report")
        return real_for_run(run, target_url)

    bot.statuses.for_run = for_run


if __name__ == "__main__":
    install()
    main()
