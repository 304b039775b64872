"""The results site under attack: planted symlinks, terminal escapes, headers on every answer."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from pages import reading
from pages.app import create_results_app
from pages.blueprint import SECURITY_HEADERS, make_blueprint
from pages.local import create_local_app
from runner.errors import StoreUnavailable
from runner.store.base import ResultStore
from runner.store.local import FileChunks, LocalStore
from tests.pages.conftest import OLDER_ID, RUN_ID, StageFile, write_run
from webhooks.app import WebhookConfig, create_app

RUNS = "/results/local/demo/"
RUN = f"{RUNS}run/{RUN_ID}"
HOST_SECRET = "host-file-contents-42"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file (and a run folder) outside the store that a planted link points at."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "passwd").write_text(HOST_SECRET)
    return folder


def _get(app: Flask, url: str) -> tuple[int, bytes]:
    with app.test_client() as client, client.get(url) as response:
        return response.status_code, response.get_data()


@pytest.mark.parametrize("name", ["build.log", "build.zip", "build.json", "run.json"])
def test_a_file_replaced_by_a_symlink_reads_as_absent(
    store_root: Path, outside: Path, name: str
) -> None:
    target = store_root / "run" / RUN_ID / name
    target.unlink()
    target.symlink_to(outside / "passwd")
    store = LocalStore(store_root)
    assert store.read_bytes(RUN_ID, name) is None
    assert store.stream(RUN_ID, name) is None
    assert name not in store.names(RUN_ID)
    app = create_local_app(store)
    for url in (RUN, f"{RUN}.json", f"{RUN}/build.log", f"{RUN}/build.zip"):
        status, body = _get(app, url)
        assert HOST_SECRET.encode() not in body, url
        if url.endswith(name) or name == "run.json":
            assert status == 404, url


def test_a_run_folder_that_is_a_symlink_is_no_run(store_root: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    write_run(elsewhere, "20261201T000000000Z-deadbeef", [StageFile("x", "success", 0, log="x")])
    (store_root / "run" / "20261201T000000000Z-deadbeef").symlink_to(
        elsewhere / "run" / "20261201T000000000Z-deadbeef"
    )
    store = LocalStore(store_root)
    assert store.run_ids() == [RUN_ID, OLDER_ID]
    assert store.read_bytes("20261201T000000000Z-deadbeef", "run.json") is None
    assert store.names("20261201T000000000Z-deadbeef") == []
    status, _ = _get(create_local_app(store), f"{RUNS}run/20261201T000000000Z-deadbeef")
    assert status == 404


def test_a_run_directory_that_is_a_symlink_is_an_empty_store(
    store_root: Path, tmp_path: Path
) -> None:
    moved = tmp_path / "moved"
    (store_root / "run").rename(moved)
    (store_root / "run").symlink_to(moved)
    store = LocalStore(store_root)
    assert store.run_ids() == []
    assert store.read_bytes(RUN_ID, "run.json") is None
    assert _get(create_local_app(store), RUN)[0] == 404


def test_the_root_itself_may_be_a_link(store_root: Path, tmp_path: Path) -> None:
    """The root is the operator's choice (`--results`), not something planted under it."""
    link = tmp_path / "results-link"
    link.symlink_to(store_root)
    assert LocalStore(link).run_ids() == [RUN_ID, OLDER_ID]


def test_a_fifo_is_never_opened(store_root: Path) -> None:
    fifo = store_root / "run" / RUN_ID / "build.log"
    fifo.unlink()
    os.mkfifo(fifo)
    store = LocalStore(store_root)
    assert store.read_bytes(RUN_ID, "build.log") is None
    assert _get(create_local_app(store), f"{RUN}/build.log")[0] == 404


def test_writes_never_follow_a_planted_link(store_root: Path, outside: Path) -> None:
    store = LocalStore(store_root)
    folder = store_root / "run" / RUN_ID
    (folder / "build.json").unlink()
    (folder / "build.json").symlink_to(outside / "passwd")
    store.write_json(RUN_ID, "build.json", {"name": "build"})
    assert not (folder / "build.json").is_symlink()  # the link is replaced, not written through
    (folder / "new.log").symlink_to(outside / "passwd")
    with pytest.raises(StoreUnavailable, match="symbolic links"):  # exit 3, one line
        store.open_log(RUN_ID, "new")
    (store_root / "run" / "20261201T000000000Z-0000beef").symlink_to(outside)
    with pytest.raises(StoreUnavailable, match="Not a directory"):
        store.write_bytes("20261201T000000000Z-0000beef", "run.json", b"{}")
    assert (outside / "passwd").read_text() == HOST_SECRET
    assert sorted(p.name for p in outside.iterdir()) == ["passwd"]


def test_the_local_store_streams_ranges(store_root: Path) -> None:
    store = LocalStore(store_root)
    (store_root / "run" / RUN_ID / "big.log").write_bytes(bytes(range(256)) * 10_000)
    size, chunks = store.stream(RUN_ID, "big.log", -1000) or (0, [])
    assert size == 2_560_000 and b"".join(chunks) == (bytes(range(256)) * 10_000)[-1000:]
    size, chunks = store.stream(RUN_ID, "big.log", 2_559_999) or (0, [])
    assert b"".join(chunks) == b"\xff"
    size, chunks = store.stream(RUN_ID, "big.log") or (0, [])
    pieces = list(chunks)
    assert len(pieces) > 1 and b"".join(pieces) == bytes(range(256)) * 10_000
    assert store.stream(RUN_ID, "nosuch.log") is None
    assert list(store.iter_log(RUN_ID, "empty")) == []
    (store_root / "run" / RUN_ID / "empty.log").write_bytes(b"")
    assert list(store.iter_log(RUN_ID, "empty")) == [b""]


