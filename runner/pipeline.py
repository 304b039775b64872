"""Pipeline files -> validated model (SPEC §1-§2, §6, §10).

Pure apart from reading the files (runner.sources): parse them as bounded
YAML 1.2 (runner.yaml12), check every key's value (runner.rules), expand
matrix stages (runner.matrix), then what needs every stage at once (names,
references, duplicates across files, cycles).  Every problem found is
collected, so the user fixes them all in one go; each is one line, and the
work is linear in the size of the input, so 20,000 bad stages are reported
as fast as 20,000 good ones are loaded.

`load` never raises anything but PipelineInvalid: whatever the files hold,
the verdict is a pipeline, None (no pipeline file), or that one error.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

from runner import dag, matrix, rules, services, sources, yaml12
from runner.errors import CycleError, PipelineInvalid, Problem
from runner.model import (
    CODE,
    CachePath,
    EnvItem,
    Meta,
    Mount,
    MountKind,
    Pipeline,
    Service,
    Stage,
    Supersede,
    Triggers,
    When,
)
from runner.rules import parse_duration, schema
from runner.sources import Source, find_files, is_pipeline_path
from runner.wording import Suggester, describe, quote

__all__ = [
    "find_files",
    "is_pipeline_path",
    "load",
    "load_texts",
    "parse_duration",
    "schema",
]

_OUT_MENTION = re.compile(r"(?<![\w.\-/])/?out/([^\s/'\"`;|&()<>$\\]+)")


def load(
    root: Path, files: list[Path] | None = None, *, allow_symlinks: bool = True
) -> Pipeline | None:
    """Load and validate the pipeline under root; None when there is no pipeline file.

    `files` (relative to root, or absolute) replaces the search.  Without
    `allow_symlinks` (bot builds) a pipeline file that is a symlink is a
    problem, wherever it leads.  Raises PipelineInvalid with every problem found.
    """
    try:
        root = root.resolve()
    except (OSError, RuntimeError) as e:
        why = "cannot resolve the project directory"
        raise PipelineInvalid([Problem(str(root), 0, None, why)]) from e
    paths = files if files is not None else find_files(root)
    if not paths:
        return None
    return _load(root, sources.read_files(root, paths, allow_symlinks))


def load_texts(texts: Mapping[str, str], root: Path = Path("pipeline")) -> Pipeline | None:
    """The same, from `{relative path: text}` read elsewhere (a commit, through the API).

    The same caps apply; `root` only names the pipeline (`meta.name`'s default).
    """
    if not texts:
        return None
    return _load(root, sources.read_texts(texts))


class _Loading:
    """What the files together hold so far, and every problem met."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.stages: dict[str, Stage] = {}
        self.meta: dict[str, Any] = {}
        self.meta_at: dict[str, tuple[str, int]] = {}
        self.suggest = Suggester()

    def read(self, source: Source) -> None:
        file = source.relpath
        if source.text is None:
            self.problems.append(Problem(file, 0, None, source.problem or "cannot read"))
            return
        parsed = yaml12.parse(source.text, mapping_only=True)
        if parsed.problems:
            self.problems.extend(Problem(file, line, None, why) for line, why in parsed.problems)
            return
        doc = parsed.doc
        if doc is None:
            return
        if not isinstance(doc, yaml12.LineDict):
            line = getattr(doc, "line", 1)
            what = f"a pipeline file must be a mapping of stages, not {describe(doc)}"
            self.problems.append(Problem(file, line, None, what))
            return
        for mapping, stage in _mappings(doc):
            for key, first, again in mapping.duplicates:
                what = f"{quote(key)} is given twice (first at line {first})"
                self.problems.append(Problem(file, again, stage, what))
        for name, body in doc.items():
            if name == "meta":
                self.read_meta(file, doc.lines.get(name, 0), body)
            else:
                self.read_stage(file, doc, name, body)

    def read_meta(self, file: str, line: int, body: Any) -> None:
        lines = _key_lines(body)
        if not isinstance(body, dict):
            what = f"meta must be a mapping of keys, not {describe(body)}"
            self.problems.append(Problem(file, line, None, what))
            return
        bad = set()
        for key, why in rules.meta_problems(body, self.suggest):
            bad.add(key)
            self.problems.append(Problem(file, lines.get(key, line), None, why))
        for key, value in body.items():
            if key in bad:
                continue
            if key in self.meta:
                where = self.meta_at[key][0]
                what = f"meta key {quote(key)} is also set in {where}"
                self.problems.append(Problem(file, lines.get(key, 0), None, what))
            self.meta[key] = value
            self.meta_at[key] = (file, lines.get(key, 0))

    def read_stage(self, file: str, doc: yaml12.LineDict, name: Any, body: Any) -> None:
        line = doc.lines.get(name, 0)
        why = rules.name_problem(name)
        if why is None and name in rules.RESERVED:
            why = f"{quote(name)} is reserved for {rules.RESERVED[name]} (rename the stage)"
        if why is not None:
            self.problems.append(Problem(file, line, None, why))
            return
        if name in self.stages:
            first = self.stages[name]
            what = f"defined again (first in {first.file}:{first.line}; rename one)"
            self.problems.append(Problem(file, line, name, what))
            return
        lines = _key_lines(body)
        broken = False
        for key, why in rules.stage_problems(name, body, self.suggest):
            broken = True
            at = key if isinstance(key, int) else lines.get(key, line)
            self.problems.append(Problem(file, at, name, why))
        if broken:
            # Keep the name, so other stages' references to it are not reported too.
            self.stages[name] = Stage(name, file, line)
            return
        stage = _build_stage(file, line, name, body)
        if isinstance(stage, Problem):
            self.problems.append(stage)
            self.stages[name] = Stage(name, file, line)
        else:
            self.stages[name] = stage


def _key_lines(body: Any) -> dict[Any, int]:
    """The line of each key of a mapping; nothing for any other value."""
    return body.lines if isinstance(body, yaml12.LineDict) else {}


def _mappings(doc: yaml12.LineDict) -> Iterable[tuple[yaml12.LineDict, str | None]]:
    yield doc, None
    for name, body in doc.items():
        if isinstance(body, yaml12.LineDict):
            yield body, None if name == "meta" or not isinstance(name, str) else name


def _load(root: Path, found: list[Source]) -> Pipeline:
    # Loading makes many small objects and no cycles: the cyclic garbage collector
    # would only slow it down (by a third for 50,000 stages).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _check(root, found)
    finally:
        if collecting:
            gc.enable()


def _check(root: Path, found: list[Source]) -> Pipeline:
    loading = _Loading()
    for source in found:
        loading.read(source)
    first_file = found[0].relpath if found else ""
    problems = loading.problems
    stages, matrices = _expand(loading.stages, problems)
    pipeline = Pipeline(
        root=root,
        files=[s.relpath for s in found],
        stages=stages,
        meta=_build_meta(loading.meta, root),
        deps={},
        matrices=matrices,
    )
    problems.extend(_reference_problems(pipeline, loading.suggest))
    watch = pipeline.meta.on.watch
    if watch is not None and watch in matrices:
        file, line = loading.meta_at.get("on", (first_file, 0))
        what = (
            f"meta.on.schedule.watch names matrix stage {quote(watch)}"
            " (only 'after' may name a matrix stage)"
        )
        problems.append(Problem(file, line, None, what))
    elif watch is not None and watch not in pipeline.stages:
        file, line = loading.meta_at.get("on", (first_file, 0))
        hint = loading.suggest(watch, list(pipeline.stages))
        what = f"meta.on.schedule.watch names unknown stage {quote(watch)}{hint}"
        problems.append(Problem(file, line, None, what))
    try:
        if dag.has_cycle(pipeline.deps):
            dag.order(pipeline.deps)
    except CycleError as e:
        first = pipeline.stages[e.cycle[0]]
        cycle = " -> ".join(e.cycle)
        what = f"dependency cycle: {cycle} (remove one of these dependencies)"
        problems.append(Problem(first.file, first.line, first.name, what))
    if problems:
        raise PipelineInvalid(problems)
    return pipeline


def _expand(
    stages: dict[str, Stage], problems: list[Problem]
) -> tuple[dict[str, Stage], dict[str, tuple[str, ...]]]:
    """Every matrix stage replaced by its expansions, where it stood (runner.matrix).

    An expansion's name must obey the stage-name rules like any other (at most
    100 characters) and must not be taken; the matrix stage's name stays known
    (in `matrices`) so references to it are checked, not taken for unknown.
    """
    if not any(stage.matrix for stage in stages.values()):
        return stages, {}
    expanded: dict[str, Stage] = {}
    matrices: dict[str, tuple[str, ...]] = {}
    total = 0
    for name, stage in stages.items():
        if not stage.matrix:
            expanded[name] = stage
            continue
        line = stage.key_lines.get("matrix", stage.line)
        combos = matrix.combinations(stage.matrix)
        total += len(combos)
        if total > matrix.MAX_EXPANDED:
            what = f"the pipeline's matrices make more than {matrix.MAX_EXPANDED} stages"
            problems.append(Problem(stage.file, line, name, what))
            matrices[name] = ()
            continue
        names = []
        for combo in combos:
            new = matrix.expanded_name(name, combo)
            why = None
            if len(new) > rules.MAX_NAME:
                why = (
                    f"'matrix' makes the stage name {quote(new)}, longer than {rules.MAX_NAME}"
                    " characters (shorten the stage name, variables or values)"
                )
            elif new in stages or new in expanded:
                why = f"'matrix' makes the stage name {quote(new)}, which is taken (rename one)"
            if why is not None:
                problems.append(Problem(stage.file, line, name, why))
                break
            env = tuple(EnvItem(variable, value) for variable, value in combo)
            img = matrix.substitute(stage.img, combo) if stage.img else stage.img
            if img != stage.img and (not img or not img.isprintable() or " " in img):
                what = f"'img' becomes {quote(img)} in {quote(new)}, which is no image name"
                problems.append(Problem(stage.file, stage.key_lines.get("img", line), name, what))
                break
            beside = tuple(
                replace(service, img=matrix.substitute(service.img, combo))
                for service in stage.services
            )
            bad = next((s for s in beside if not _image_name(s.img)), None)
            if bad is not None:
                what = (
                    f"service {quote(bad.name)}: 'img' becomes {quote(bad.img)} in {quote(new)},"
                    " which is no image name"
                )
                problems.append(Problem(stage.file, bad.line or line, name, what))
                break
            expanded[new] = replace(
                stage,
                name=new,
                env=env + stage.env,
                img=img,
                services=beside,
                matrix=None,
                origin=name,
                variables=combo,
            )
            names.append(new)
        matrices[name] = tuple(names)
    return expanded, matrices


def _image_name(img: str) -> bool:
    return bool(img) and img.isprintable() and " " not in img


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
            return f"host volume {quote(item)} must be /host/path:/container/path[:ro|:rw]"
        mode = parts[2] if len(parts) == 3 else "ro"
        if mode not in ("ro", "rw"):
            return f"host volume {quote(item)} has mode {quote(mode)} (use ro or rw)"
        return Mount(MountKind.HOST, parts[0], parts[1], mode == "ro")
    name, sep, target = item.partition(":")
    if sep and not target.startswith("/"):
        return f"volume {quote(item)} must be NAME or NAME:/absolute/path"
    kind = MountKind.CODE if name == CODE else MountKind.STAGE
    return Mount(kind, name, target or f"/{name}", True)


_WHEN = {when.value: when for when in When}


def _build_stage(file: str, line: int, name: str, body: dict[str, Any] | None) -> Stage | Problem:
    """The model of a stage whose keys all hold values of the right type."""
    if not body:
        return Stage(name=name, file=file, line=line)
    lines = dict(_key_lines(body))
    mounts: list[Mount] = []
    for item in _as_tuple(body.get("vol")):
        parsed = _mount(item)
        if isinstance(parsed, str):
            return Problem(file, lines.get("vol", line), name, parsed)
        mounts.append(parsed)
    env = list(services.env_items(body.get("env")))
    timeout = body.get("timeout")
    return Stage(
        name=name,
        file=file,
        line=line,
        key_lines=lines,
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
        when=_WHEN[body.get("when", "success")],
        if_=body.get("if"),
        unless=body.get("unless"),
        timeout=parse_duration(timeout) if timeout is not None else None,
        retry=body.get("retry", 0),
        paths=_as_tuple(body.get("paths")),
        remote=body.get("remote"),
        cache=tuple(_cache_items(body.get("cache"))),
        services=services.parse(body.get("services"), _script),
        matrix=body.get("matrix"),
    )


def _cache_items(value: Any) -> Iterator[CachePath]:
    """`cache` items, already checked (`rules`): paths normalised, keys as tuples."""
    for item in [value] if isinstance(value, str | dict) else value or ():
        if isinstance(item, str):
            yield CachePath(rules.cache_target(item))
        else:
            yield CachePath(rules.cache_target(item["path"]), _as_tuple(item.get("key")))


def _build_meta(meta: dict[str, Any], root: Path) -> Meta:
    """`meta` from keys that were checked one by one (a bad key is left out)."""
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
        supersede=Supersede(meta.get("supersede", "pull_requests")),
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


def _inside(path: str) -> bool:
    """A relative path that does not climb out of the checkout."""
    parts = PurePosixPath(path).parts
    depth = 0
    for part in parts:
        depth += -1 if part == ".." else 0 if part == "." else 1
        if depth < 0:
            return False
    return not path.startswith(("/", "~")) and "\\" not in path


def _reference_problems(pipeline: Pipeline, suggest: Suggester) -> list[Problem]:
    """Check every reference to another stage and record the edges in `pipeline.deps`."""
    problems: list[Problem] = []
    names = pipeline.stages
    choices = list(names)
    builds = {n for n, s in names.items() if s.build is not None}

    matrices = pipeline.matrices
    if matrices:
        choices = [*choices, *matrices]

    folded = {n.casefold(): n for n in names} if any(s.services for s in names.values()) else {}

    def matrix_problem(key: str, ref: str) -> str | None:
        """Why `key` may not name `ref`: only `after` names a matrix stage, nothing an expansion."""
        named = f"'run' reads {quote('out/' + ref)} of" if key == "run" else f"'{key}' names"
        if ref in matrices:
            return f"{named} matrix stage {quote(ref)} (only 'after' may name a matrix stage)"
        origin = names[ref].origin if ref in names else None
        if origin is not None:
            return (
                f"{named} {quote(ref)}, one expansion of matrix stage {quote(origin)}"
                f" (name {quote(origin)} in 'after' to wait for all of them)"
            )
        return None

    for stage in names.values():
        deps: set[str] = set()
        found: list[tuple[str | int | None, str]] = []
        refs = [("after", ref) for ref in stage.after]
        refs += [("vol", m.source) for m in stage.vol if m.kind is MountKind.STAGE]
        refs += [(key, ref) for key, ref in (("if", stage.if_), ("unless", stage.unless)) if ref]
        if stage.on is not None and stage.on != CODE:
            refs.append(("on", stage.on))
        for key, ref in refs:
            if matrices:
                if key == "after" and ref in matrices:
                    deps.update(matrices[ref])
                    continue
                why = matrix_problem(key, ref)
                if why is not None:
                    found.append((key, why))
                    continue
            if ref in names:
                deps.add(ref)
                continue
            hint = suggest(ref, [*choices, CODE] if key == "on" else choices)
            found.append((key, f"'{key}' names unknown stage {quote(ref)}{hint}"))
        for item in stage.env:
            if item.value is not None:
                continue
            if matrices and (why := matrix_problem("env", item.name)) is not None:
                found.append(("env", why))
            elif item.name in names:
                deps.add(item.name)
                if "=" in item.name:
                    found.append(
                        ("env", f"'env' item {quote(item.name)} cannot be a variable ('=')")
                    )
            elif not rules.is_variable(item.name.upper()):
                why = (
                    "is neither a stage nor a variable name (letters, digits and _, no digit first)"
                )
                found.append(("env", f"'env' item {quote(item.name)} {why}"))
        if matrices and stage.img and (why := matrix_problem("img", stage.img)) is not None:
            found.append(("img", why))
        elif stage.img in builds:
            deps.add(stage.img)
        if stage.run:
            mentions = set(_OUT_MENTION.findall(stage.run))
            mentions.discard(stage.name)
            for mention in mentions if matrices else ():
                why = matrix_problem("run", mention)
                if why is not None:
                    found.append(("run", why))
            deps.update(m for m in mentions if m in names)
        for service in stage.services:
            found.extend(
                _service_references(stage, service, names, folded, builds, deps, matrix_problem)
            )
        if stage.build is not None and not _inside(stage.build):
            why = f"'build' must be a path inside the checkout, not {quote(stage.build)}"
            found.append(("build", why))
        if stage.remote is not None and (stage.run or stage.img or stage.build):
            why = "a 'remote' stage runs no container (remove 'run', 'img' and 'build')"
            found.append(("remote", why))
        if stage.run and not stage.img and not stage.build:
            found.append((None, "has 'run' but no 'img' (add img: IMAGE)"))
        for at, what in found:
            if isinstance(at, int):  # a service's own line
                line = at
            else:
                line = stage.key_lines.get(at, stage.line) if at else stage.line
            problems.append(Problem(stage.file, line, stage.name, what))
        pipeline.deps[stage.name] = deps
    return problems


def _service_references(
    stage: Stage,
    service: Service,
    names: Mapping[str, Stage],
    folded: Mapping[str, str],
    builds: set[str],
    deps: set[str],
    matrix_problem: Callable[[str, str], str | None],
) -> Iterator[tuple[int, str]]:
    """A service's references, as a stage's: `env` items naming stages, `img` a `build` stage.

    What it names becomes a dependency of its stage (the service starts just
    before it).  Its name must not be another stage's too (which one would it
    reach?), nor make its log's name another stage's (`a` + `b` and `a.b`).
    """
    who, line = f"service {quote(service.name)}", service.line or stage.line
    for item in service.env:
        if item.value is not None:
            continue
        if (why := matrix_problem("env", item.name)) is not None:
            yield line, f"{who}: {why}"
        elif item.name in names:
            deps.add(item.name)
        elif not rules.is_variable(item.name.upper()):
            why = "is neither a stage nor a variable name (letters, digits and _, no digit first)"
            yield line, f"{who}: 'env' item {quote(item.name)} {why}"
    if (why := matrix_problem("img", service.img)) is not None:
        yield line, f"{who}: {why}"
    elif service.img in builds:
        deps.add(service.img)
    same = folded.get(service.name.casefold())
    if same is not None and same != stage.name:
        yield line, f"{who} has the name of stage {quote(same)}, which it would hide (rename one)"
    log = services.log_name(stage.name, service.name)
    if log in names:
        shown = quote(log + ".log")
        yield line, f"{who} keeps its log as {shown}, as stage {quote(log)} does (rename one)"
