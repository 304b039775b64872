"""The engine on the fake backend: a pipeline's text in, its RunResult and everything recorded out.

No Docker engine is needed, nor touched: `no_docker` points DOCKER_HOST at a
socket of the test's own and fails the test if anything connects to it.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from runner import pipeline
from runner.engine import Engine, RunOptions, prepare
from runner.outcome import RunResult, StageResult
from runner.store.local import LocalStore
from runner.supervisor import Interrupt
from tests.conftest import WritePipeline
from tests.runner.fake_backend import FakeBackend, Script


@pytest.fixture
def no_docker(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """DOCKER_HOST at a listening socket nothing may connect to; checked after the test."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{listener.getsockname()[1]}")
        yield
        listener.setblocking(False)
        try:
            connection, _ = listener.accept()
        except BlockingIOError:
            return  # nothing connected
        connection.close()
        pytest.fail("the test connected to DOCKER_HOST: it needs no Docker engine")


@dataclass
class RecordingReporter:
    """The Reporter the console would be: every call, with the stage name and text."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    finished: list[StageResult] = field(default_factory=list)

    def run_started(self, run: RunResult, order: list[str]) -> None:
        self.calls.append(("run_started", run.id))

    def stage_started(self, name: str) -> None:
        self.calls.append(("stage_started", name))

    def stage_output(self, name: str, line: str) -> None:
        self.calls.append(("stage_output", f"{name}: {line}"))

    def stage_note(self, name: str, text: str) -> None:
        self.calls.append(("stage_note", f"{name}: {text}"))

    def stage_finished(self, result: StageResult) -> None:
        self.finished.append(result)

    def run_finished(self, run: RunResult) -> None:
        self.calls.append(("run_finished", run.status.value))


@dataclass
class FakeRun:
    """One run of the engine on `backend`; `run()` runs the pipeline written by the test."""

    backend: FakeBackend
    store: LocalStore
    reporter: RecordingReporter
    write: WritePipeline
    interrupt: Interrupt = field(default_factory=Interrupt)
    """What the CLI's Ctrl-C handler sets; a test requests it from anywhere."""
    pauses: list[int] = field(default_factory=list)
    """The attempts after which the engine paused before retrying."""
    result: RunResult | None = None

    def run(self, text: str, **options: Any) -> RunResult:
        loaded = pipeline.load(self.write({".dockercise.yml": text}))
        assert loaded is not None
        plan = prepare(loaded, RunOptions(**options))
        engine = Engine(
            self.backend,
            self.store,
            self.reporter,
            retry_pause=self._pause,
            interrupt=self.interrupt,
        )
        self.result = engine.run(plan)
        return self.result

    def _pause(self, attempt: int) -> float:
        self.pauses.append(attempt)
        return 0.0

    def stage(self, name: str) -> StageResult:
        assert self.result is not None
        return self.result.stages[name]

    def log(self, stage: str) -> str:
        assert self.result is not None
        raw = self.store.read_bytes(self.result.id, f"{stage}.log")
        return raw.decode() if raw is not None else ""


Scripts = Mapping[str, Script | Sequence[Script]]
MakeRun = Callable[..., FakeRun]


@pytest.fixture
def fake_run(no_docker: None, write_pipeline: WritePipeline, tmp_path: Path) -> MakeRun:
    """`fake_run({stage: Script(...)})`: an engine run on a FakeBackend with those scripts."""

    def make(scripts: Scripts | None = None) -> FakeRun:
        backend = FakeBackend(dict(scripts or {}))
        store = LocalStore(tmp_path / "results")
        return FakeRun(backend, store, RecordingReporter(), write_pipeline)

    return make