ESCAPED = (
    "plain\n"
    "\x1b[31mred\x1b[0m \x1b[1;32mbold green\x1b[m\n"
    "\x1b]0;window title\x07title gone\n"
    "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\ here\n"
    "bell\x07 back\x08space nul\x00 cr\r del\x7f c1\u009b2J end\n"
    "tab\tkept ☃\n"
)


def test_escape_sequences_are_stripped_from_the_page_not_the_download(store_root: Path) -> None:
    (store_root / "run" / RUN_ID / "test.log").write_text(ESCAPED, encoding="utf-8")
    app = create_local_app(LocalStore(store_root))
    status, page = _get(app, RUN)
    text = page.decode()
    assert status == 200
    for control in ["\x1b", "\x07", "\x08", "\x00", "\r", "\x7f", "\u009b", "evil.example"]:
        assert control not in text, repr(control)
    for shown in ["red bold green", "title gone", "click here", "tab\tkept ☃"]:
        assert shown in text, shown
    with app.test_client() as client, client.get(f"{RUN}/test.log") as raw:
        assert raw.get_data() == ESCAPED.encode()
        assert raw.mimetype == "text/plain" and raw.headers["X-Content-Type-Options"] == "nosniff"


class SpyStream(LocalStore):
    """Records what each `stream` asks for, and forbids reading a log whole."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.starts: list[tuple[str, int]] = []

    def stream(self, run_id: str, name: str, start: int = 0) -> tuple[int, FileChunks] | None:
        self.starts.append((name, start))
        return super().stream(run_id, name, start)

    def read_bytes(self, run_id: str, name: str) -> bytes | None:
        assert not name.endswith((".log", ".zip")), f"{name} read whole"
        return super().read_bytes(run_id, name)


def test_the_run_page_reads_only_the_tail_of_each_log(store_root: Path) -> None:
    store = SpyStream(store_root)
    (store_root / "run" / RUN_ID / "test.log").write_bytes(b"x\n" * (3 * reading.LOG_TAIL))
    status, _ = _get(create_local_app(store), RUN)
    assert status == 200
    assert ("test.log", -reading.LOG_TAIL) in store.starts
    assert all(start == -reading.LOG_TAIL for _, start in store.starts)
    assert _get(create_local_app(store), f"{RUN}/test.log")[0] == 200
    assert _get(create_local_app(store), f"{RUN}/build.zip")[0] == 200


# --- headers on every answer -------------------------------------------------------------


class BrokenStore(LocalStore):
    def names(self, run_id: str) -> list[str]:
        raise RuntimeError("a bug")


def _site(store_root: Path) -> Flask:
    return create_local_app(LocalStore(store_root))


def _bot_site(store_root: Path) -> Flask:
    """The results pages as the bot mounts them, on the webhook receiver's app."""
    store = LocalStore(store_root)

    def locate(owner: str, repo: str) -> ResultStore | None:
        return store if (owner, repo) == ("local", "demo") else None

    return create_app(
        WebhookConfig(
            github_secret="s",
            events_secret="e",
            on_github_event=lambda event: None,
            on_dockercise_event=lambda event: None,
            extra_blueprints=[make_blueprint(locate)],
        )
    )


ANSWERS = [
    ("GET", RUNS, 200),
    ("GET", RUN, 200),
    ("GET", f"{RUN}.json", 200),
    ("GET", f"{RUN}/build.log", 200),
    ("GET", f"{RUN}/build.zip", 200),
    ("GET", "/results/_static/live.js", 200),
    ("GET", "/results/_static/nosuch.css", 404),
    ("GET", f"{RUN}/nosuch.log", 404),
    ("GET", "/results/nobody/nothing/", 404),
    ("GET", "/nowhere", 404),
    ("POST", RUNS, 405),
    ("POST", f"{RUN}/build.log", 405),
]


@pytest.mark.parametrize("make", [_site, _bot_site], ids=["results-app", "bot-app"])
@pytest.mark.parametrize(("method", "url", "status"), ANSWERS)
def test_every_answer_carries_the_security_headers(
    store_root: Path, make: Callable[[Path], Flask], method: str, url: str, status: int
) -> None:
    app = make(store_root)
    with app.test_client() as client, client.open(url, method=method) as response:
        assert response.status_code == status
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "default-src" in response.headers["Content-Security-Policy"]
        if url.startswith("/results/") and status == 200:
            assert (
                response.headers["Content-Security-Policy"]
                == (SECURITY_HEADERS["Content-Security-Policy"])
            )


class DownStore(LocalStore):
    def run_ids(self) -> list[str]:
        raise StoreUnavailable("cannot reach s3://bucket")


@pytest.mark.parametrize(("store_type", "status"), [(BrokenStore, 500), (DownStore, 503)])
def test_error_answers_carry_the_security_headers(
    store_root: Path, store_type: type[LocalStore], status: int
) -> None:
    store = store_type(store_root)
    app = create_results_app(lambda owner, repo: store)
    with app.test_client() as client, client.get(RUN if status == 500 else RUNS) as response:
        assert response.status_code == status
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert (
            response.headers["Content-Security-Policy"]
            == (SECURITY_HEADERS["Content-Security-Policy"])
        )
