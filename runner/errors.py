"""The DockerciseError family: one class per kind of mistake a user can make.

Each error carries the exit code `dockercise run` ends with (SPEC §9), so the
single catch-all in the CLI never has to guess.
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.wording import escape, quote

__all__ = [
    "BuildFailed",
    "BuildTimedOut",
    "ContainerFailed",
    "CycleError",
    "DockerciseError",
    "EngineUnavailable",
    "ImageUnavailable",
    "MissingVariables",
    "NetworkFailed",
    "PipelineInvalid",
    "Problem",
    "Refused",
    "SecretInvalid",
    "StoreUnavailable",
    "UsageError",
]


class ContainerFailed(Exception):
    """Docker (not the stage's script) failed; the message is the stage's `error` reason."""


class ImageUnavailable(ContainerFailed):
    """A stage's image is not on the engine and cannot be pulled (the stage's `error` reason)."""


class BuildFailed(Exception):
    """A stage's Dockerfile did not build; the message is the builder's, the stage fails."""


class BuildTimedOut(BuildFailed):
    """A stage's image build ran past the stage's timeout and was stopped (reason `timeout`)."""

    def __init__(self) -> None:
        super().__init__("timeout")


class Refused(Exception):
    """A run's policy refuses what a stage asks for (a host path, a build context); it fails.

    Raised where the path is used, right before the engine would follow it
    (`runner.confine`); the message is the stage's one-line reason.
    """


class DockerciseError(Exception):
    """Base of every error a user can cause or fix; never shown as a traceback."""

    exit_code = 2


@dataclass(frozen=True, order=True)
class Problem:
    """One mistake in a pipeline file, printed as `FILE:LINE: stage 'NAME': what (way out)`."""

    file: str
    line: int
    stage: str | None
    message: str

    def __str__(self) -> str:
        """One line, whatever the file's name, the stage's name or the message hold.

        Values in messages are quoted with `wording.quote` where the message
        is made; escaping the whole line again here only guards that promise.
        """
        file = escape(self.file)
        where = f"{file}:{self.line}" if self.line else file
        who = f" stage {quote(self.stage)}:" if self.stage is not None else ""
        return f"{where}:{who} {escape(self.message)}"

    def sort_key(self) -> tuple[str, int, str, str]:
        """File, line, stage, message: a stage name that is not a string never compares."""
        return (self.file, self.line, self.stage or "", self.message)


class PipelineInvalid(DockerciseError):
    """The pipeline files have one or more problems; all of them are reported.

    The only error `runner.pipeline.load` raises, whatever the files hold.
    """

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(set(problems), key=Problem.sort_key)
        super().__init__("\n".join(str(p) for p in self.problems))


class CycleError(DockerciseError):
    """The stages depend on each other in a circle; `cycle` lists it, first node repeated."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__("dependency cycle: " + " -> ".join(cycle))


class MissingVariables(DockerciseError):
    """External variables that stages ask for are not set anywhere (SPEC §3)."""

    def __init__(self, missing: dict[str, list[str]]) -> None:
        self.missing = missing
        parts = [
            f"{var} (wanted by {', '.join(stages)})" for var, stages in sorted(missing.items())
        ]
        super().__init__(
            "missing variable"
            + ("s" if len(parts) > 1 else "")
            + ": "
            + "; ".join(parts)
            + " (set it in the environment, with --env NAME=VALUE or --env-file FILE)"
        )


class SecretInvalid(DockerciseError):
    """`secure:` values that cannot be decrypted, or a missing or malformed key (SPEC §5).

    `problems` holds one line per bad value, naming the variable and where it
    stands; never the key or a plaintext.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class UsageError(DockerciseError):
    """A bad command-line argument (unknown target, unreadable env file...)."""


class EngineUnavailable(DockerciseError):
    """The Docker engine cannot be reached at all; nothing can run."""

    exit_code = 3


class NetworkFailed(DockerciseError):
    """The engine would not make a run's own network; nothing of the run can start."""

    exit_code = 3


class StoreUnavailable(DockerciseError):
    """The results store cannot be written or read."""

    exit_code = 3
