"""The one fake remote behind the spool's tests: a dict of keys, with outages on demand."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pytest

from runner.store.spool import Pushed, Spool


@dataclass
class FakeRemote:
    """Stores what the spool pushes; `down` makes every push fail, `gate` holds pushes."""

    objects: dict[str, bytes] = field(default_factory=dict)
    pushes: list[tuple[str, int, Pushed | None]] = field(default_factory=list)
    down: bool = False
    failures: int = 0
    gate: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.gate.set()

    def push(self, key: str, file: BinaryIO, size: int, previous: Pushed | None) -> Pushed:
        self.gate.wait()
        if self.down:
            self.failures += 1
            raise ConnectionError("connection refused")
        data = os.pread(file.fileno(), size, 0)
        self.pushes.append((key, size, previous))
        self.objects[key] = data
        return Pushed(size, f"etag-{len(self.pushes)}")


@pytest.fixture
def remote() -> FakeRemote:
    return FakeRemote()


@pytest.fixture
def spool_folder(tmp_path: Path) -> Path:
    return tmp_path / "spool" / "s3_bucket-0123456789"


@pytest.fixture
def warnings_seen() -> list[str]:
    return []


@pytest.fixture
def make_spool(
    spool_folder: Path, remote: FakeRemote, warnings_seen: list[str]
) -> Iterator[Callable[..., Spool]]:
    """`make_spool(remote=..., wait=...)`: a Spool on the shared folder, closed after the test."""
    made: list[Spool] = []

    def make(remote: FakeRemote = remote, wait: float = 5.0) -> Spool:
        spool = Spool(spool_folder, remote, "s3://bucket", wait=wait, warn=warnings_seen.append)
        made.append(spool)
        return spool

    yield make
    for spool in made:
        spool.close()
