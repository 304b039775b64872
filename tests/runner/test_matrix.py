"""`matrix` (SPEC §14): checking, naming, expansion in the loader, references to it."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import unquote

import click
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cli.options import complete_stage
from cli.run import run as run_command
from runner import matrix, pipeline
from runner.engine import RunOptions, prepare
from runner.errors import PipelineInvalid, UsageError
from runner.limits import Limits
from runner.model import EnvItem
from runner.outcome import Status
from tests.cli.test_cli import run_cli
from tests.runner.conftest import MakeRun
from tests.runner.fake_backend import Script
from tests.runner.one_file import load_one, problems_of

WritePipeline = Callable[[Mapping[str, str]], Path]


# --- values and names (pure) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1, "1"),
        (-3, "-3"),
        (1.0, "1.0"),
        (3.10, "3.1"),
        (1e20, "1e+20"),
        (float("inf"), ".inf"),
        (float("-inf"), "-.inf"),
        (float("nan"), ".nan"),
        (True, "true"),
        (False, "false"),
        ("3.10", "3.10"),
        ("", ""),
    ],
)
def test_values_are_written_as_yaml_writes_them(value: str | float, text: str) -> None:
    assert matrix.value_text(value) == text


@pytest.mark.parametrize(
    ("values", "name"),
    [
        ((("a", "1"),), "t[a=1]"),
        ((("a", "1"), ("b", "x")), "t[a=1,b=x]"),
        ((("a", "x,b=y"),), "t[a=x%2Cb%3Dy]"),
        ((("a", "]["),), "t[a=%5D%5B]"),
        ((("a", "50%"),), "t[a=50%25]"),
        ((("a", "../etc/passwd"),), "t[a=..%2Fetc%2Fpasswd]"),
        ((("a", "a\\b"),), "t[a=a%5Cb]"),
        ((("a", "l1\nl2\x00\x1b[31m"),), "t[a=l1%0Al2%00%1B%5B31m]"),
        ((("a", "\u2028☃ é"),), "t[a=%E2%80%A8☃ é]"),
        ((("a", ""),), "t[a=]"),
    ],
)
def test_expanded_names_escape_what_has_a_meaning_in_them(
    values: matrix.Combination, name: str
) -> None:
    assert matrix.expanded_name("t", values) == name


_TEXT = st.text(max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), _TEXT), min_size=1, max_size=3))
def test_different_combinations_never_share_a_name(pairs: list[tuple[str, str]]) -> None:
    """The name is a function of the values that can be undone: %XX is reversible."""
    combination = tuple(pairs)
    name = matrix.expanded_name("s", combination)
    inner = name[len("s[") : -1]
    assert "/" not in name and "\\" not in name and "\0" not in name and name.isprintable()
    parts = inner.split(",")
    assert len(parts) == len(pairs)
    for part, (variable, value) in zip(parts, pairs, strict=True):
        written, _, escaped = part.partition("=")
        assert written == variable
        assert unquote(escaped, errors="surrogatepass") == value


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.from_regex(r"[a-z_][a-z0-9_]{0,3}", fullmatch=True),
        st.lists(st.integers(0, 20) | st.booleans() | _TEXT, min_size=1, max_size=4, unique=True),
        min_size=1,
        max_size=3,
    )
)
def test_combinations_are_the_product_in_matrix_order(
    axes: dict[str, list[str | int | bool]],
) -> None:
    texts = {k: [matrix.value_text(v) for v in vs] for k, vs in axes.items()}
    if any(len(set(t)) < len(t) for t in texts.values()):
        assert list(matrix.problems(axes))  # duplicates as written: refused, not expanded
        return
    assert not list(matrix.problems(axes))
    combos = matrix.combinations(axes)
    assert combos == [
        tuple(zip(axes, product, strict=True)) for product in itertools.product(*texts.values())
    ]
    assert len({matrix.expanded_name("s", c) for c in combos}) == len(combos)


def test_img_uses_only_the_stage_s_own_matrix_variables() -> None:
    assert matrix.image_problem("busybox:${tag}", ["tag"]) is None
    assert matrix.image_problem("busybox", []) is None
    assert matrix.image_problem("$tag", ["tag"]) is None  # only ${...} is ours
    assert "no such matrix variable" in (matrix.image_problem("x:${HOME}", ["tag"]) or "")
    assert "has no matrix" in (matrix.image_problem("x:${tag}", []) or "")
    assert "without its '}'" in (matrix.image_problem("x:${tag", ["tag"]) or "")
    assert "without its '}'" in (matrix.image_problem("x:${tag}${", ["tag"]) or "")
    assert matrix.substitute("r/${a}:${b}-${a}", (("a", "x"), ("b", "1"))) == "r/x:1-x"


# --- expansion in the loader -------------------------------------------------------------------


def test_a_matrix_stage_becomes_one_stage_per_combination_in_its_place() -> None:
    loaded = load_one(
        """
        first: {img: busybox, run: x}
        test:
          img: "reg/py:${py}"
          matrix: {py: [3.11, "3.12"], db: [pg, true]}
          env: [{X: 1}, version]
          run: echo $py $db
        last: {img: busybox, run: x}
        """.replace("\n        ", "\n")
    )
    names = [
        "test[py=3.11,db=pg]",
        "test[py=3.11,db=true]",
        "test[py=3.12,db=pg]",
        "test[py=3.12,db=true]",
    ]
    assert list(loaded.stages) == ["first", *names, "last"]
    assert loaded.matrices == {"test": tuple(names)}
    one = loaded.stages["test[py=3.12,db=true]"]
    assert one.img == "reg/py:3.12"
    assert one.env == (
        EnvItem("py", "3.12"),
        EnvItem("db", "true"),
        EnvItem("X", "1"),
        EnvItem("version"),
    )
    assert one.origin == "test" and one.variables == (("py", "3.12"), ("db", "true"))
    assert one.run == "echo $py $db" and one.matrix is None


def test_after_a_matrix_stage_waits_for_every_expansion_and_targets_select_them_all() -> None:
    loaded = load_one(
        "build: {img: b, run: x}\n"
        "test: {img: b, matrix: {v: [1, 2, 3]}, after: build, run: cat out/build}\n"
        "report: {img: b, after: [test], run: x}\n"
        "other: {img: b, run: x}\n"
    )
    expansions = {"test[v=1]", "test[v=2]", "test[v=3]"}
    assert loaded.deps["report"] == expansions
    assert all(loaded.deps[name] == {"build"} for name in expansions)
    plan = prepare(loaded, RunOptions(targets=["test"]))
    assert set(plan.deps) == {"build", *expansions}
    assert prepare(loaded, RunOptions(targets=["report"])).order[-1] == "report"
    with pytest.raises(UsageError):
        prepare(loaded, RunOptions(targets=["test[v=4]"]))


def test_the_count_after_expansion_is_what_the_build_has() -> None:
    loaded = load_one(
        "a: {img: b, run: x, matrix: {x: [1, 2, 3, 4, 5, 6, 7, 8], y: [1, 2, 3, 4, 5, 6, 7, 8]}}\n"
        "b: {img: b, run: x}\n"
    )
    assert len(loaded.stages) == 65 == len(prepare(loaded, RunOptions()).deps)
    assert len(prepare(loaded, RunOptions(limits=Limits(max_stages=65))).deps) == 65
    with pytest.raises(PipelineInvalid, match="the build has 65 stages, more than DOCKERCISE_MAX"):
        prepare(loaded, RunOptions(limits=Limits(max_stages=64)))


BAD = [
    ("matrix: [1, 2]", "'matrix' must be a mapping of variables to lists of values, not a list"),
    ("matrix: {}", "'matrix' must name at least one variable"),
    ("matrix: {v: []}", "'matrix' variable 'v' has no values (give at least one)"),
    ("matrix: {v: 1}", "'matrix' variable 'v' must be a list of values, not the number 1"),
    ("matrix: {v: [[1]]}", "'matrix' variable 'v' holds a list (values are strings"),
    ("matrix: {v: [{a: 1}]}", "'matrix' variable 'v' holds a mapping"),
    ("matrix: {v: [null]}", "'matrix' variable 'v' holds null"),
    ("matrix: {v: [1, '1']}", "'matrix' variable 'v' lists '1' twice"),
    ("matrix: {v: [true, 'true']}", "'matrix' variable 'v' lists 'true' twice"),
    ("matrix: {9v: [1]}", "'matrix' variable '9v' is not a variable name"),
    ("matrix: {a-b: [1]}", "'matrix' variable 'a-b' is not a variable name"),
    ('matrix: {"a\\nb": [1]}', "'matrix' variable 'a\\nb' is not a variable name"),
    ("matrix: {1: [1]}", "'matrix' variable '1' is not a variable name"),
    ("matrix: {v: ['secure:abc']}", "holds a secure: value"),
    (
        "matrix: {a: [1, 2, 3, 4, 5], b: [1, 2, 3, 4, 5], c: [1, 2, 3]}",
        "'matrix' makes 75 combinations, more than 64",
    ),
    ("matrix: {V: [1]}, env: [v]", "'matrix' variable 'V' is also set by 'env'"),
    ("matrix: {V: [1]}, env: [{V: 2}]", "'matrix' variable 'V' is also set by 'env'"),
    ("matrix: {V: [1]}, remote: o/r", "a 'remote' stage cannot have a 'matrix'"),
    ("img: 'x:${W}', matrix: {V: [1]}", "'img' uses '${W}', but the stage has no such matrix"),
    ("img: 'x:${V'", "'img' has a '${' without its '}'"),
    ("img: 'x:${HOME}'", "'img' uses '${HOME}', but the stage has no matrix"),
    ("img: '${V}', matrix: {V: ['']}", "'img' becomes '' in 't[V=]', which is no image name"),
    ("img: 'x:${V}', matrix: {V: ['a b']}", "which is no image name"),
]


@pytest.mark.parametrize(("keys", "expected"), BAD, ids=[k for k, _ in BAD])
def test_a_bad_matrix_is_one_line_naming_the_stage(keys: str, expected: str) -> None:
    text = f"t: {{img: x, run: x, {keys}}}\n" if "img:" not in keys else f"t: {{run: x, {keys}}}\n"
    problems = problems_of(text)
    assert len(problems) == 1, problems
    assert problems[0].startswith(".dockercise.yml:1: stage 't': ")
    assert expected in problems[0], problems


NAMING = [
    ("env: [m]", "'env' names matrix stage 'm' (only 'after' may name a matrix stage)"),
    ("vol: [m]", "'vol' names matrix stage 'm'"),
    ("vol: ['m:/data']", "'vol' names matrix stage 'm'"),
    ("on: m", "'on' names matrix stage 'm'"),
    ("if: m", "'if' names matrix stage 'm'"),
    ("unless: m", "'unless' names matrix stage 'm'"),
    ("img: m", "'img' names matrix stage 'm'"),
    ("run: cat /out/m", "'run' reads 'out/m' of matrix stage 'm'"),
    ("run: cat out/m", "'run' reads 'out/m' of matrix stage 'm'"),
    ("after: 'm[a=1]'", "'after' names 'm[a=1]', one expansion of matrix stage 'm' (name 'm'"),
    ("env: ['m[a=1]']", "'env' names 'm[a=1]', one expansion of matrix stage 'm'"),
    ("run: 'cat out/m[a=1]'", "'run' reads 'out/m[a=1]' of 'm[a=1]', one expansion"),
]


@pytest.mark.parametrize(("keys", "expected"), NAMING, ids=[k for k, _ in NAMING])
def test_only_after_may_name_a_matrix_stage(keys: str, expected: str) -> None:
    img = "" if "img:" in keys else "img: x, "
    problems = problems_of(f"m: {{img: x, matrix: {{a: [1, 2]}}}}\nr: {{{img}{keys}}}\n")
    assert len(problems) == 1, problems
    assert problems[0].startswith(".dockercise.yml:2: stage 'r': "), problems
    assert expected in problems[0], problems


def test_schedule_watch_may_not_name_a_matrix_stage() -> None:
    text = "meta: {on: {schedule: {cron: '0 3 * * *', watch: m}}}\nm: {img: x, matrix: {a: [1]}}\n"
    (problem,) = problems_of(text)
    assert "meta.on.schedule.watch names matrix stage 'm'" in problem


def test_an_unknown_stage_suggests_the_matrix_stage() -> None:
    (problem,) = problems_of("test: {img: x, matrix: {a: [1]}}\nr: {img: x, after: tset}\n")
    assert "(did you mean 'test'?)" in problem


def test_expanded_names_obey_the_stage_name_rules() -> None:
    long_value = "v" * 95
    (problem,) = problems_of(f"test: {{img: x, matrix: {{a: [1, {long_value}]}}}}\n")
    assert re.search(
        r"'matrix' makes the stage name 'test\[a=v+'\.\.\. \(103 characters\), longer than 100",
        problem,
    )
    (taken,) = problems_of("'m[a=1]': {img: x}\nm: {img: x, matrix: {a: [1]}}\n")
    assert "'matrix' makes the stage name 'm[a=1]', which is taken" in taken


def test_a_matrix_after_itself_is_a_cycle() -> None:
    (problem,) = problems_of("m: {img: x, after: m, matrix: {a: [1]}}\n")
    assert "dependency cycle: m[a=1] -> m[a=1]" in problem


def test_the_matrices_of_a_pipeline_expand_into_at_most_max_expanded_stages() -> None:
    """A megabyte of small matrix stages would be a million stages: refused, quickly."""
    axes = "{x: [1, 2, 3, 4, 5, 6, 7, 8], y: [1, 2, 3, 4, 5, 6, 7, 8]}"
    text = "".join(f"s{i}: {{img: x, matrix: {axes}}}\n" for i in range(200))
    with pytest.raises(PipelineInvalid) as caught:
        pipeline.load_texts({".dockercise.yml": text})
    found = [str(p) for p in caught.value.problems]
    assert found[0].endswith(f"the pipeline's matrices make more than {matrix.MAX_EXPANDED} stages")
    assert len(found) == 200 - matrix.MAX_EXPANDED // 64


def test_a_matrix_stage_written_in_a_file_loads_from_disk(write_pipeline: WritePipeline) -> None:
    root = write_pipeline({".dockercise.yml": "t:\n  img: x\n  matrix:\n    v: [a]\n"})
    loaded = pipeline.load(root)
    assert loaded is not None and list(loaded.stages) == ["t[v=a]"]


# --- the engine (fake backend) -----------------------------------------------------------------


def test_each_expansion_runs_with_its_variables_and_dependents_wait_for_all(
    fake_run: MakeRun,
) -> None:
    slow = "test[v=x%2Cy,n=2]"
    run = fake_run(
        {slow: Script(seconds=0.2, stdout=["slow"]), "test[v=1,n=1]": Script(seconds=0.05)}
    )
    result = run.run(
        """
        test:
          img: "busybox:${n}"
          matrix: {v: [1, "x,y"], n: [1, 2]}
          env: [{FIXED: f}]
          run: x
        report: {img: busybox, after: test, run: x}
        """
    )
    assert result.status is Status.SUCCESS
    names = ["test[v=1,n=1]", "test[v=1,n=2]", "test[v=x%2Cy,n=1]", slow]
    assert set(result.stages) == {*names, "report"}
    for name in names:
        (container,) = run.backend.of(name)
        env = container.spec.env
        v, n = name[len("test[v=") : -1].split(",n=")
        assert env["v"] == v.replace("%2C", ",") and env["n"] == n and env["FIXED"] == "f"
        assert env["DOCKERCISE_STAGE"] == name and env["OUT"] == f"/{name}"
        assert container.spec.image == f"busybox:{n}"
    events = run.backend.events
    for name in names:
        assert events.index(("end", name)) < events.index(("start", "report")), events
    assert run.log(slow) == "slow\n"
    stored = json.loads(run.store.read_bytes(result.id, f"{slow}.json") or b"{}")
    assert stored["name"] == slow and stored["status"] == "success"


def test_a_failed_expansion_skips_the_stages_after_the_matrix(fake_run: MakeRun) -> None:
    run = fake_run({"test[v=2]": Script(exit=1)})
    result = run.run(
        "test: {img: b, matrix: {v: [1, 2, 3]}, run: x}\n"
        "next: {img: b, after: test, run: x}\n"
        "always: {img: b, after: test, when: always, run: x}\n"
    )
    outcome = {n: (s.status, s.reason) for n, s in result.stages.items()}
    assert outcome == {
        "test[v=1]": (Status.SUCCESS, None),
        "test[v=2]": (Status.FAILURE, "exit 1"),
        "test[v=3]": (Status.SUCCESS, None),
        "next": (Status.SKIPPED, "dependency test[v=2] failed"),
        "always": (Status.SUCCESS, None),
    }


def test_a_target_naming_the_matrix_stage_runs_all_its_expansions(fake_run: MakeRun) -> None:
    run = fake_run()
    result = run.run(
        "base: {img: b, run: x}\n"
        "test: {img: b, after: base, matrix: {v: [1, 2]}, run: x}\n"
        "other: {img: b, run: x}\n",
        targets=["test"],
    )
    assert set(result.stages) == {"base", "test[v=1]", "test[v=2]"}
    assert set(run.backend.started()) == {"base", "test[v=1]", "test[v=2]"}


# --- the command line: graph, validate, completion ---------------------------------------------

GRID = 'test: {img: x, run: x, matrix: {v: [1, "a b,c"]}}\nreport: {img: x, after: test, run: x}\n'


@pytest.mark.parametrize(
    ("fmt", "lines"),
    [
        (
            "text",
            [
                "test[v=1]",
                "test[v=a b%2Cc]",
                "report           <- test[v=1], test[v=a b%2Cc]",
            ],
        ),
        (
            "dot",
            [
                "digraph pipeline {",
                "  rankdir=LR;",
                '  "test[v=1]";',
                '  "test[v=a b%2Cc]";',
                '  "report";',
                '  "test[v=1]" -> "report";',
                '  "test[v=a b%2Cc]" -> "report";',
                "}",
            ],
        ),
        (
            "mermaid",
            [
                "graph LR",
                '  s0["test[v=1]"]',
                '  s1["test[v=a b%2Cc]"]',
                '  s2["report"]',
                "  s0 --> s2",
                "  s1 --> s2",
            ],
        ),
    ],
)
def test_graph_shows_every_expansion(
    write_pipeline: WritePipeline, capsys: pytest.CaptureFixture[str], fmt: str, lines: list[str]
) -> None:
    root = write_pipeline({".dockercise.yml": GRID})
    code, out, _ = run_cli(capsys, "graph", "-C", str(root), "--format", fmt)
    assert code == 0 and out.splitlines() == lines


def test_validate_counts_expansions_and_completion_offers_the_matrix_stage(
    write_pipeline: WritePipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_pipeline({".dockercise.yml": GRID})
    code, out, _ = run_cli(capsys, "validate", "-C", str(root))
    assert (code, out) == (0, "ok: 3 stage(s) in .dockercise.yml\n")
    context = click.Context(run_command)
    context.params["directory"] = str(root)
    offered = complete_stage(context, run_command.params[0], "te")
    assert offered == ["test", "test[v=1]", "test[v=a b%2Cc]"]
