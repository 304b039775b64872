"""What the engine needs from a container engine: the seam between scheduling and Docker (pure).

The engine and the stage executor hold a `ContainerBackend`, never the Docker
adapter itself (`runner.containers.Containers`, built by the CLI and the
bot), so the scheduling can be tested on an in-memory fake and another engine
(Podman, Kubernetes: docs/architecture.md) can plug in here.

Each step of a container's life is its own call, so that what a stage means
by a timeout or a cancellation (`runner.supervisor`) is the engine's logic,
the same on every backend.  A backend raises only the runner's own errors:

- `EngineUnavailable` (exit 3) when it is made and cannot reach its engine;
- `ImageUnavailable` when an image is missing and cannot be pulled, and
  `ContainerFailed` for anything else the engine refuses or fails at during
  a run (the stage ends as `error` with the message as its reason);
- `BuildFailed` when a stage's image does not build (the stage fails).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from runner.caching import KeptImage
from runner.limits import Resources
from runner.plan import ContainerSpec

__all__ = ["ContainerBackend", "Kind", "Labelled", "Stream"]


class Stream(StrEnum):
    """Which of a container's output streams a chunk came from."""

    STDOUT = "stdout"
    STDERR = "stderr"


class Kind(StrEnum):
    """What an engine holds that a run makes, in the order leftovers are removed."""

    CONTAINER = "container"
    NETWORK = "network"
    IMAGE = "image"


@dataclass(frozen=True)
class Labelled:
    """A container, network or image found by its label, with all its labels."""

    kind: Kind
    id: str
    labels: Mapping[str, str]


class ContainerBackend(Protocol):
    """Images and containers for one process; every call may come from any stage thread."""

    def ensure_image(self, image: str, progress: Callable[[str], None]) -> None:
        """Make `image` available, pulling it when missing; `progress` gets the pull's lines.

        ImageUnavailable when it is missing and cannot be pulled.
        """

    def build(
        self,
        context: Path,
        dockerfile: str,
        tag: str,
        run_id: str,
        output: Callable[[str], None],
        hidden: Sequence[str] = (),
        labels: Mapping[str, str] | None = None,
        resources: Resources | None = None,
        network: str | None = None,
        timeout: float | None = None,
        cache_from: str | None = None,
        owner_tag: str | None = None,
    ) -> None:
        """Build `context` with `dockerfile` into `tag`; `output` gets the builder's text.

        The image belongs to the run by its tag (`plan.build_tag`: `remove_run`
        and `built_images` find it by that), never by a label: it carries only
        `labels` (the same in every build of the stage, so that an unchanged
        Dockerfile is the cache's to its last step) over blank owner labels.
        `hidden` paths of the context are never read.  The build's
        containers get `resources` (memory and CPUs) and the `network` mode
        (None: the engine's default); a build running past `timeout` seconds
        is stopped.  BuildFailed with the builder's message (`timeout` when
        stopped at its timeout).  Layers are reused
        from `cache_from` only (a kept image, SPEC §13), never from any other
        image the engine holds.  Once built, the image is also tagged
        `owner_tag` (`ownership.owner_tag`, under `dockercise-build:`), by which
        a recovery sweep finds a dead run's images when nothing else names its
        run; a tag the engine refuses is skipped (the build stands).
        """

    def keep(self, tag: str, kept: str, repo: str) -> None:
        """Keep the built image `tag` as `kept`, its stage's layer cache for `repo` (SPEC §13).

        The kept image outlives the run and names no owner, so neither
        `remove_run` nor any recovery sweep removes it; the image kept before
        under that name is removed unless something else still names it.
        Never raises.
        """

    def use_kept(self, kept: str) -> None:
        """Record that a build starts from the kept image now (`kept_images` tells when it was
        last used, for `runner.pruning`).  Never raises."""

    def kept_images(self) -> list[KeptImage]:
        """Every image kept for a stage's layers on this engine, with its repository and the
        last time it was kept or used.  ContainerFailed when the engine cannot be asked."""

    def drop_kept(self, kept: str) -> None:
        """Forget a kept image: its name goes, and the image with it unless something else (a
        run using it right now) still names it.  Never raises."""

    def built_images(self, run_id: str) -> list[Labelled]:
        """The images the run's `build` stages made, whoever made them (its own tags: removing
        one, `discard`, removes that tag, and the image only when nothing else names it).

        ContainerFailed when the engine cannot be asked.
        """

    def built_tags(self) -> list[str]:
        """Every tag of a run's built image on this engine (`dockercise-build:...`), whatever
        run made it.  ContainerFailed when the engine cannot be asked."""

    def has_image(self, image: str) -> bool:
        """Whether the engine holds the image (never pulls)."""

    def create_network(self, name: str, labels: Mapping[str, str], internal: bool = False) -> None:
        """Make a network for a run's containers, with `labels` (its run's, `dockercise.run`
        among them: `remove_run` removes it, and the sweep when its owner died).

        Containers on it reach each other by their aliases (`spec.aliases`),
        and no container of another run is on it; an `internal` network
        reaches nothing outside it.  ContainerFailed when the engine refuses.
        """

    def remove_network(self, name: str) -> None:
        """Remove a network made by `create_network` and whatever container is still on it.

        May return before it is gone (off the critical path, as `remove`);
        `remove_run` waits for it.  Never raises.
        """

    def create(self, spec: ContainerSpec) -> str:
        """Create the container (labelled with `spec.labels`, limited by `spec.resources`),
        not started; its id.

        It joins `spec.network`, and then every network of `spec.joins`, under
        `spec.aliases`.

        No output written after `start` may be lost: a backend attaches here
        (Docker) or reads the logs from the very beginning.
        """

    def start(self, container: str) -> None: ...

    def exec(self, container: str, command: Sequence[str], timeout: float) -> int | None:
        """Run `command` inside the running container; its exit code, or None when it has not
        ended within `timeout` seconds (it is left to end with the container).

        ContainerFailed when the container is not running (it ended) or the engine refuses.
        """

    def output(self, container: str) -> Iterator[tuple[Stream, bytes]]:
        """The container's output as it is written, in chunks; ends when the container does."""

    def wait(self, container: str) -> int:
        """The exit code, once the container has ended (137 when killed)."""

    def disk_usage(self, container: str) -> int | None:
        """Bytes the container wrote outside its mounts (its own writable layer), or None
        when the engine cannot tell.  Asked every few seconds under a disk limit."""

    def kill(self, container: str) -> None:
        """Stop the container at once (no grace period); never raises, even when it is gone."""

    def remove(self, container: str) -> None:
        """Remove the container and its anonymous volumes; it may still be running.

        May return before it is gone (Docker removes off the critical path);
        `remove_run` waits for every removal.  Never raises.
        """

    def remove_run(self, run_id: str) -> None:
        """Remove everything labelled with the run, left by this process or a dead one.

        Waits for pending removals first; its networks go after its containers;
        its built images (`built_images`) when this process built them.  Never raises: the
        run's result is settled already.
        """

    def labelled(self, label: str) -> list[Labelled]:
        """Every container (running or not), network and image carrying the label `label`.

        Containers come first, then networks, then images: the order they can
        be removed in.  Recovery (`runner.recovery`) judges their owners from
        their labels.  ContainerFailed when the engine cannot be asked.
        """

    def discard(self, thing: Labelled) -> None:
        """Remove it at once (a container by force, with its anonymous volumes).

        Never raises: something already gone, or still in use, is left to
        the next sweep.
        """

    def close(self) -> None:
        """Release the connection to the engine; nothing may be called afterwards."""
