"""What each stage's container gets: image, command, variables, mounts, working directory (pure).

SPEC §3 and §4 live here, apart from any I/O, so every rule is tested in
milliseconds; the engine only fills in stage outputs as stages finish.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runner import services
from runner.errors import MissingVariables
from runner.limits import Resources
from runner.model import CODE, EnvItem, MountKind, Pipeline, Service, Stage

__all__ = [
    "Bind",
    "ContainerSpec",
    "RunDirs",
    "container_spec",
    "external_variables",
    "service_spec",
]

HIDDEN_IN_CODE = ".dockercise"
"""The checkout's folder of local results and state: never shown to a stage."""


@dataclass(frozen=True)
class RunDirs:
    """The run's private directory on the host, and the project it runs."""

    private: Path
    project: Path

    @property
    def out(self) -> Path:
        return self.private / "out"

    @property
    def empty(self) -> Path:
        return self.private / "empty"

    def volume(self, stage: str) -> Path:
        return self.private / "vol" / stage

    def stdout(self, stage: str) -> Path:
        return self.private / "stdout" / stage


@dataclass(frozen=True)
class Bind:
    source: Path
    target: str
    read_only: bool
    host: bool = False
    """A host path the pipeline names (`vol: /host:/path`), checked before it is mounted."""


@dataclass
class ContainerSpec:
    image: str
    command: list[str] | None
    env: dict[str, str]
    binds: list[Bind]
    workdir: str | None
    network: str | None
    copy_from: Path | None = None
    """Copied into the stage's own volume before it starts (`on`)."""
    built: bool = False
    """The image is built by this run (never pulled)."""
    labels: dict[str, str] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    """What the container may use (memory, CPUs, processes, kept log): the run's limits."""
    aliases: tuple[str, ...] = ()
    """The names the container answers to on `network` (a run's own network)."""
    joins: tuple[str, ...] = ()
    """Further networks it joins, under the same aliases (a stage's own, its services')."""


def external_variables(pipeline: Pipeline, selected: Iterable[str]) -> dict[str, list[str]]:
    """Every external variable the selected stages want -> the stages that want it."""
    wanted: dict[str, list[str]] = {}
    for name in sorted(selected):
        stage = pipeline.stages[name]
        items = [*stage.env, *(item for service in stage.services for item in service.env)]
        for item in items:
            if item.value is None and item.name not in pipeline.stages:
                wanted.setdefault(item.name, [])
                if name not in wanted[item.name]:
                    wanted[item.name].append(name)
    return wanted


def resolve_external(
    pipeline: Pipeline, selected: Iterable[str], sources: Iterable[Mapping[str, str]]
) -> dict[str, str]:
    """Look each external variable up in the sources, in order, as `NAME.upper()` then `name`.

    Raises MissingVariables naming every variable found nowhere and who wants it.
    """
    sources = list(sources)
    found: dict[str, str] = {}
    missing: dict[str, list[str]] = {}
    for name, stages in external_variables(pipeline, selected).items():
        for source in sources:
            value = source.get(name.upper(), source.get(name))
            if value is not None:
                found[name] = value
                break
        else:
            missing[name.upper()] = stages
    if missing:
        raise MissingVariables(missing)
    return found


BUILT_IMAGES = "dockercise-build"
"""The repository of every run's built images: the tag names the run (`build_tag`)."""


def build_tag(run_id: str, stage: str) -> str:
    """The per-run tag of a `build` stage's image (a valid tag whatever the stage's name).

    The tag is all that names the image's run (`runner.containers.build_labels`)."""
    digest = hashlib.sha1(stage.encode(), usedforsecurity=False).hexdigest()[:12]
    return f"{run_tag_prefix(run_id)}{digest}"


def run_tag_prefix(run_id: str) -> str:
    """What every tag of the run's built images starts with."""
    return f"{BUILT_IMAGES}:{run_id}-"


def build_context(project: Path, build: str) -> tuple[Path, str]:
    """`build: path` -> (context directory, Dockerfile name inside it)."""
    path = project / build
    if path.is_dir():
        return path, "Dockerfile"
    return path.parent, path.name


def paths_match(patterns: Iterable[str], changed: Iterable[str] | None) -> bool:
    """Whether a `paths` stage runs: always without a list of changes or without patterns."""
    patterns = list(patterns)
    if changed is None or not patterns:
        return True
    from wcmatch import glob  # only runs with changed files and `paths` stages need it

    flags = glob.GLOBSTAR | glob.DOTGLOB
    return any(glob.globmatch(path, patterns, flags=flags) for path in changed)


def shell_name(name: str) -> str:
    """A variable name a POSIX shell keeps: every other character becomes `_`."""
    spelled = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return f"_{spelled}" if spelled[:1].isdigit() else spelled


