"""`remote` stages in a bot build: what each waits for, within its installation (SPEC §2, §10).

A bot serves many installations (accounts), and a pipeline names any
`owner/repo` it likes; so before the run, each remote stage's repository is
checked to belong to the build's own installation (a stage that names
another one fails before it starts, saying so), and `remote: owner/repo`
without `@branch` is pinned to that repository's default branch.  During
the run, `RemoteScope` answers the engine from the events the bot received;
a fork's build never sends one (`bot.builds`), so a fork cannot satisfy it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bot.state import StateStore
from runner.errors import DockerciseError
from runner.model import Pipeline
from runner.remote import RemoteRefused, parse_remote

__all__ = ["RemoteScope", "scope_remotes"]


@dataclass
class RemoteScope:
    """The engine's RemoteWatcher in a bot build: a green build of the awaited branch."""

    state: StateStore
    default_branches: dict[str, str] = field(default_factory=dict)
    """Repository (lower case) -> its default branch, for `remote: owner/repo` without `@`."""
    refused: dict[str, str] = field(default_factory=dict)
    """Repository (lower case) -> why no stage of this build may wait for it."""
    unknown: dict[str, str] = field(default_factory=dict)
    """Repository (lower case) -> why its default branch is not known."""

    def green(self, pipeline: str, branch: str | None, after_run_id: str) -> str | None:
        key = pipeline.lower()
        if key in self.refused:
            raise RemoteRefused(self.refused[key])
        branch = branch or self.default_branches.get(key)
        if branch is None:
            raise RemoteRefused(self.unknown.get(key, f"remote {pipeline}: no default branch"))
        return self.state.green_since(pipeline, branch, after_run_id)


def scope_remotes(
    state: StateStore,
    pipeline: Pipeline,
    installation_id: int | None,
    installation_of: Callable[[str], int | None],
    default_branch: Callable[[str], str],
) -> RemoteScope:
    """What the pipeline's remote stages may wait for, asked of GitHub once per repository.

    `installation_of` and `default_branch` are GitHub's answers; one it cannot
    give fails the stages that needed it, with the reason, when they start.
    """
    scope = RemoteScope(state)
    asked: set[str] = set()
    for stage in pipeline.stages.values():
        if stage.remote is None:
            continue
        repo, branch = parse_remote(stage.remote)
        key = repo.lower()
        if key not in asked:
            asked.add(key)
            try:
                found = installation_of(repo)
            except DockerciseError as e:
                scope.refused[key] = f"remote {repo}: {_first_line(e)}"
                continue
            if found is None or found != installation_id:
                scope.refused[key] = (
                    f"remote {repo} is not a repository of this installation of the app;"
                    " remote stages wait only for those"
                )
        if branch is None and key not in scope.refused | scope.default_branches | scope.unknown:
            try:
                scope.default_branches[key] = default_branch(repo)
            except DockerciseError as e:
                scope.unknown[key] = f"remote {repo}: {_first_line(e)}"
    return scope


def _first_line(e: Exception) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__
