"""Pipeline files -> validated model (SPEC §1-§2, §6).

Everything here is pure apart from reading the files: collect them, parse them
as YAML 1.2, check them against `schema.json`, then check what a schema cannot
say (stage names, references, duplicates across files).  Every problem found
is collected, so the user fixes them all in one go.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import re
from collections.abc import Callable, Iterable
from functools import cache
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import fastjsonschema

from runner import dag, yaml12
from runner.errors import CycleError, PipelineInvalid, Problem
from runner.model import CODE, EnvItem, Meta, Mount, MountKind, Pipeline, Stage, Triggers, When

__all__ = ["find_files", "is_pipeline_path", "load", "parse_duration", "schema"]

_SKIP_DIRS = {".git", "node_modules"}
_OUT_MENTION = re.compile(r"(?<![\w.\-/])/?out/([^\s/'\"`;|&()<>$\\]+)")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@cache
def schema() -> dict[str, Any]:
    """The published JSON Schema of a pipeline file."""
    text = resources.files("runner").joinpath("schema.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@cache
def _validator() -> Any:
    """Finds every error, with its path: used only when the fast check fails.

    Imported here because it costs 30 ms of start-up, and valid files never need it.
    """
    import jsonschema

    return jsonschema.Draft7Validator(schema())


@cache
def _fast_check() -> Callable[[Any], Any]:
    """The same schema compiled to Python: about 20 times faster, but stops at the first error."""
    # compile() rewrites the $refs of the dict it is given: keep schema() as published.
    return fastjsonschema.compile(copy.deepcopy(schema()))


def _is_pipeline_file(name: str) -> bool:
    return name in (".dockercise.yml", "dockercise.yml") or name.endswith(
        (".dockercise.yml", ".dockercise.yaml")
    )


def is_pipeline_path(relpath: str) -> bool:
    """Whether `find_files` would take this path (relative, `/`-separated): for file lists
    that come from elsewhere than a disk, such as a commit's tree on GitHub."""
    *folders, name = relpath.split("/")
    skipped = any(f in _SKIP_DIRS or f.startswith(".") for f in folders)
    return not skipped and _is_pipeline_file(name)