def _host_path(path: str, project: Path) -> Path:
    """Absolute and normalised, never resolved: where links lead is checked at mount time."""
    expanded = Path(path).expanduser()
    return Path(os.path.normpath(expanded if expanded.is_absolute() else project / expanded))


def _variables(
    pipeline: Pipeline,
    owner: str,
    items: Iterable[EnvItem],
    external: Mapping[str, str],
    outputs: Mapping[str, str],
    literals: Mapping[tuple[str, str], str] | None,
) -> dict[str, str]:
    """`env` items' variables (SPEC §3); `owner` keys the items' decrypted `secure:` values."""
    env: dict[str, str] = {}
    for item in items:
        if item.value is not None:
            env[item.name] = (literals or {}).get((owner, item.name), item.value)
        elif item.name in pipeline.stages:
            value = outputs.get(item.name, "")
            env[item.name.upper()] = value
            # `assume-role` -> also ASSUME_ROLE: shells drop names they cannot spell.
            env[shell_name(item.name.upper())] = value
        else:
            env[item.name.upper()] = external[item.name]
    return env


def service_spec(
    pipeline: Pipeline,
    stage: Stage,
    service: Service,
    run_id: str,
    external: Mapping[str, str],
    outputs: Mapping[str, str],
    extra_env: Mapping[str, str] | None = None,
    literals: Mapping[tuple[str, str], str] | None = None,
    resources: Resources | None = None,
) -> ContainerSpec:
    """The container of one of a stage's services (SPEC §14): its image, its own command or
    `run`, its `env` as a stage's; no mounts (no /out, no volume, no checkout), the image's
    own working directory.  Its network is the stage's own, set by the caller."""
    env = {"DOCKERCISE_RUN_ID": run_id, "DOCKERCISE_STAGE": stage.name}
    env.update(extra_env or {})
    env["DOCKERCISE_SERVICE"] = service.name
    owner = services.literal_owner(stage.name, service.name)
    env.update(_variables(pipeline, owner, service.env, external, outputs, literals))
    image, built = service.img, False
    if image in pipeline.stages and pipeline.stages[image].build is not None:
        image, built = build_tag(run_id, image), True
    return ContainerSpec(
        image=image,
        built=built,
        command=["/bin/sh", "-c", service.run] if service.run is not None else None,
        env=env,
        binds=[],
        workdir=None,
        network=None,
        labels={
            "dockercise.run": run_id,
            "dockercise.stage": stage.name,
            "dockercise.service": service.name,
        },
        resources=resources or Resources(),
        aliases=(service.name,),
    )


def container_spec(
    pipeline: Pipeline,
    stage: Stage,
    dirs: RunDirs,
    run_id: str,
    external: Mapping[str, str],
    outputs: Mapping[str, str],
    extra_env: Mapping[str, str] | None = None,
    literals: Mapping[tuple[str, str], str] | None = None,
    resources: Resources | None = None,
) -> ContainerSpec:
    """The container for one stage; `outputs` holds the trimmed stdout of finished stages."""
    own = f"/{stage.name}"
    env = {"OUT": own, "DOCKERCISE_RUN_ID": run_id, "DOCKERCISE_STAGE": stage.name}
    env.update(extra_env or {})
    env.update(_variables(pipeline, stage.name, stage.env, external, outputs, literals))

    binds = [Bind(dirs.out, "/out", True), Bind(dirs.volume(stage.name), own, False)]
    hide = (dirs.project / HIDDEN_IN_CODE).is_dir()
    for mount in stage.vol:
        if mount.kind is MountKind.STAGE:
            binds.append(Bind(dirs.volume(mount.source), mount.target, True))
        elif mount.kind is MountKind.CODE:
            binds.append(Bind(dirs.project, mount.target, True))
            if hide:
                binds.append(Bind(dirs.empty, f"{mount.target.rstrip('/')}/{HIDDEN_IN_CODE}", True))
        else:
            source = _host_path(mount.source, dirs.project)
            binds.append(Bind(source, mount.target, mount.read_only, host=True))

    image, built = stage.img or "", False
    builder = stage.name if stage.build is not None else stage.img
    if builder in pipeline.stages and pipeline.stages[builder].build is not None:
        image, built = build_tag(run_id, builder), True
    copy_from = None
    workdir = "/"  # SPEC §4: `/` unless `dir` or `on` says otherwise, whatever the image's WORKDIR
    if stage.on is not None:
        copy_from = dirs.project if stage.on == CODE else dirs.volume(stage.on)
        workdir = own
    if stage.dir is not None:
        workdir = stage.dir
    return ContainerSpec(
        image=image,
        built=built,
        command=["/bin/sh", "-c", stage.run] if stage.run is not None else None,
        env=env,
        binds=binds,
        workdir=workdir,
        network=pipeline.meta.network,
        copy_from=copy_from,
        labels={"dockercise.run": run_id, "dockercise.stage": stage.name},
        resources=resources or Resources(),
    )
