"""runner/limits.py: the operator's limits read from an environment, and the pure decisions
taken from them (SPEC §10)."""

from __future__ import annotations

import pytest

from runner.limits import (
    LIMIT_DEFAULTS,
    Limits,
    capped_timeout,
    format_size,
    limits_from_env,
    parse_size,
    too_many_stages,
)

G, M, K = 1 << 30, 1 << 20, 1 << 10


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("2g", 2 * G),
        ("2G", 2 * G),
        ("512m", 512 * M),
        ("512MiB", 512 * M),
        ("10GB", 10 * G),
        ("1.5g", 3 * G // 2),
        ("64k", 64 * K),
        ("4096", 4096),
        (" 1t ", 1 << 40),
    ],
)
def test_sizes_read_as_docker_reads_them(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "g", "2x", "-1g", "2 g b", "1e9", "two"])
def test_what_is_not_a_size(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize(
    ("size", "text"),
    [(64 * M, "64 MiB"), (10 * G, "10 GiB"), (1536 * M, "1.5 GiB"), (700, "700 B")],
)
def test_sizes_read_well(size: int, text: str) -> None:
    assert format_size(size) == text


def test_a_bot_build_has_every_limit_at_its_default() -> None:
    limits, problems = limits_from_env({}, defaults=True)
    assert problems == []
    assert limits == Limits(
        stage_memory=2 * G,
        stage_cpus=2.0,
        stage_pids=1024,
        stage_disk=10 * G,
        max_timeout=3600.0,
        max_build_time=3 * 3600.0,
        max_log=64 * M,
        max_stages=500,
        build_concurrency=4,
        min_free=5 * G,
    )
    assert limits == Limits.defaults()
    assert set(LIMIT_DEFAULTS) == {
        "DOCKERCISE_STAGE_MEMORY",
        "DOCKERCISE_STAGE_CPUS",
        "DOCKERCISE_STAGE_PIDS",
        "DOCKERCISE_STAGE_DISK",
        "DOCKERCISE_MAX_TIMEOUT",
        "DOCKERCISE_MAX_BUILD_TIME",
        "DOCKERCISE_MAX_LOG",
        "DOCKERCISE_MAX_STAGES",
        "DOCKERCISE_BUILD_CONCURRENCY",
        "DOCKERCISE_MIN_FREE",
    }


def test_a_local_run_has_only_the_limits_its_environment_sets() -> None:
    limits, problems = limits_from_env(
        {"DOCKERCISE_STAGE_MEMORY": "512m", "DOCKERCISE_MAX_TIMEOUT": "90s", "PATH": "/bin"},
        defaults=False,
    )
    assert problems == []
    assert limits == Limits(stage_memory=512 * M, max_timeout=90.0)
    assert limits_from_env({}, defaults=False) == (Limits(), [])


def test_the_operator_overrides_defaults_and_an_empty_value_is_the_default() -> None:
    limits, _ = limits_from_env(
        {
            "DOCKERCISE_STAGE_CPUS": "0.5",
            "DOCKERCISE_MAX_BUILD_TIME": "1h30m",
            "DOCKERCISE_MAX_STAGES": "",
        },
        defaults=True,
    )
    assert (limits.stage_cpus, limits.max_build_time, limits.max_stages) == (0.5, 5400.0, 500)
    assert limits_from_env({"DOCKERCISE_MAX_TIMEOUT": "600"}, defaults=True)[0].max_timeout == 600


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("DOCKERCISE_STAGE_MEMORY", "lots", "DOCKERCISE_STAGE_MEMORY must be a size like 2g"),
        ("DOCKERCISE_STAGE_MEMORY", "1m", "must be at least 6m"),
        ("DOCKERCISE_STAGE_CPUS", "nan", "must be a number of CPUs"),
        ("DOCKERCISE_STAGE_CPUS", "0", "must be more than 0"),
        ("DOCKERCISE_STAGE_PIDS", "1.5", "must be a whole number like 1024"),
        ("DOCKERCISE_MAX_TIMEOUT", "1 hour", "must be a duration like 1h"),
        ("DOCKERCISE_MAX_BUILD_TIME", "0s", "must be more than 0"),
        ("DOCKERCISE_MAX_LOG", "0", "must be more than 0"),
        ("DOCKERCISE_BUILD_CONCURRENCY", "-1", "must be more than 0"),
        ("DOCKERCISE_MIN_FREE", "5gigs", "must be a size like 5g"),
    ],
)
def test_a_bad_value_is_a_one_line_problem_naming_it(name: str, value: str, problem: str) -> None:
    for defaults in (True, False):
        _, problems = limits_from_env({name: value}, defaults=defaults)
        (found,) = problems
        assert problem in found and name in found and "\n" not in found


def test_every_bad_value_is_named() -> None:
    _, problems = limits_from_env(
        {"DOCKERCISE_STAGE_PIDS": "x", "DOCKERCISE_MAX_LOG": "y"}, defaults=True
    )
    assert len(problems) == 2


def test_a_timeout_is_cut_to_the_maximum_and_says_so() -> None:
    assert capped_timeout(7200, Limits()) == (7200, None)
    assert capped_timeout(600, Limits(max_timeout=3600)) == (600, None)
    assert capped_timeout(3600, Limits(max_timeout=3600)) == (3600, None)
    timeout, note = capped_timeout(7200, Limits(max_timeout=3600))
    assert timeout == 3600
    assert note == "timeout cut from 2 h 00 min to 1 h 00 min (DOCKERCISE_MAX_TIMEOUT)"


def test_stages_in_a_build() -> None:
    assert too_many_stages(10_000, Limits()) is None
    assert too_many_stages(500, Limits(max_stages=500)) is None
    assert too_many_stages(501, Limits(max_stages=500)) == (
        "the build has 501 stages, more than DOCKERCISE_MAX_STAGES allows (500)"
    )


def test_resources_of_a_container() -> None:
    limits = Limits(stage_memory=G, stage_cpus=2.0, stage_pids=10, max_log=M, stage_disk=G)
    resources = limits.resources
    assert (resources.memory, resources.cpus, resources.pids, resources.log) == (G, 2.0, 10, M)
    assert not Limits(max_timeout=5).resources
