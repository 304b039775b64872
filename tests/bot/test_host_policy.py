"""What a bot build's policy says about networks, host paths and trusted repositories (SPEC
§10), and the settings behind it; pure, no Docker."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.policy import (
    NetworkRefused,
    host_paths,
    networking,
    restrictions,
    trusted_repository,
)
from bot.settings import SettingsInvalid, load_settings
from runner import pipeline
from runner.networks import Networking
from tests.bot.fake_github import FakeGitHub
from tests.bot.running import bot_env
from tests.conftest import WritePipeline


@pytest.mark.parametrize(("network", "mode"), [(None, Networking.OWN), ("none", Networking.NONE)])
def test_a_bot_build_gets_its_own_network_or_none(network: str | None, mode: Networking) -> None:
    assert networking(network) is mode


@pytest.mark.parametrize(
    "network",
    ["host", "bridge", "default", "container:abc123", "NONE", "none ", "some-network", "a\nb"],
)
def test_any_other_network_refuses_the_build_in_one_line(network: str) -> None:
    with pytest.raises(NetworkRefused) as caught:
        networking(network)
    message = str(caught.value)
    assert message.startswith("meta.network ") and "not allowed in bot builds" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("fork", "repo", "trusted"),
    [(False, "octo/app", True), (False, "OCTO/App", True), (True, "octo/app", False),
     (False, "octo/other", False)],
)  # fmt: skip
def test_trusted_repositories_never_forks(fork: bool, repo: str, trusted: bool) -> None:
    assert trusted_repository(fork, repo, ["octo/app"]) is trusted


def test_where_host_paths_may_lie() -> None:
    assert host_paths(fork=False, trusted=False, allowed=("/srv",)) == ("/srv",)
    assert host_paths(fork=False, trusted=True, allowed=("/srv",)) is None
    assert host_paths(fork=True, trusted=True, allowed=("/srv",)) == ()


def test_a_trusted_repository_mounts_any_host_path_a_fork_none(
    write_pipeline: WritePipeline,
) -> None:
    root = write_pipeline({".dockercise.yml": "a: {img: x, run: x, vol: ['/etc:/etc2']}\n"})
    loaded = pipeline.load(root)
    assert loaded is not None
    assert restrictions(loaded, False, ("/srv",), trusted=True) == {}
    assert "a" in restrictions(loaded, False, ("/srv",))
    assert "a" in restrictions(loaded, True, ("/srv",), trusted=True)


def test_settings_of_trust_and_the_probe(github: FakeGitHub, tmp_path: Path) -> None:
    env = bot_env(github, tmp_path)
    del env["DOCKERCISE_METADATA_PROBE"]
    default = load_settings(env)
    assert default.metadata_probe == ("169.254.169.254", 80)
    assert default.trusted_repos == frozenset() and default.probe_image == "busybox"
    chosen = load_settings(
        env
        | {
            "DOCKERCISE_TRUSTED_REPOS": " octo/app, Octo/Lib ",
            "DOCKERCISE_METADATA_PROBE": "[fd00::1]:8080",
            "DOCKERCISE_PROBE_IMAGE": "dockercise/busybox",
        }
    )
    assert chosen.trusted_repos == {"octo/app", "octo/lib"}
    assert chosen.metadata_probe == ("fd00::1", 8080)
    assert chosen.probe_image == "dockercise/busybox"
    assert load_settings(env | {"DOCKERCISE_METADATA_PROBE": ""}).metadata_probe is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DOCKERCISE_TRUSTED_REPOS", "octo"),
        ("DOCKERCISE_TRUSTED_REPOS", "octo/app/x"),
        ("DOCKERCISE_METADATA_PROBE", "169.254.169.254"),
        ("DOCKERCISE_METADATA_PROBE", "169.254.169.254:0"),
        ("DOCKERCISE_METADATA_PROBE", "host name:80"),
        ("DOCKERCISE_METADATA_PROBE", "-e sh:80"),
        ("DOCKERCISE_METADATA_PROBE", "-e:80"),
    ],
)
def test_bad_settings_are_named(github: FakeGitHub, tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(SettingsInvalid, match=name):
        load_settings(bot_env(github, tmp_path) | {name: value})
