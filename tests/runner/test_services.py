"""`services` (SPEC §14) in the loader: the model, every bad value as one line naming the
file, the stage, the service and the key, references, secrets, and hostile input."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from runner import pipeline
from runner.encryption import decrypt_pipeline, encrypt, generate_key
from runner.errors import PipelineInvalid
from runner.model import EnvItem, Service
from runner.networks import stage_network
from runner.plan import external_variables
from runner.services import MAX_SERVICES
from tests.runner.one_file import load_one, problems_of

GOOD = """\
test:
  img: python:3.12
  services:
    db:
      img: postgres:16
      env: [{POSTGRES_PASSWORD: test, PORT: 5432}, TOKEN]
      ready: pg_isready -U postgres
    cache:
      img: redis:7
      run: [redis-server --port 6380]
  run: pytest
"""


def test_services_are_read_in_order_with_their_keys() -> None:
    stage = load_one(GOOD).stages["test"]
    db, cache = stage.services
    assert db == Service(
        name="db",
        img="postgres:16",
        line=4,
        env=(EnvItem("POSTGRES_PASSWORD", "test"), EnvItem("PORT", "5432"), EnvItem("TOKEN")),
        ready="pg_isready -U postgres",
    )
    assert (cache.name, cache.run, cache.ready) == (
        "cache",
        "set -e\nredis-server --port 6380",
        None,
    )


def test_a_service_naming_a_stage_in_env_or_img_makes_it_a_dependency() -> None:
    loaded = load_one(
        "token: {img: x, run: echo t}\nimage: {build: .}\n"
        "test:\n  img: x\n  services: {db: {img: image, env: [token]}}\n  run: y\n"
    )
    assert loaded.deps["test"] == {"token", "image"}


def test_external_variables_of_services_are_wanted_by_their_stage() -> None:
    assert external_variables(load_one(GOOD), ["test"]) == {"TOKEN": ["test"]}


def test_a_matrix_variable_completes_a_service_image() -> None:
    loaded = load_one(
        "t:\n  img: x\n  matrix: {pg: ['15', '16']}\n"
        "  services: {db: {img: 'postgres:${pg}'}}\n  run: y\n"
    )
    images = [s.services[0].img for s in loaded.stages.values()]
    assert images == ["postgres:15", "postgres:16"]


def test_secure_values_of_services_are_decrypted_for_their_service() -> None:
    key = generate_key()
    token = encrypt("hunter2-secret", key)
    loaded = load_one(
        GOOD.replace("POSTGRES_PASSWORD: test", f"POSTGRES_PASSWORD: 'secure:{token}'")
    )
    secrets = decrypt_pipeline(loaded, key)
    assert secrets.literals == {("test/db", "POSTGRES_PASSWORD"): "hunter2-secret"}
    assert "hunter2-secret" in secrets.values()


def test_a_secure_value_that_cannot_be_decrypted_names_the_service() -> None:
    loaded = load_one(
        GOOD.replace("POSTGRES_PASSWORD: test", "POSTGRES_PASSWORD: 'secure:nonsense'")
    )
    with pytest.raises(Exception) as caught:
        decrypt_pipeline(loaded, generate_key())
    assert "service 'db'" in str(caught.value) and ".dockercise.yml:4" in str(caught.value)


def test_stages_with_alike_names_get_different_networks() -> None:
    assert stage_network("r1", "a[x]") != stage_network("r1", "a_x_")
    assert len(stage_network("r1", "a" * 100)) <= 128


@pytest.mark.parametrize(
    ("services", "expected"),
    [
        ("[db]", "'services' must be a mapping of service names to {img, run, env, ready}"),
        ("{db_1: {img: x}}", "service name 'db_1' must be a DNS label"),
        ("{'-db': {img: x}}", "service name '-db' must be a DNS label"),
        (f"{{{'a' * 64}: {{img: x}}}}", "must be a DNS label"),
        ("{1: {img: x}}", "service name '1' must be a DNS label"),
        ("{Test: {img: x}}", "service 'Test' has the stage's own name (rename the service)"),
        ("{db: {img: x}, DB: {img: y}}", "service 'DB' and service 'db' differ only in case"),
        ("{db: x}", "service 'db' must be a mapping of keys (img, run, env, ready), not 'x'"),
        ("{db: {run: x}}", "service 'db' has no 'img' (add img: IMAGE)"),
        ("{db: {img: ''}}", "service 'db': 'img' must be an image name (a string), not ''"),
        ("{db: {img: x, imgg: y}}", "service 'db': unknown key 'imgg' (did you mean 'img'?)"),
        ("{db: {img: x, after: y}}", "service 'db': unknown key 'after'"),
        ("{db: {img: x, run: 3}}", "service 'db': 'run' must be a script"),
        ("{db: {img: x, env: [{'A B': 1}]}}", "service 'db': 'env' item 'A B' is not a variable"),
        ("{db: {img: x, env: 3}}", "service 'db': 'env' must be a name, or a list"),
        ("{db: {img: x, ready: ''}}", "service 'db': 'ready' must be a shell command, not ''"),
        ("{db: {img: x, ready: [a]}}", "service 'db': 'ready' must be a shell command, not a list"),
        ("{db: {img: 'x:${v}'}}", "service 'db': 'img' uses '${v}', but the stage has no matrix"),
        (
            "{" + ", ".join(f"s{i}: {{img: x}}" for i in range(MAX_SERVICES + 1)) + "}",
            f"'services' has {MAX_SERVICES + 1} services; at most {MAX_SERVICES} a stage",
        ),
    ],
)
def test_a_bad_service_is_one_line_naming_file_stage_service_and_key(
    services: str, expected: str
) -> None:
    problems = problems_of(f"test:\n  img: x\n  run: y\n  services: {services}\n")
    assert any(expected in p for p in problems), problems
    assert all(p.startswith(".dockercise.yml:4: stage 'test': ") for p in problems), problems


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "test: {img: x, services: {db: {img: x}}}\n",
            "stage 'test': 'services' run beside the stage's script: add 'run'",
        ),
        (
            "test: {remote: o/r, services: {db: {img: x}}}\n",
            "a 'remote' stage cannot have 'services'",
        ),
        (
            "db: {img: x, run: y}\ntest: {img: x, run: y, services: {DB: {img: x}}}\n",
            "service 'DB' has the name of stage 'db', which it would hide (rename one)",
        ),
        (
            "a.db: {img: x, run: y}\na: {img: x, run: y, services: {db: {img: x}}}\n",
            "service 'db' keeps its log as 'a.db.log', as stage 'a.db' does (rename one)",
        ),
        (
            "test: {img: x, run: y, services: {db: {img: x, env: [nope-stage]}}}\n",
            "service 'db': 'env' item 'nope-stage' is neither a stage nor a variable name",
        ),
        (
            "m: {img: x, run: y, matrix: {a: [1, 2]}}\n"
            "test: {img: x, run: y, services: {db: {img: m}}}\n",
            "service 'db': 'img' names matrix stage 'm' (only 'after' may name a matrix stage)",
        ),
        (
            "test: {img: x, run: y, matrix: {v: ['a b']}, services: {db: {img: 'p:${v}'}}}\n",
            "service 'db': 'img' becomes 'p:a b' in 'test[v=a b]', which is no image name",
        ),
    ],
)
def test_references_and_collisions_are_one_line_each(text: str, expected: str) -> None:
    problems = problems_of(text)
    assert any(expected in p for p in problems), problems


def test_a_problem_inside_a_service_points_at_its_line() -> None:
    text = "test:\n  img: x\n  run: y\n  services:\n    db:\n      img: x\n      imgg: z\n"
    (problem,) = problems_of(text)
    assert problem.startswith(".dockercise.yml:7: stage 'test': service 'db': unknown key 'imgg'")


def test_hostile_service_values_stay_one_line_and_cut() -> None:
    long = "\u2028" * 300
    text = yaml.safe_dump(
        {"t": {"img": "x", "run": "y", "services": {"db": {"img": "x", long: 1}}}}
    )
    (problem,) = problems_of(text)
    assert "\u2028" not in problem and "(300 characters)" in problem


_NAMES = st.text(min_size=1, max_size=12) | st.sampled_from(["db", "web", "a-b", "t", "x" * 63])
_VALUES: Any = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
_BODIES = (
    st.dictionaries(
        st.sampled_from(["img", "run", "env", "ready", "x"]) | st.text(max_size=5),
        _VALUES,
        max_size=5,
    )
    | _VALUES
)


@settings(max_examples=200, deadline=2000)
@given(st.dictionaries(_NAMES, _BODIES, max_size=10))
def test_any_services_value_loads_or_is_one_line_problems_the_schema_agrees_with(
    services: dict[str, Any],
) -> None:
    """Whatever `services` holds: a pipeline, or one-line problems; what loads, the schema takes."""
    doc = {"t": {"img": "x", "run": "y", "services": services}}
    text = yaml.safe_dump(doc, allow_unicode=True)
    try:
        loaded = pipeline.load_texts({".dockercise.yml": text})
    except PipelineInvalid as e:
        assert e.problems and all("\n" not in str(p) for p in e.problems)
        return
    assert loaded is not None
    validator = jsonschema.Draft7Validator(pipeline.schema())
    data = json.loads(json.dumps(doc))
    assert list(validator.iter_errors(data)) == []
    assert [s.name for s in loaded.stages["t"].services] == list(services)
