"""Who made a run's leftovers, and whether that process is dead (pure, apart from `here`).

Everything a run makes (containers, networks, built images, its private temp
directory) carries an `Owner`: the machine (host name, boot id, PID
namespace) and the process (pid, start time).  A process that starts later
(`dockercise run`, `worker`, `serve`) removes what dead owners left
(`runner.recovery`), and must never touch a live process's things nor
another machine's: several runs and workers share one engine, and a Docker
engine may be shared by machines.

A pid alone is not a process: pids are reused, so the start time (field 22
of /proc/PID/stat, clock ticks since boot) tells the owner from a newcomer
that got its pid.  A different boot id on the same host means the machine
rebooted since, which killed the owner.  A different PID namespace (the bot
in a container sharing the host's engine, with the same host name) means
its processes cannot be seen from here, so nothing of it is judged.

A built image names no owner in its labels (a label that changes every run
would cost every build a step the cache never has); its run's owner is
named by one more tag instead (`owner_tag`), which the cache ignores.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "LABEL_RUN",
    "LABEL_STORE",
    "Machine",
    "Owner",
    "Process",
    "Verdict",
    "blank_labels",
    "digested",
    "here",
    "judge",
    "owner_tag",
    "parse_stat",
    "process",
    "tag_owner",
]

LABEL_RUN = "dockercise.run"
LABEL_STORE = "dockercise.store"
"""The results store (URL, with the repository's prefix in bot builds) the run writes to."""
_PREFIX = "dockercise.owner."


def blank_labels() -> dict[str, str]:
    """Every owner label (and the store's) with an empty value: what a container or image is
    given under its real ones, so that a value its image brings (a Dockerfile's `LABEL`, a
    pulled image's) can never stand for one: Docker merges the image's labels into a
    container's, and an empty value names no owner."""
    keys = [f"{_PREFIX}{k}" for k in ("host", "boot", "pidns", "pid", "started")]
    return dict.fromkeys([*keys, LABEL_STORE], "")


class Verdict(StrEnum):
    ALIVE = "alive"
    DEAD = "dead"
    ELSEWHERE = "elsewhere"
    """Another machine's, or one whose processes cannot be seen from here: never touched."""


UNKNOWN = "unknown"


@dataclass(frozen=True)
class Machine:
    host: str
    boot_id: str
    pid_namespace: str

    @property
    def known(self) -> bool:
        """Whether its processes can be judged: no /proc (macOS, Windows), no judging."""
        return UNKNOWN not in (self.boot_id, self.pid_namespace)


@dataclass(frozen=True)
class Process:
    """What /proc says of a live pid."""

    started: int | None
    """Clock ticks after boot (field 22 of /proc/PID/stat); None when it exists but /proc
    hides it (`hidepid`: another user's process), so it cannot be told from a newcomer."""
    zombie: bool = False
    """Dead, not reaped yet by its parent."""


@dataclass(frozen=True)
class Owner:
    machine: Machine
    pid: int
    started: int

    def labels(self) -> dict[str, str]:
        return {
            f"{_PREFIX}host": self.machine.host,
            f"{_PREFIX}boot": self.machine.boot_id,
            f"{_PREFIX}pidns": self.machine.pid_namespace,
            f"{_PREFIX}pid": str(self.pid),
            f"{_PREFIX}started": str(self.started),
        }

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> Owner | None:
        """The owner these labels name, or None when any part is missing or malformed.

        None means "not ours to judge": things of older versions, or of
        other tools, are never touched.
        """
        try:
            return cls(
                Machine(
                    _text(labels[f"{_PREFIX}host"]),
                    _text(labels[f"{_PREFIX}boot"]),
                    _text(labels[f"{_PREFIX}pidns"]),
                ),
                _number(labels[f"{_PREFIX}pid"]),
                _number(labels[f"{_PREFIX}started"]),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def to_json(self) -> dict[str, Any]:
        return {k.removeprefix(_PREFIX): v for k, v in self.labels().items()}

    @classmethod
    def from_json(cls, data: object) -> Owner | None:
        if not isinstance(data, dict):
            return None
        return cls.from_labels({f"{_PREFIX}{k}": v for k, v in data.items() if isinstance(k, str)})


def _text(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 256 or not value.isprintable():
        raise ValueError(value)
    return value


def _number(value: object) -> int:
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        raise ValueError(value)
    number = int(value)
    if number <= 0 or number >= 2**63:
        raise ValueError(value)
    return number


def judge(owner: Owner, machine: Machine, lookup: Callable[[int], Process | None]) -> Verdict:
    """Whether `owner` is alive, as seen from `machine`; `lookup(pid)` is what /proc says.

    Only the same host and PID namespace can tell; there, a process that is
    gone, a zombie, or a pid now held by a process started at another
    time is dead, and so is everything from an earlier boot.  A pid that
    exists but whose start time is hidden counts as alive: when in doubt,
    nothing is touched.
    """
    if owner.machine.host != machine.host or not (machine.known and owner.machine.known):
        return Verdict.ELSEWHERE
    if owner.machine.boot_id != machine.boot_id:
        return Verdict.DEAD  # a reboot killed it
    if owner.machine.pid_namespace != machine.pid_namespace:
        return Verdict.ELSEWHERE
    found = lookup(owner.pid)
    if found is None or found.zombie:
        return Verdict.DEAD
    if found.started is None or found.started == owner.started:
        return Verdict.ALIVE
    return Verdict.DEAD


def parse_stat(text: str) -> Process | None:
    """/proc/PID/stat -> Process; None when it cannot be read as one.

    The command name (field 2) is in parentheses and may itself hold spaces
    and parentheses, so the fields are counted after the last `)`.
    """
    _, paren, rest = text.rpartition(")")
    fields = rest.split()
    if not paren or len(fields) < 20:
        return None
    state, started = fields[0], fields[19]  # fields 3 and 22
    if not started.isdigit():
        return None
    return Process(int(started), zombie=state in ("Z", "X", "x"))


_DIGEST = 12
_OWNER_MARK = "-owner-"
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_HEX = re.compile(rf"[0-9a-f]{{{_DIGEST}}}")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_DIGEST]


def digested(machine: Machine) -> Machine:
    """`machine` as an owner tag names it: digests of its parts (a tag is at most 128
    characters of a few kinds, a host name need not be), judged as the parts would be."""
    if not machine.known:
        return machine
    return Machine(_digest(machine.host), _digest(machine.boot_id), _digest(machine.pid_namespace))


def owner_tag(run_id: str, owner: Owner) -> str | None:
    """The tag (after `dockercise-build:`) naming run `run_id`'s owner on an image it built:
    `<runId>-owner-<host>-<boot>-<pidns>-<pid>-<started>`, the machine's parts digested.

    None when the owner cannot be judged anywhere (no /proc) or the run id makes no tag.
    """
    if not owner.machine.known:
        return None
    m = digested(owner.machine)
    tag = f"{run_id}{_OWNER_MARK}{m.host}-{m.boot_id}-{m.pid_namespace}-{owner.pid}-{owner.started}"
    return tag if _TAG.fullmatch(tag) else None


def tag_owner(tag: str) -> tuple[str, Owner] | None:
    """The run and the (digested) owner an `owner_tag` names; None for any other tag."""
    run_id, mark, rest = tag.rpartition(_OWNER_MARK)
    parts = rest.split("-")
    if not mark or not run_id or len(parts) != 5 or not all(_HEX.fullmatch(p) for p in parts[:3]):
        return None
    try:
        return run_id, Owner(Machine(*parts[:3]), _number(parts[3]), _number(parts[4]))
    except ValueError:
        return None


# --- this machine (I/O) -------------------------------------------------------------------


def process(pid: int) -> Process | None:
    """What /proc says of `pid`, or None when no such process exists.

    /proc may hide other users' processes (`hidepid`), so a pid it does not
    show is asked about with signal 0 before it is called gone.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as stat:
            found = parse_stat(stat.read())
    except OSError:
        found = None
    if found is not None:
        return found
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except OSError:  # PermissionError: it exists, and is someone else's
        pass
    return Process(None)


def here() -> Machine:
    """This machine, as an owner records it."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            boot = f.read().strip()
    except OSError:
        boot = UNKNOWN
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = UNKNOWN
    return Machine(socket.gethostname(), boot, namespace)


def this_process() -> Owner:
    """The owner this process writes on what it makes.

    Without its own start time nobody could tell it from a later process of
    the same pid: it then names no machine that can be judged.
    """
    own = process(os.getpid())
    if own is None or own.started is None:
        return Owner(Machine(socket.gethostname(), UNKNOWN, UNKNOWN), os.getpid(), 1)
    return Owner(here(), os.getpid(), own.started)