def find_files(root: Path) -> list[Path]:
    """Every pipeline file under root, skipping `.git`, `node_modules` and hidden directories."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        found.extend(Path(dirpath, f) for f in sorted(filenames) if _is_pipeline_file(f))
    return found


def parse_duration(value: str | int) -> float:
    """`90s`, `10m`, `1h30m`, `500ms` or a number of seconds -> seconds."""
    if isinstance(value, int):
        return float(value)
    return sum(float(n) * _UNITS[unit] for n, unit in _DURATION_PART.findall(value))


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _name_problem(name: Any) -> str | None:
    if not isinstance(name, str):
        return f"stage name {name!r} must be a string (quote it: '{name}')"
    if not name:
        return "a stage name must not be empty"
    if len(name) > 100:
        return "a stage name must be at most 100 characters"
    if any(c in name for c in "/\\\0"):
        return f"stage name {name!r} must not contain '/', '\\' or NUL"
    if name.startswith("."):
        return f"stage name {name!r} must not start with '.'"
    if name == CODE:
        return "'code' is reserved for the checkout (rename the stage)"
    return None


class _FileChecker:
    """Turns one parsed file into stages, or problems that name file, line, stage and key."""

    def __init__(self, relpath: str, doc: yaml12.LineDict) -> None:
        self.file = relpath
        self.doc = doc
        self.problems: list[Problem] = []

    def problem(self, line: int, stage: str | None, message: str) -> None:
        self.problems.append(Problem(self.file, line, stage, message))

    def key_line(self, stage: str, key: str | None = None) -> int:
        line = self.doc.lines.get(stage, 0)
        body = self.doc.get(stage)
        if key is not None and isinstance(body, yaml12.LineDict):
            line = body.lines.get(key, line)
        return line

    def schema_problems(self) -> None:
        try:
            _fast_check()(self.doc)
            return
        except fastjsonschema.JsonSchemaException:
            pass
        props = schema()["definitions"]
        for error in _validator().iter_errors(self.doc):
            path = list(error.absolute_path)
            if not path:
                continue  # the top level is a mapping: checked before we get here
            top = path[0]
            stage = None if top == "meta" else str(top)
            section = props["meta" if top == "meta" else "stage"]
            if len(path) == 1:
                if error.validator == "additionalProperties":
                    known = section["properties"]
                    for key in error.instance:
                        if key not in known:
                            what = "meta key" if stage is None else "key"
                            self.problem(
                                self.key_line(str(top), key),
                                stage,
                                f"unknown {what} '{key}'{_suggest(str(key), known)}",
                            )
                else:
                    what = "meta" if stage is None else "a stage"
                    self.problem(
                        self.key_line(str(top)),
                        stage,
                        f"{what} must be a mapping of keys, not {_describe(error.instance)}",
                    )
                continue
            key = str(path[1])
            expect = section["properties"].get(key, {}).get("x-expect", "valid")
            value = self.doc[top][path[1]]
            self.problem(
                self.key_line(str(top), key),
                stage,
                f"'{key}' must be {expect}, not {_describe(value)}",
            )

    def duplicate_problems(self) -> None:
        for mapping, stage in self._mappings():
            for key, first, again in mapping.duplicates:
                self.problem(again, stage, f"'{key}' is given twice (first at line {first})")

    def _mappings(self) -> Iterable[tuple[yaml12.LineDict, str | None]]:
        yield self.doc, None
        for name, body in self.doc.items():
            if isinstance(body, yaml12.LineDict):
                yield body, None if name == "meta" else str(name)


def _describe(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"'{value}'" if len(value) < 40 else "a string"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _script(run: Any) -> str | None:
    if run is None:
        return None
    if isinstance(run, str):
        return run
    return "set -e\n" + "\n".join(run)


def _mount(item: str) -> Mount | str:
    """Parse a `vol` item, or return why it is wrong."""
    if item.startswith(("/", "./", "../", "~")):
        parts = item.split(":")
        if len(parts) not in (2, 3) or not parts[1].startswith("/"):
            return f"host volume '{item}' must be /host/path:/container/path[:ro|:rw]"
        mode = parts[2] if len(parts) == 3 else "ro"
        if mode not in ("ro", "rw"):
            return f"host volume '{item}' has mode '{mode}' (use ro or rw)"
        return Mount(MountKind.HOST, parts[0], parts[1], mode == "ro")
    name, sep, target = item.partition(":")
    if sep and not target.startswith("/"):
        return f"volume '{item}' must be NAME or NAME:/absolute/path"
    kind = MountKind.CODE if name == CODE else MountKind.STAGE
    return Mount(kind, name, target or f"/{name}", True)


def _build_stage(checker: _FileChecker, name: str, body: dict[str, Any] | None) -> Stage:
    body = body or {}
    mounts: list[Mount] = []
    for item in _as_tuple(body.get("vol")):
        parsed = _mount(item)
        if isinstance(parsed, str):
            checker.problem(checker.key_line(name, "vol"), name, parsed)
        else:
            mounts.append(parsed)
    env: list[EnvItem] = []
    raw_env = body.get("env")
    for item in [raw_env] if isinstance(raw_env, str) else raw_env or ():
        if isinstance(item, dict):
            env.extend(EnvItem(str(k), _literal(v)) for k, v in item.items())
        else:
            env.append(EnvItem(item))
    timeout = body.get("timeout")
    return Stage(
        name=name,
        file=checker.file,
        line=checker.key_line(name),
        key_lines=dict(getattr(body, "lines", {})),
        img=body.get("img"),
        build=body.get("build"),
        run=_script(body.get("run")),
        after=_as_tuple(body.get("after")),
        env=tuple(env),
        vol=tuple(mounts),
        on=body.get("on"),
        dir=body.get("dir"),
        no_log=body.get("noLog", False),
        never_fail=body.get("neverFail", False),
        when=When(body.get("when", "success")),
        if_=body.get("if"),
        unless=body.get("unless"),
        timeout=parse_duration(timeout) if timeout is not None else None,
        retry=body.get("retry", 0),
        paths=_as_tuple(body.get("paths")),
        remote=body.get("remote"),
    )


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _read(path: Path, relpath: str) -> yaml12.LineDict | Problem | None:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return Problem(relpath, 0, None, "not UTF-8 text (save the file as UTF-8)")
    except OSError as e:
        return Problem(relpath, 0, None, f"cannot read: {e.strerror}")
    try:
        doc = yaml12.load(text)
    except yaml12.YamlError as e:
        return Problem(relpath, e.line, None, str(e))
    if doc is None:
        return None
    if not isinstance(doc, yaml12.LineDict):
        return Problem(
            relpath, 1, None, f"a pipeline file must be a mapping of stages, not {_describe(doc)}"
        )
    return doc


def load(root: Path, files: list[Path] | None = None) -> Pipeline | None:
    """Load and validate the pipeline under root; None when there is no pipeline file.

    Raises PipelineInvalid with every problem found.
    """
    root = root.resolve()
    paths = files if files is not None else find_files(root)
    if not paths:
        return None
    problems: list[Problem] = []
    stages: dict[str, Stage] = {}
    meta: dict[str, Any] = {}
    meta_from: dict[str, str] = {}
    meta_at: dict[str, tuple[str, int]] = {}
    relfiles: list[str] = []
    for path in paths:
        relpath = os.path.relpath(path.resolve(), root) if path.is_absolute() else str(path)
        relpath = relpath if not relpath.startswith("..") else str(path)
        relfiles.append(relpath)
        doc = _read(path if path.is_absolute() else root / path, relpath)
        if doc is None:
            continue
        if isinstance(doc, Problem):
            problems.append(doc)
            continue
        checker = _FileChecker(relpath, doc)
        checker.duplicate_problems()
        checker.schema_problems()
        for name, body in doc.items():
            if name == "meta":
                if isinstance(body, dict):
                    for key, value in body.items():
                        if key in meta:
                            checker.problem(
                                checker.key_line("meta", key),
                                None,
                                f"meta key '{key}' is also set in {meta_from[key]}",
                            )
                        meta[key], meta_from[key] = value, relpath
                        meta_at[key] = (relpath, checker.key_line("meta", key))
                continue
            why = _name_problem(name)
            if why is not None:
                checker.problem(doc.lines.get(name, 0), None, why)
                continue
            if name in stages:
                first = stages[name]
                checker.problem(
                    doc.lines[name],
                    name,
                    f"defined again (first in {first.file}:{first.line}; rename one)",
                )
                continue
            if any(p.stage == name for p in checker.problems):
                # Keep the name, so other stages' references to it are not reported too.
                stages[name] = Stage(name, relpath, doc.lines[name])
            else:
                stages[name] = _build_stage(checker, name, body)
        problems.extend(checker.problems)
    pipeline = Pipeline(
        root=root,
        files=relfiles,
        stages=stages,
        meta=_build_meta(meta, root),
        deps={},
    )
    problems.extend(_reference_problems(pipeline))
    if "on" in meta:
        problems.extend(_meta_problems(pipeline, meta_at.get("on", (relfiles[0], 0))))
    try:
        dag.order(pipeline.deps)
    except CycleError as e:
        first = stages[e.cycle[0]]
        problems.append(
            Problem(first.file, first.line, first.name, f"{e} (remove one of these dependencies)")
        )
    if problems:
        raise PipelineInvalid(problems)
    return pipeline


def _build_meta(meta: dict[str, Any], root: Path) -> Meta:
    timeout = meta.get("timeout")
    return Meta(
        name=str(meta.get("name") or root.name),
        concurrency=meta.get("concurrency"),
        timeout=parse_duration(timeout) if timeout is not None else None,
        network=meta.get("network"),
        secrets=dict(meta.get("secrets") or {}),
        statuses=meta.get("statuses", "pipeline"),
        on=_triggers(meta.get("on") or {}),
        downstream=_as_tuple(meta.get("downstream")),
    )


def _triggers(on: dict[str, Any]) -> Triggers:
    push = on.get("push", True)
    schedule = on.get("schedule") or {}
    return Triggers(
        push=push is not False,
        branches=_as_tuple(push.get("branches")) if isinstance(push, dict) else (),
        pull_request=on.get("pull_request", True) is not False,
        cron=schedule.get("cron"),
        watch=schedule.get("watch"),
        upstream=_as_tuple(on.get("upstream")),
    )


def _meta_problems(pipeline: Pipeline, where: tuple[str, int]) -> list[Problem]:
    """What the schema cannot say about `meta.on`: a valid cron, a watch stage that exists."""
    from croniter import croniter  # only pipelines with a schedule pay for it

    on = pipeline.meta.on
    problems = []
    if on.cron is not None and not croniter.is_valid(on.cron):
        problems.append(
            Problem(
                *where,
                None,
                f"meta.on.schedule.cron '{on.cron}' is not a cron expression"
                " (five fields: minute hour day month weekday, e.g. '0 3 * * *')",
            )
        )
    if on.watch is not None and on.watch not in pipeline.stages:
        hint = _suggest(on.watch, pipeline.stages)
        problems.append(
            Problem(*where, None, f"meta.on.schedule.watch names unknown stage '{on.watch}'{hint}")
        )
    return problems


def _inside(path: str) -> bool:
    """A relative path that does not climb out of the checkout."""
    parts = PurePosixPath(path).parts
    depth = 0
    for part in parts:
        depth += -1 if part == ".." else 0 if part == "." else 1
        if depth < 0:
            return False
    return not path.startswith(("/", "~")) and "\\" not in path


def _reference_problems(pipeline: Pipeline) -> list[Problem]:
    """Check every reference to another stage and record the edges in `pipeline.deps`."""
    problems: list[Problem] = []
    names = pipeline.stages
    builds = {n for n, s in names.items() if s.build is not None}

    for stage in names.values():
        deps: set[str] = set()
        refs = [("after", ref) for ref in stage.after]
        refs += [("vol", m.source) for m in stage.vol if m.kind is MountKind.STAGE]
        refs += [(key, ref) for key, ref in (("if", stage.if_), ("unless", stage.unless)) if ref]
        if stage.on is not None and stage.on != CODE:
            refs.append(("on", stage.on))
        for key, ref in refs:
            if ref in names:
                deps.add(ref)
                continue
            choices = [*names, CODE] if key == "on" else list(names)
            problems.append(
                Problem(
                    stage.file,
                    stage.key_lines.get(key, stage.line),
                    stage.name,
                    f"'{key}' names unknown stage '{ref}'{_suggest(ref, choices)}",
                )
            )
        for item in stage.env:
            if item.value is None and item.name in names:
                deps.add(item.name)
        if stage.img in builds:
            deps.add(stage.img)
        if stage.run:
            deps.update(
                m for m in _OUT_MENTION.findall(stage.run) if m in names and m != stage.name
            )
        if stage.build is not None and not _inside(stage.build):
            problems.append(
                Problem(
                    stage.file,
                    stage.key_lines.get("build", stage.line),
                    stage.name,
                    f"'build' must be a path inside the checkout, not '{stage.build}'",
                )
            )
        if stage.remote is not None and (stage.run or stage.img or stage.build):
            problems.append(
                Problem(
                    stage.file,
                    stage.key_lines.get("remote", stage.line),
                    stage.name,
                    "a 'remote' stage runs no container (remove 'run', 'img' and 'build')",
                )
            )
        if stage.run and not stage.img and not stage.build:
            problems.append(
                Problem(
                    stage.file, stage.line, stage.name, "has 'run' but no 'img' (add img: IMAGE)"
                )
            )
        pipeline.deps[stage.name] = deps
    return problems
