"""SPEC §10 "Everything wrong is found before anything runs": each value the run would trip on.

Every case here once passed `dockercise validate` and then broke the run (a
traceback, a stage stuck `running`, a timer that never fired).  Now each is a
one-line problem at load time, so `validate` and `run` exit 2 before anything
starts.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runner import pipeline
from tests.runner.one_file import problems_of

PIPE = ".dockercise.yml"
DOCKERCISE = Path(sys.executable).parent / "dockercise"


STAGE_CASES = [
    # retry: an integer from 0 to 5, and nothing that only looks like one
    ("retry: 1.0", "'retry' must be a whole number from 0 to 5, not the number 1.0"),
    ("retry: true", "'retry' must be a whole number from 0 to 5, not true"),
    ("retry: '1'", "'retry' must be a whole number from 0 to 5, not '1'"),
    ("retry: 6", "'retry' must be a whole number from 0 to 5, not the number 6"),
    # timeouts: more than 0, at most 24h, never a float
    ("timeout: 0s", "'timeout' must be more than 0s, not '0s'"),
    ("timeout: 0h0m", "'timeout' must be more than 0s, not '0h0m'"),
    ("timeout: 25h", "'timeout' must be at most 24h, not '25h'"),
    ("timeout: 86401", "'timeout' must be at most 24h, not '86401'"),
    ("timeout: 99999999999999999999h", "'timeout' must be at most 24h"),
    ("timeout: 1.5", "'timeout' must be a duration such as 90s, 10m or 1h, not the number 1.5"),
    ("timeout: true", "'timeout' must be a duration such as 90s, 10m or 1h, not true"),
    ("timeout: 0", "'timeout' must be a duration such as 90s, 10m or 1h, not the number 0"),
    # dir: absolute
    ("dir: relative/dir", "'dir' must be an absolute path (starting with /), not 'relative/dir'"),
    ("dir: ./x", "'dir' must be an absolute path (starting with /), not './x'"),
    # env: variable names
    ("env: [{'': x}]", "'env' item '' is not a variable name"),
    ("env: [{'A=B': x}]", "'env' item 'A=B' is not a variable name"),
    ("env: [{1A: x}]", "'env' item '1A' is not a variable name"),
    ("env: [{'A B': x}]", "'env' item 'A B' is not a variable name"),
    ("env: [{1: x}]", "'env' item '1' is not a variable name"),
    ("env: ['']", "'env' item '' is neither a stage nor a variable name"),
    ("env: ['a=b']", "'env' item 'a=b' is neither a stage nor a variable name"),
    ("env: [9lives]", "'env' item '9lives' is neither a stage nor a variable name"),
    ("env: [{A: [1]}]", "'env' must be a name, or a list of names and {NAME: value} items"),
    # vol targets
    ("vol: '/h:/'", "'vol' item '/h:/' mounts over /"),
    ("vol: 'a:/'", "'vol' item 'a:/' mounts over /"),
    ("vol: 'a://'", "'vol' item 'a://' mounts over /"),
    ("vol: [a, 'a:/a']", "'vol' item 'a:/a' mounts at '/a', already taken by 'a'"),
    ("vol: ['a:/d', '/h:/d/']", "'vol' item '/h:/d/' mounts at '/d', already taken by 'a:/d'"),
    ("vol: 'a:/x'", "'vol' item 'a:/x' mounts at '/x', already the stage's own volume"),
    ("vol: '/h:/out'", "'vol' item '/h:/out' mounts at '/out', already the stage outputs (/out)"),
    ("vol: 'a:/out/a'", "'vol' item 'a:/out/a' mounts inside /out"),
    ("vol: [code, 'a:/code']", "'vol' item 'a:/code' mounts at '/code', already taken by 'code'"),
    # NUL anywhere
    ('run: "echo \\0"', "NUL character in 'echo \\x00' (remove it)"),
    ('img: "x\\0"', "NUL character in 'x\\x00' (remove it)"),
]


@pytest.mark.parametrize(("body", "expected"), STAGE_CASES, ids=[c[0] for c in STAGE_CASES])
def test_stage_values_the_run_would_trip_on(body: str, expected: str) -> None:
    problems = problems_of(f"a:\n  img: x\nx:\n  img: x\n  {body}\n")
    assert len(problems) == 1, problems
    assert expected in problems[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("out:\n  img: x\n", ".dockercise.yml:1: 'out' is reserved for the stages' outputs (/out)"),
        ("code:\n  img: x\n", ".dockercise.yml:1: 'code' is reserved for the checkout"),
        ("meta:\n  name: a/b\n", ".dockercise.yml:2: meta.name 'a/b' must not contain '/'"),
        ("meta:\n  name: ../x\n", ".dockercise.yml:2: meta.name '../x' must not contain '/'"),
        ("meta:\n  name: .x\n", ".dockercise.yml:2: meta.name '.x' must not start with '.'"),
    ],
)
def test_reserved_names(text: str, expected: str) -> None:
    problems = problems_of(text)
    assert len(problems) == 1
    assert problems[0].startswith(expected)


META_CASES = [
    ("name: 3", "'name' must be a string, not the number 3"),
    ("concurrency: 1.0", "'concurrency' must be a whole number of at least 1, not the number 1.0"),
    ("concurrency: true", "'concurrency' must be a whole number of at least 1, not true"),
    ("concurrency: '4'", "'concurrency' must be a whole number of at least 1, not '4'"),
    ("concurrency: 0", "'concurrency' must be a whole number of at least 1, not the number 0"),
    ("timeout: 0s", "'meta.timeout' must be more than 0s, not '0s'"),
    ("timeout: 48h", "'meta.timeout' must be at most 24h, not '48h'"),
    ("timeout: 2.5", "'timeout' must be a duration such as 90s, 10m or 1h, not the number 2.5"),
    ("network: 3", "'network' must be a Docker network mode (a string), not the number 3"),
    ("network: [host]", "'network' must be a Docker network mode (a string), not a list"),
    ("secrets: [A]", "'secrets' must be a mapping of NAME: \"secure:...\", not a list"),
    ("secrets: {A: 1}", "'secrets' must be a mapping of NAME: \"secure:...\", not a mapping"),
    ("secrets: {'A-B': x}", "'meta.secrets' key 'A-B' is not a variable name"),
    ("statuses: all", "'statuses' must be pipeline or stages, not 'all'"),
    ("statuses: true", "'statuses' must be pipeline or stages, not true"),
    ("on: 3", "'on' must be a mapping of triggers"),
    ("on: {push: 3}", "'meta.on.push' must be true, false or {branches: [GLOB, ...]}"),
    ("on: {push: {branches: 3}}", "'meta.on.push' must be true, false or {branches"),
    ("on: {push: {tags: [v1]}}", "'meta.on.push' must be true, false or {branches"),
    ("on: {pull_request: 'yes'}", "'meta.on.pull_request' must be true or false, not 'yes'"),
    ("on: {schedule: '0 3 * * *'}", "'meta.on.schedule' must be {cron: '0 3 * * *'}"),
    ("on: {schedule: {watch: a}}", "'meta.on.schedule' must be {cron: '0 3 * * *'}"),
    ("on: {schedule: {cron: 3}}", "'meta.on.schedule' must be {cron: '0 3 * * *'}"),
    ("on: {schedule: {cron: '0 0 31 2 *'}}", "meta.on.schedule.cron '0 0 31 2 *' is not a cron"),
    ("on: {schedule: {cron: 'x'}}", "meta.on.schedule.cron 'x' is not a cron expression"),
    ("on: {schedule: {cron: '* * * * *', watch: nope}}", "meta.on.schedule.watch names unknown"),
    ("on: {upstream: 3}", "'meta.on.upstream' must be owner/repo or a list of them"),
    ("on: {upstream: [o/r, x]}", "'meta.on.upstream' must be owner/repo or a list of them"),
    ("on: {tag: true}", "unknown trigger 'tag' in 'meta.on'"),
    ("downstream: 3", "'downstream' must be an https:// URL or a list of at most 10, not the n"),
    ("downstream: [{url: x}]", "'downstream' must be an https:// URL or a list of at most 10, not"),
    (
        "downstream: http://ci.example.com/",
        "'meta.downstream' URL 'http://ci.example.com/' is not https:// (http:// only for a"
        " loopback host, for tests)",
    ),
    ("downstream: [file:///dev/zero]", "URL 'file:///dev/zero' is not an absolute https:// URL"),
    ("downstream: ['https://u:p@h.example/']", "'https://u:p@h.example/' holds a user name"),
    ('downstream: "https://h.example/\\nX: y"', "URL 'https://h.example/\\nX: y' has spaces"),
    (
        "downstream: [" + ", ".join(f"'https://h{i}.example/'" for i in range(11)) + "]",
        "'meta.downstream' names 11 URLs; at most 10 are sent",
    ),
]


@pytest.mark.parametrize(("body", "expected"), META_CASES, ids=[c[0] for c in META_CASES])
def test_meta_values_of_the_wrong_type(body: str, expected: str) -> None:
    problems = problems_of(f"a:\n  img: x\nmeta:\n  {body}\n")
    assert len(problems) == 1, problems
    assert expected in problems[0]


@pytest.mark.parametrize(
    "body",
    [
        "retry: 0",
        "retry: 5",
        "timeout: 24h",
        "timeout: 86400",
        "timeout: 500ms",
        "dir: /work",
        "env: [{A_1: x, _b: 2, C: 1.5, D: true}]",
        "env: [home, a]",
        "vol: [a, 'a:/data', code, '/h:/h', '/h:/cache:rw']",
    ],
)
def test_values_at_the_edges_are_fine(body: str) -> None:
    loaded = pipeline.load_texts({PIPE: f"a:\n  img: x\nx:\n  img: x\n  {body}\n"})
    assert loaded is not None


@pytest.mark.parametrize(
    "text",
    [
        "a:\n  img: x\n  retry: 1.0\n",
        "a:\n  img: x\n  timeout: 0s\n",
        "out:\n  img: x\n",
        "a:\n  img: x\n  dir: relative\n",
        "a:\n  img: x\n  env: [{'A=B': x}]\n",
        "a:\n  img: x\n  vol: ['/h:/', 'b:/x', 'c:/x']\n",
        "meta:\n  name: a/b\n",
        "meta:\n  concurrency: 1.5\n",
        "a:\n  img: !!binary aGk=\n",
        '"a\\nb":\n  img: x\n  rnu: 1\n',
    ],
)
def test_validate_exits_2_with_one_line_per_problem(tmp_path: Path, text: str) -> None:
    (tmp_path / PIPE).write_text(text, encoding="utf-8")
    done = subprocess.run(
        [str(DOCKERCISE), "validate", "-C", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith(".dockercise.yml:")
    assert lines[-1].endswith("problem(s) found; nothing was run")
    problems = lines[:-1]
    assert len(problems) == int(lines[-1].split()[0])
