"""The default results store: a directory (`.dockercise/results` or `file:///path`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import BinaryIO

from runner.errors import StoreUnavailable
from runner.store.base import ResultStore, run_key, valid_part

__all__ = ["LocalStore"]


class LocalStore(ResultStore):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = root.as_uri()

    def _path(self, run_id: str, name: str) -> Path:
        if not valid_part(run_id) or (name and not valid_part(name)):
            raise FileNotFoundError(f"no such result: {run_id}/{name}")
        return self.root / run_key(run_id, name)

    def _writable(self, run_id: str, name: str) -> Path:
        path = self._path(run_id, name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreUnavailable(f"cannot write results to {self.root}: {e.strerror}") from None
        return path

    def write_bytes(self, run_id: str, name: str, data: bytes) -> None:
        path = self._writable(run_id, name)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # readers never see half a JSON file

    def open_log(self, run_id: str, stage: str) -> BinaryIO:
        return self._writable(run_id, f"{stage}.log").open("ab")

    def put_file(self, run_id: str, name: str, path: Path) -> None:
        shutil.copyfile(path, self._writable(run_id, name))

    def read_bytes(self, run_id: str, name: str) -> bytes | None:
        try:
            return self._path(run_id, name).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def run_ids(self) -> list[str]:
        runs = self.root / "run"
        if not runs.is_dir():
            return []
        return sorted((p.name for p in runs.iterdir() if valid_part(p.name)), reverse=True)

    def names(self, run_id: str) -> list[str]:
        try:
            folder = self._path(run_id, "")
            return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            return []
