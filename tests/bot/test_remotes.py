"""bot/remotes.py: what a bot build's remote stages wait for, within its installation (SPEC §10)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from bot.github_api import GitHubFailed
from bot.remotes import RemoteScope, scope_remotes
from bot.state import StateStore
from runner import pipeline
from runner.model import Pipeline
from runner.remote import RemoteRefused, RemoteWaits
from tests.conftest import WritePipeline

OURS = 77


@dataclass
class Events:
    """The state's green builds: (pipeline, branch) -> run ids, as received."""

    green: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    asked: list[tuple[str, str | None]] = field(default_factory=list)

    def green_since(self, pipeline: str, branch: str | None, after: str) -> str | None:
        self.asked.append((pipeline, branch))
        runs = [r for r in self.green.get((pipeline.lower(), branch or ""), []) if r > after]
        return min(runs) if runs else None


def _state(events: Events) -> StateStore:
    return cast(StateStore, events)


@pytest.fixture
def remotes(write_pipeline: WritePipeline) -> Pipeline:
    loaded = pipeline.load(
        write_pipeline(
            {
                ".dockercise.yml": """
                    lib: {remote: octo/lib}
                    lib-dev: {remote: Octo/Lib@dev}
                    theirs: {remote: other/tool}
                    gone: {remote: octo/gone@main}
                    test: {img: busybox, after: [lib, lib-dev], run: "true"}
                    """
            }
        )
    )
    assert loaded is not None
    return loaded


def _installations(asked: list[str]) -> Any:
    def installation_of(repo: str) -> int | None:
        asked.append(repo)
        return {"octo/lib": OURS, "other/tool": 12}.get(repo.lower())

    return installation_of


def test_each_repository_is_asked_once_and_only_ours_may_be_awaited(remotes: Pipeline) -> None:
    events, asked, defaults = Events(), list[str](), list[str]()

    def default_branch(repo: str) -> str:
        defaults.append(repo)
        return "trunk"

    scope = scope_remotes(_state(events), remotes, OURS, _installations(asked), default_branch)
    assert asked == ["octo/lib", "other/tool", "octo/gone"]
    assert defaults == ["octo/lib"]
    assert scope.default_branches == {"octo/lib": "trunk"}
    assert set(scope.refused) == {"other/tool", "octo/gone"}
    assert scope.refused["other/tool"] == (
        "remote other/tool is not a repository of this installation of the app;"
        " remote stages wait only for those"
    )


def test_without_a_branch_the_default_branch_is_awaited(remotes: Pipeline) -> None:
    events = Events({("octo/lib", "feature"): ["r2"], ("octo/lib", "trunk"): ["r3"]})
    scope = scope_remotes(_state(events), remotes, OURS, _installations([]), lambda r: "trunk")
    assert scope.green("octo/lib", None, "r1") == "r3"  # never the feature branch's r2
    assert scope.green("octo/lib", "feature", "r1") == "r2"
    assert events.asked == [("octo/lib", "trunk"), ("octo/lib", "feature")]


def test_another_installations_repository_fails_its_stage_at_once(remotes: Pipeline) -> None:
    events = Events({("other/tool", "main"): ["r9"]})
    scope = scope_remotes(_state(events), remotes, OURS, _installations([]), lambda r: "main")
    waits = RemoteWaits("r1", scope)
    waits.add(remotes.stages["theirs"], timeout=3600)
    (result,) = waits.poll()
    assert result.status.value == "failure"
    assert result.reason is not None and "not a repository of this installation" in result.reason
    assert events.asked == []  # its green builds are never even looked at


def test_what_github_cannot_answer_fails_only_the_stages_that_needed_it(remotes: Pipeline) -> None:
    def installation_of(repo: str) -> int | None:
        if repo == "other/tool":
            raise GitHubFailed("GitHub answered 502")
        return OURS

    def default_branch(repo: str) -> str:
        raise GitHubFailed(f"cannot read {repo}: GitHub answered 404")

    scope = scope_remotes(_state(Events()), remotes, OURS, installation_of, default_branch)
    assert scope.refused == {"other/tool": "remote other/tool: GitHub answered 502"}
    with pytest.raises(RemoteRefused, match="cannot read octo/lib: GitHub answered 404"):
        scope.green("octo/lib", None, "r1")
    assert scope.green("octo/lib", "dev", "r1") is None  # @dev needs no default branch


def test_a_scope_without_remote_stages_asks_github_nothing(write_pipeline: WritePipeline) -> None:
    loaded = pipeline.load(write_pipeline({".dockercise.yml": "a: {img: b, run: 'true'}\n"}))
    assert loaded is not None

    def never(repo: str) -> Any:
        raise AssertionError(repo)

    assert scope_remotes(_state(Events()), loaded, OURS, never, never) == RemoteScope(
        _state(Events())
    )
