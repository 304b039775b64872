"""What each key of a stage and of `meta` may hold: types, ranges, shapes (pure).

`schema.json` publishes these rules for editors; this module is what the loader
enforces, in one pass and linear time, and it is stricter where a JSON Schema
cannot say enough (draft 7 counts `1.0` as an integer; it cannot say that a
timeout is at most 24h).  tests/runner/test_rules_vs_schema.py holds the two
together.  A value that passes here is one the run can use as it is: nothing
wrong is left to be found once containers start (SPEC §10).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from importlib import resources
from typing import Any

from runner import matrix, services
from runner.downstream import count_problem, url_problem
from runner.model import CODE
from runner.wording import Suggester, describe, quote

__all__ = [
    "MAX_NAME",
    "MAX_RETRY",
    "MAX_TIMEOUT",
    "META_KEYS",
    "RESERVED",
    "STAGE_KEYS",
    "is_variable",
    "meta_problems",
    "name_problem",
    "parse_duration",
    "schema",
    "stage_problems",
]

MAX_TIMEOUT = 24 * 3600.0
"""Seconds of the longest `timeout` (SPEC §10)."""
MAX_RETRY = 5
MAX_NAME = 100
"""Characters of the longest stage name, a matrix stage's expansions' too (SPEC §1, §14)."""
RESERVED = {CODE: "the checkout", "out": "the stages' outputs (/out)", "meta": "pipeline settings"}
"""Names no stage may have, and what they stand for."""

_DURATION = re.compile(r"\s*(?:[0-9]+(?:\.[0-9]+)?\s*(?:ms|s|m|h)\s*)+\Z")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+\Z")
_REMOTE = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(?:@.+)?\Z")

Problems = Iterator[tuple[str | int | None, str]]
"""(key the problem is at, or the line of a nested one (a service's), or None for the stage
itself; what is wrong)."""


def parse_duration(value: str | int) -> float:
    """`90s`, `10m`, `1h30m`, `500ms` or a number of seconds -> seconds."""
    if isinstance(value, int):
        return float(value)
    return sum(float(n) * _UNITS[unit] for n, unit in _DURATION_PART.findall(value))


def is_variable(name: str) -> bool:
    """A name every shell and `docker run -e` keep: letters, digits, `_`, no digit first."""
    return bool(_VARIABLE.match(name))


def name_problem(name: Any, what: str = "stage name") -> str | None:
    """Why this cannot be a stage's name (SPEC §1), or None."""
    if not isinstance(name, str):
        shown = "null" if name is None else str(name).lower() if isinstance(name, bool) else name
        return f"{what} {shown} must be a string (quote it: '{shown}')"
    if not name:
        return f"a {what} must not be empty"
    if len(name) > MAX_NAME:
        return f"a {what} must be at most {MAX_NAME} characters"
    if "/" in name or "\\" in name or "\0" in name:
        return f"{what} {quote(name)} must not contain '/', '\\' or NUL"
    if name.startswith("."):
        return f"{what} {quote(name)} must not start with '.'"
    return None


# --- types -------------------------------------------------------------------------------------


def _string(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _strings(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(item, str) for item in value)
    )


def _bool(value: Any) -> bool:
    return isinstance(value, bool)


def _integer(value: Any) -> bool:
    return type(value) is int  # not a bool, not 1.0


def _duration(value: Any) -> bool:
    return (isinstance(value, str) and bool(_DURATION.match(value))) or (
        _integer(value) and value >= 1
    )


def _enum(*choices: str) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, str) and value in choices


def _env(value: Any) -> bool:
    if isinstance(value, str):
        return True
    if not isinstance(value, list):
        return False
    for item in value:
        if isinstance(item, dict):
            if not item or not all(isinstance(v, str | int | float) for v in item.values()):
                return False  # bool is an int
        elif not isinstance(item, str):
            return False
    return True


def _remote(value: Any) -> bool:
    return isinstance(value, str) and bool(_REMOTE.match(value))


def _retry(value: Any) -> bool:
    return _integer(value) and 0 <= value <= MAX_RETRY


def _concurrency(value: Any) -> bool:
    return _integer(value) and value >= 1


def _cache(value: Any) -> bool:
    items = [value] if isinstance(value, str | dict) else value
    if not isinstance(items, list) or not items:
        return False
    for item in items:
        if isinstance(item, dict):
            if set(item) - {"path", "key"} or not _string(item.get("path")):
                return False
            if "key" in item and not (_strings(item["key"]) and item["key"]):
                return False
        elif not _string(item):
            return False
    return True


