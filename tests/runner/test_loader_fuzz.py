"""Property-based fuzzing of the loader (SPEC §10): whatever the text, a one-line verdict, fast.

Random YAML documents and mutations of real pipelines (examples/ and this
suite's own) go through `pipeline.load_texts`.  The properties:

- only PipelineInvalid comes out (anything else is a bug: the test fails on it,
  nothing in the loader swallows it);
- every problem is one printable line;
- each input is judged within a bounded time (hypothesis' deadline) and, for a
  sample, bounded memory (tracemalloc).

The whole file runs in well under 20 s.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner import pipeline, rules
from runner.errors import PipelineInvalid
from runner.wording import Suggester

FULL = """\
meta:
  name: full
  concurrency: 3
  timeout: 10m
  secrets: {NPM_TOKEN: "secure:abc"}
  statuses: stages
  on: {push: {branches: [main]}, pull_request: true, upstream: [o/lib]}
  downstream: https://ci.example.com/webhooks/dockercise
image:
  build: docker/
main:
  img: image
  run:
    - echo one
  after: image
  env: [token, {LITERAL: "a b", PORT: 8080, DEBUG: true}]
  vol: [image, 'image:/data', code, /etc/hosts:/hosts, '/tmp/c:/cache:rw']
  on: image
  dir: /main/sub
  noLog: true
  neverFail: true
  when: always
  timeout: 1h30m
  retry: 5
  paths: ["src/**"]
remote:
  remote: owner/repo@release
"""

REPO = Path(__file__).resolve().parents[2]
PIPE = ".dockercise.yml"
SEEDS = [p.read_text(encoding="utf-8") for p in pipeline.find_files(REPO / "examples")] + [
    FULL,
    "a:\n  img: x\n  run: cat out/b\n  env: [b, {X: 1}]\nb:\n  img: x\n  vol: [code, 'a:/d']\n",
    "meta:\n  on: {schedule: {cron: '0 3 * * *', watch: a}}\na: {img: x, timeout: 1h, retry: 2}\n",
    "x: &img alpine\na: {img: *img}\nb: {img: *img, after: [a]}\n",
]
TOKENS = [
    "\n", " ", "  ", ":", ": ", "- ", "[", "]", "{", "}", ",", "&a ", "*a", "!!int ", "!!str ",
    "!!binary ", "!!timestamp ", "!!python/object:os.system ", "!x ", "? ", "|", ">", "'", '"',
    "#", "%YAML 1.2\n", "---\n", "...\n", "~", "null", "true", "1.0", "0x1f", "9" * 120, "1e400",
    ".inf", "\\0", "\\n", "\\u2028", "\x00", "\x1b", "\u2028", "\ufeff", "\t", "out", "code",
    "meta", "retry", "timeout", "0s", "25h", "dir", "env", "vol", "/", "/out", "A=B", "<<",
    "on", "push", "schedule", "cron", "@", "\\", "..", "☃", "x" * 300,
]  # fmt: skip


def _verdict(texts: dict[str, str]) -> None:
    """Load; only the loader's own error may come out, and its problems are one line each."""
    try:
        pipeline.load_texts(texts)
    except PipelineInvalid as e:
        assert e.problems
        for problem in e.problems:
            line = str(problem)
            assert line.isprintable(), repr(line)
            assert len(line) < 2000, line[:200]


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "duplicate-line"]))
        if action == "insert":
            text = text[:at] + draw(st.sampled_from(TOKENS)) + text[at:]
        elif action == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)) :]
        elif action == "replace":
            text = text[:at] + draw(st.sampled_from(TOKENS)) + text[at + 1 :]
        else:
            lines = text.splitlines(keepends=True) or [""]
            i = draw(st.integers(0, len(lines) - 1))
            text = "".join(lines[: i + 1] + lines[i:])
    return text


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["out", "code", "meta", "/", "0s", "25h", "1h", "A=B", "a:/", "secure:x"])
)
_KEYS = st.sampled_from([*rules.STAGE_KEYS, *rules.META_KEYS, "push", "cron", "x"]) | st.text(
    max_size=10
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_KEYS, inner, max_size=5),
    max_leaves=30,
)
_DOCS = st.dictionaries(
    st.sampled_from(["a", "b", "meta", "out", "code", ".x", "a/b", "☃"]) | _SCALARS,
    st.none() | st.dictionaries(_KEYS, _VALUES, max_size=8) | _VALUES,
    max_size=6,
)


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, default_flow_style=None)


_FUZZ = settings(
    max_examples=150,
    deadline=2000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@_FUZZ
@given(_mutated())
def test_mutations_of_real_pipelines(text: str) -> None:
    _verdict({PIPE: text})


@_FUZZ
@given(_DOCS)
def test_random_documents(doc: Any) -> None:
    _verdict({PIPE: _dump(doc), "ci/more.dockercise.yml": "a:\n  img: x\n"})


@settings(max_examples=100, deadline=2000)
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map("".join))
def test_random_token_soup(text: str) -> None:
    _verdict({PIPE: text})


@settings(max_examples=100, deadline=2000)
@given(_DOCS)
def test_rules_never_accept_what_the_schema_rejects(doc: Any) -> None:
    """What the loader accepts, the published schema accepts too (the schema may say less)."""
    import jsonschema

    validator = jsonschema.Draft7Validator(pipeline.schema())
    suggest = Suggester()
    for name, body in doc.items():
        if not isinstance(name, str):
            continue
        if name == "meta":
            if not isinstance(body, dict) or list(rules.meta_problems(body, suggest)):
                continue
        elif rules.name_problem(name) or list(rules.stage_problems(name, body, suggest)):
            continue
        if name in rules.RESERVED and name != "meta":
            continue
        errors = list(validator.iter_errors({name: body}))
        assert errors == [], (name, body, [e.message for e in errors])


def _hostile(kind: str) -> str:
    if kind == "laughs":
        text = "a: &a [" + ",".join(["lol"] * 9) + "]\n"
        for i in range(1, 12):
            text += f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}" if i > 1 else "*a"] * 9) + "]\n"
        return text
    if kind == "long-string":
        return f'x: &s "{"A" * 100_000}"\n' + "s: [" + ",".join(["*s"] * 3000) + "]\n"
    if kind == "deep":
        return "a: " + "[" * 900 + "]" * 900
    if kind == "wide":
        return "a: {img: x, run: [" + ",".join(["x"] * 40_000) + "]}\n"
    return "".join(f"s{i}: {{img: x, after: s{i}x}}\n" for i in range(4000))


@pytest.mark.parametrize("kind", ["laughs", "long-string", "deep", "wide", "stages"])
def test_memory_stays_bounded(kind: str) -> None:
    """A hostile file costs the loader a bounded multiple of its size in memory."""
    text = _hostile(kind)
    assert len(text) <= 256 * 1024
    tracemalloc.start()
    try:
        _verdict({PIPE: text})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 * len(text) + 10_000_000, f"{peak / 1e6:.0f} MB"
