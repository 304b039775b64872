"""The site for a local results store: `/results/local/<pipeline name>/...`.

A local store can hold runs of more than one pipeline name (meta.name
changed, or two projects share a `--results` directory), so each name gets a
read-only view of the store holding only its own runs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

from flask import Flask, redirect, render_template, url_for
from werkzeug.wrappers import Response

from pages import reading
from pages.app import create_results_app
from pages.blueprint import Locate
from pages.links import LOCAL_OWNER
from runner.store.base import ResultReader

__all__ = ["PipelineRuns", "RunIndex", "create_local_app", "local_locate"]


class RunIndex:
    """Which pipeline each run belongs to, read once per run (it never changes)."""

    def __init__(self, store: ResultReader) -> None:
        self.store = store
        self._pipeline: dict[str, str] = {}
        self._lock = threading.Lock()

    def pipeline(self, run_id: str) -> str | None:
        with self._lock:
            known = self._pipeline.get(run_id)
        if known is not None:
            return known
        data = reading.read_json(self.store, run_id, "run.json")
        if data is None:
            return None  # not remembered: the run may be starting right now
        name = str(data.get("pipeline") or "")
        with self._lock:
            self._pipeline[run_id] = name
        return name

    def pipelines(self) -> list[str]:
        """Every pipeline name in the store, the one with the newest run first."""
        names = (self.pipeline(r) for r in self.store.run_ids())
        return list(dict.fromkeys(n for n in names if n))


class PipelineRuns(ResultReader):
    """A view of a store with the runs of one pipeline only."""

    def __init__(self, index: RunIndex, pipeline: str) -> None:
        self.index = index
        self.pipeline = pipeline
        self.url = index.store.url

    def _mine(self, run_id: str) -> bool:
        return self.index.pipeline(run_id) == self.pipeline

    def run_ids(self) -> list[str]:
        return [r for r in self.index.store.run_ids() if self._mine(r)]

    def names(self, run_id: str) -> list[str]:
        return self.index.store.names(run_id) if self._mine(run_id) else []

    def read_bytes(self, run_id: str, name: str) -> bytes | None:
        return self.index.store.read_bytes(run_id, name) if self._mine(run_id) else None

    def stream(self, run_id: str, name: str, start: int = 0) -> tuple[int, Iterable[bytes]] | None:
        return self.index.store.stream(run_id, name, start) if self._mine(run_id) else None

    def iter_log(self, run_id: str, stage: str) -> Iterator[bytes]:
        if self._mine(run_id):
            yield from self.index.store.iter_log(run_id, stage)


def local_locate(index: RunIndex) -> Locate:
    """`locate` for a local store: owner `local`, repo = a pipeline name found in the store."""

    def locate(owner: str, repo: str) -> ResultReader | None:
        if owner != LOCAL_OWNER or repo not in index.pipelines():
            return None
        return PipelineRuns(index, repo)

    return locate


def create_local_app(store: ResultReader) -> Flask:
    """The site for one local store; `/` leads to the pipeline with the newest run."""
    index = RunIndex(store)
    app = create_results_app(local_locate(index))

    @app.get("/")
    def home() -> Response | str:
        names = index.pipelines()
        if names:
            return redirect(url_for("results.runs", owner=LOCAL_OWNER, repo=names[0]))
        return render_template(
            "results/message.html", heading="No runs yet", message=f"No runs in {store.url} yet."
        )

    return app