def _secrets(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


STAGE_KEYS: dict[str, Callable[[Any], bool]] = {
    "img": _string,
    "build": _string,
    "run": _strings,
    "after": _strings,
    "env": _env,
    "vol": _strings,
    "on": _string,
    "dir": _string,
    "noLog": _bool,
    "neverFail": _bool,
    "when": _enum("success", "failure", "always"),
    "if": _string,
    "unless": _string,
    "timeout": _duration,
    "retry": _retry,
    "paths": _strings,
    "remote": _remote,
    "cache": _cache,
    "matrix": lambda value: isinstance(value, dict),  # the values: matrix.problems
    "services": lambda value: isinstance(value, dict),  # the values: services.problems
}
META_KEYS: dict[str, Callable[[Any], bool]] = {
    "name": _string,
    "concurrency": _concurrency,
    "timeout": _duration,
    "network": _string,
    "secrets": _secrets,
    "statuses": _enum("pipeline", "stages"),
    "on": lambda value: isinstance(value, dict),
    "downstream": _strings,
    "supersede": _enum("pull_requests", "all", "none"),
}


@cache
def schema() -> dict[str, Any]:
    """The published JSON Schema of a pipeline file (runner/schema.json)."""
    text = resources.files("runner").joinpath("schema.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@cache
def _expect(section: str) -> dict[str, str]:
    """What each key must be, in words: the schema's `x-expect`, so both say the same."""
    props = schema()["definitions"][section]["properties"]
    return {key: prop.get("x-expect", "valid") for key, prop in props.items()}


def _typed(
    body: Mapping[Any, Any],
    keys: Mapping[str, Callable[[Any], bool]],
    section: str,
    suggest: Suggester,
) -> Problems:
    expect = _expect(section)
    what = "meta key" if section == "meta" else "key"
    for key, value in body.items():
        check = keys.get(key) if isinstance(key, str) else None
        if check is None:
            hint = suggest(key, list(keys)) if isinstance(key, str) else ""
            yield key if isinstance(key, str) else None, f"unknown {what} {quote(key)}{hint}"
        elif not check(value):
            yield key, f"'{key}' must be {expect[key]}, not {describe(value)}"


# --- values ------------------------------------------------------------------------------------


def _timeout(key: str, value: Any) -> str | None:
    seconds = parse_duration(value)
    if seconds <= 0:
        return f"'{key}' must be more than 0s, not {quote(value)}"
    if seconds > MAX_TIMEOUT:
        return f"'{key}' must be at most 24h, not {quote(value)}"
    return None


def _variable_problem(name: Any) -> str | None:
    if not isinstance(name, str) or not is_variable(name):
        return (
            f"{quote(name)} is not a variable name"
            " (letters, digits and _, not starting with a digit)"
        )
    return None


def _target(path: str) -> str:
    """A mount target as the engine sees it: `//data/./x/` is `/data/x`."""
    return "/" + posixpath.normpath(path).lstrip("/")


def _mount_target(item: str) -> str | None:
    """Where a `vol` item mounts, or None when the item is malformed (reported elsewhere)."""
    if item.startswith(("/", "./", "../", "~")):
        parts = item.split(":")
        return parts[1] if len(parts) in (2, 3) and parts[1].startswith("/") else None
    name, sep, target = item.partition(":")
    if sep:
        return target if target.startswith("/") else None
    return f"/{name}"


def _volume_problems(name: str, vol: Any) -> Problems:
    taken = {"/out": "the stage outputs (/out)", f"/{name}": "the stage's own volume"}
    for item in [vol] if isinstance(vol, str) else vol:
        raw = _mount_target(item)
        if raw is None:
            continue
        target = _target(raw)
        if target == "/":
            yield "vol", f"'vol' item {quote(item)} mounts over / (choose a folder, e.g. /data)"
        elif target in taken:
            yield (
                "vol",
                f"'vol' item {quote(item)} mounts at {quote(target)}, already {taken[target]}",
            )
        elif target.startswith("/out/"):
            yield "vol", f"'vol' item {quote(item)} mounts inside /out, where stage outputs are"
        else:
            taken[target] = f"taken by {quote(item)}"


def cache_target(path: str) -> str:
    """A `cache` path as the engine mounts it: `//app/./.venv/` is `/app/.venv`."""
    return _target(path)


def _cache_problems(name: str, value: Any, vol: Any) -> Problems:
    """Each `cache` path absolute, not `/`, not in /out or the stage's own volume, not twice."""
    own = f"/{name}"
    mounts = {_target(t) for t in (_mount_target(i) for i in _items(vol)) if t is not None}
    seen: set[str] = set()
    for item in [value] if isinstance(value, str | dict) else value:
        raw = item if isinstance(item, str) else item["path"]
        shown = f"'cache' path {quote(raw)}"
        target = _target(raw)
        if "\0" in raw or not raw.startswith("/"):
            yield "cache", f"{shown} must be an absolute path in the container (e.g. /root/.cache)"
        elif target == "/":
            yield "cache", f"{shown} is / (choose a folder, e.g. /root/.cache)"
        elif target == "/out" or target.startswith("/out/"):
            yield "cache", f"{shown} is inside /out, where stage outputs are"
        elif target == own or target.startswith(own + "/"):
            yield (
                "cache",
                f"{shown} is inside the stage's own volume {quote(own)} (use another folder)",
            )
        elif target in mounts:
            yield "cache", f"{shown} is where a 'vol' item mounts"
        elif target in seen:
            yield "cache", f"{shown} is given twice"
        seen.add(target)
        keys = item.get("key", ()) if isinstance(item, dict) else ()
        for glob in [keys] if isinstance(keys, str) else keys:
            if (
                glob.startswith(("/", "~"))
                or ".." in glob.replace("\\", "/").split("/")
                or "\0" in glob
            ):
                yield (
                    "cache",
                    f"'cache' key {quote(glob)} must be a glob relative to the checkout"
                    " (no leading /, no '..')",
                )


def _items(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def stage_problems(name: str, body: Any, suggest: Suggester) -> Problems:
    """Everything wrong in one stage taken alone (references are checked with every stage)."""
    if body is None:
        return
    if not isinstance(body, dict):
        yield None, f"a stage must be a mapping of keys, not {describe(body)}"
        return
    typed = list(_typed(body, STAGE_KEYS, "stage", suggest))
    yield from typed
    if typed:
        return
    if "timeout" in body:
        why = _timeout("timeout", body["timeout"])
        if why:
            yield "timeout", why
    directory = body.get("dir")
    if directory is not None and not directory.startswith("/"):
        yield "dir", f"'dir' must be an absolute path (starting with /), not {quote(directory)}"
    env = body.get("env")
    for item in env if isinstance(env, list) else ():
        if isinstance(item, dict):
            for variable in item:
                why = _variable_problem(variable)
                if why:
                    yield "env", f"'env' item {why}"
    if "vol" in body:
        yield from _volume_problems(name, body["vol"])
    if "cache" in body:
        yield from _cache_problems(name, body["cache"], body.get("vol"))
    if "matrix" in body:
        for why in matrix.problems(body["matrix"]):
            yield "matrix", why
        if "remote" in body:
            yield "matrix", "a 'remote' stage cannot have a 'matrix' (it runs no container)"
        yield from _matrix_env_problems(body["matrix"], env)
    variables = [v for v in body.get("matrix") or () if isinstance(v, str)]
    if "img" in body:
        why = matrix.image_problem(body["img"], variables)
        if why:
            yield "img", why
    if "services" in body:
        yield from _services_problems(name, body, variables, suggest)


def _services_problems(
    name: str, body: Mapping[str, Any], variables: list[str], suggest: Suggester
) -> Problems:
    """A stage's `services`: their names and keys (runner.services), values as a stage's."""
    expect = _expect("stage")

    def check(key: str, value: Any) -> str | None:
        if not STAGE_KEYS[key](value):
            return f"'{key}' must be {expect[key]}, not {describe(value)}"
        if key == "img":
            return matrix.image_problem(value, variables)
        for item in value if key == "env" and isinstance(value, list) else ():
            for variable in item if isinstance(item, dict) else ():
                why = _variable_problem(variable)
                if why:
                    return f"'env' item {why}"
        return None

    if "remote" in body:
        yield "services", "a 'remote' stage cannot have 'services' (it runs no container)"
    elif "run" not in body:
        yield "services", "'services' run beside the stage's script: add 'run'"
    for line, why in services.problems(name, body["services"], check, suggest):
        yield "services" if line is None else line, why


def _matrix_env_problems(variables: Any, env: Any) -> Problems:
    """A matrix variable that `env` sets too: which value the stage gets would be a guess."""
    if not isinstance(variables, dict):
        return
    items = [env] if isinstance(env, str) else env if isinstance(env, list) else []
    named: set[str] = set()
    for item in items:
        named.update(item if isinstance(item, dict) else [item.upper()])
    for variable in variables:
        if variable in named:
            yield "matrix", f"'matrix' variable {quote(variable)} is also set by 'env'"


_ON_KEYS = ("push", "pull_request", "schedule", "upstream")


def _on_problems(on: Mapping[Any, Any], suggest: Suggester) -> Iterator[str]:
    for key, value in on.items():
        if key not in _ON_KEYS:
            yield f"unknown trigger {quote(key)} in 'meta.on'{suggest(str(key), _ON_KEYS)}"
        elif key == "push":
            branches = value.get("branches") if isinstance(value, dict) else None
            if not (
                isinstance(value, bool)
                or (
                    isinstance(value, dict)
                    and set(value) <= {"branches"}
                    and ("branches" not in value or _strings(branches))
                )
            ):
                yield (
                    "'meta.on.push' must be true, false or {branches: [GLOB, ...]},"
                    f" not {describe(value)}"
                )
        elif key == "pull_request" and not isinstance(value, bool):
            yield f"'meta.on.pull_request' must be true or false, not {describe(value)}"
        elif key == "schedule":
            yield from _schedule_problems(value)
        elif key == "upstream" and not (
            (isinstance(value, str) and _REPO.match(value))
            or (
                isinstance(value, list)
                and all(isinstance(v, str) and _REPO.match(v) for v in value)
            )
        ):
            yield f"'meta.on.upstream' must be owner/repo or a list of them, not {describe(value)}"


def _schedule_problems(value: Any) -> Iterator[str]:
    if not (
        isinstance(value, dict)
        and set(value) <= {"cron", "watch"}
        and isinstance(value.get("cron"), str)
        and isinstance(value.get("watch", ""), str)
    ):
        yield (
            "'meta.on.schedule' must be {cron: '0 3 * * *'} with an optional"
            f" watch: STAGE, not {describe(value)}"
        )
        return
    if not _cron_ok(value["cron"]):
        yield (
            f"meta.on.schedule.cron {quote(value['cron'])} is not a cron expression"
            " (five fields: minute hour day month weekday, e.g. '0 3 * * *')"
        )


def _cron_ok(cron: str) -> bool:
    """Valid, and it fires at all (`0 0 31 2 *` never does: the bot would fail each minute)."""
    if len(cron) > 200:
        return False
    from croniter import croniter  # only pipelines with a schedule pay for it

    try:
        if not croniter.is_valid(cron):
            return False
        croniter(cron).get_next(float)
    except Exception:  # croniter's own errors, and what its parsing lets through
        return False
    return True


def meta_problems(meta: Mapping[Any, Any], suggest: Suggester) -> Problems:
    """Everything wrong in a file's `meta`; the keys named are not used."""
    yield from _typed(meta, META_KEYS, "meta", suggest)
    if _string(meta.get("name")):
        why = name_problem(meta["name"], "meta.name")
        if why:
            yield "name", why
    if _duration(meta.get("timeout")):
        why = _timeout("meta.timeout", meta["timeout"])
        if why:
            yield "timeout", why
    if _secrets(meta.get("secrets")):
        for variable in meta["secrets"]:
            why = _variable_problem(variable)
            if why is not None:
                yield "secrets", f"'meta.secrets' key {why}"
    if isinstance(meta.get("on"), dict):
        for why in _on_problems(meta["on"], suggest):
            yield "on", why
    if _strings(meta.get("downstream")):
        yield from _downstream_problems(meta["downstream"])


def _downstream_problems(value: str | list[str]) -> Problems:
    """At most 10 URLs, each https:// (http:// to a loopback host), readable one way (§10)."""
    urls = [value] if isinstance(value, str) else value
    why = count_problem(urls)
    if why is not None:
        yield "downstream", f"'meta.downstream' {why}"
    for url in urls:
        why = url_problem(url)
        if why is not None:
            yield "downstream", f"'meta.downstream' URL {quote(url)} {why}"
