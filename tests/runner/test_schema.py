"""runner/schema.json: the published JSON Schema of a pipeline file (SPEC §2, §6)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from runner import pipeline, yaml12

REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO / "runner" / "schema.json"
STAGE_KEYS = {
    "img", "build", "run", "after", "env", "vol", "on", "dir", "noLog", "neverFail",
    "when", "if", "unless", "timeout", "retry", "paths", "remote", "cache", "matrix",
    "services",
}  # fmt: skip
META_KEYS = {
    "name", "concurrency", "timeout", "network", "secrets", "statuses", "on", "downstream",
    "supersede",
}  # fmt: skip


def _examples() -> list[Path]:
    return pipeline.find_files(REPO / "examples")


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return data


def test_schema_is_valid_draft7(schema: dict[str, Any]) -> None:
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"


def test_validating_leaves_the_published_schema_as_it_is(
    schema: dict[str, Any], tmp_path: Path
) -> None:
    """The compiled validator must not rewrite the schema that `pipeline.schema()` publishes."""
    (tmp_path / ".dockercise.yml").write_text("a:\n  img: x\n")
    assert pipeline.load(tmp_path) is not None
    assert pipeline.schema() == schema


def test_stage_properties_are_exactly_the_spec_keys(schema: dict[str, Any]) -> None:
    stage = schema["definitions"]["stage"]
    assert set(stage["properties"]) == STAGE_KEYS
    assert stage["additionalProperties"] is False


def test_meta_properties_are_exactly_the_spec_keys(schema: dict[str, Any]) -> None:
    meta = schema["definitions"]["meta"]
    assert set(meta["properties"]) == META_KEYS
    assert meta["additionalProperties"] is False


def test_every_key_says_what_it_expects(schema: dict[str, Any]) -> None:
    """The `x-expect` text is what a type error tells the user; every key needs one."""
    for section in ("stage", "meta"):
        for key, prop in schema["definitions"][section]["properties"].items():
            if section == "meta" and key == "on":
                continue
            assert prop.get("x-expect"), f"{section}.{key} has no x-expect"


def test_there_are_examples() -> None:
    assert _examples(), "no example pipeline under examples/"


@pytest.mark.parametrize("path", _examples(), ids=lambda p: str(p.relative_to(REPO)))
def test_examples_validate(schema: dict[str, Any], path: Path) -> None:
    doc = yaml12.load(path.read_text(encoding="utf-8"))
    errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]
    assert errors == []
    assert pipeline.load(path.parent, files=[path]) is not None


@pytest.mark.parametrize(
    "doc",
    [
        {"a": {"img": 3}},
        {"a": {"noLog": "yes"}},
        {"a": {"retry": 6}},
        {"a": {"when": "sometimes"}},
        {"a": {"rnu": "x"}},
        {"a": {"timeout": "soon"}},
        {"a": {"remote": "just-a-name"}},
        {"a": {"env": [{"A": [1]}]}},
        {"a": {"matrix": {}}},
        {"a": {"matrix": {"v": []}}},
        {"a": {"matrix": {"v": [1, 1]}}},
        {"a": {"matrix": {"v": [None]}}},
        {"a": {"matrix": {"v": [[1]]}}},
        {"a": {"matrix": {"v": 1}}},
        {"a": {"matrix": {"a-b": [1]}}},
        {"a": 3},
        {"meta": {"statuses": "all"}},
        {"meta": {"concurrency": 0}},
        {"meta": {"colour": "blue"}},
        {"meta": {"downstream": "http://ci.example.com/"}},
        {"meta": {"downstream": ["https://u:p@ci.example.com/"]}},
        {"meta": {"downstream": "http://localhost.example.com/"}},
        {"meta": {"downstream": [f"https://h{i}.example/" for i in range(11)]}},
    ],
)
def test_schema_rejects(schema: dict[str, Any], doc: dict[str, Any]) -> None:
    assert not jsonschema.Draft7Validator(schema).is_valid(doc)


@pytest.mark.parametrize(
    "doc",
    [
        {"a": None},
        {"a": {"run": ["x", "y"], "img": "i", "env": ["A", {"B": 1, "C": True}], "timeout": 30}},
        {"a": {"timeout": "1h 30m", "retry": 0, "remote": "owner/repo@release/1.x"}},
        {"a": {"img": "x:${v}", "matrix": {"v": [1, "1.0", True, 2.5], "_W2": ["a,b"]}}},
        {"meta": {"on": {"push": {"branches": ["main"]}, "pull_request": True, "upstream": "o/r"}}},
        {"meta": {"downstream": ["https://ci.example.com/hook?x=1", "http://127.0.0.1:8080/h"]}},
        {"meta": {"downstream": "http://localhost"}},
    ],
)
def test_schema_accepts(schema: dict[str, Any], doc: dict[str, Any]) -> None:
    jsonschema.Draft7Validator(schema).validate(doc)
