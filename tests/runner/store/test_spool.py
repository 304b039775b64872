"""The spool: every write kept on disk, uploaded in the background, never lost (fake remote)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.errors import StoreUnavailable
from runner.store import spool as spool_module
from runner.store.spool import Spool, default_root, live_interval, store_folder
from tests.runner.store.conftest import FakeRemote

MakeSpool = Callable[..., Spool]


def _files(folder: Path) -> list[str]:
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.name != ".lock"
    )


def test_writes_are_uploaded_and_then_removed_from_the_spool(
    make_spool: MakeSpool, remote: FakeRemote, spool_folder: Path
) -> None:
    spool = make_spool()
    spool.write("run/r1/run.json", b"{}")
    source = spool_folder.parent / "a.zip"
    source.write_bytes(b"zip")
    spool.put_file("run/r1/a.zip", source)
    source.unlink()  # the engine deletes its copy right away
    spool.close()
    assert remote.objects == {"run/r1/run.json": b"{}", "run/r1/a.zip": b"zip"}
    assert list(spool_folder.iterdir()) == []  # the session folder is gone too


def test_a_rewrite_during_an_upload_is_uploaded_too(
    make_spool: MakeSpool, remote: FakeRemote
) -> None:
    remote.gate.clear()
    spool = make_spool()
    spool.write("run/r1/a.json", b'"running"')
    time.sleep(0.1)  # the uploader now holds the first version, waiting at the gate
    spool.write("run/r1/a.json", b'"success"')
    remote.gate.set()
    spool.close()
    assert remote.objects["run/r1/a.json"] == b'"success"'


def test_a_growing_log_is_pushed_while_open_then_whole(
    make_spool: MakeSpool, remote: FakeRemote, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_module, "LIVE_SECONDS", 0.05)
    spool = make_spool()
    log = spool.open_log("run/r1/☃.log")
    log.write(b"one\n")
    log.flush()
    deadline = time.monotonic() + 5
    while remote.objects.get("run/r1/☃.log") != b"one\n" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert remote.objects["run/r1/☃.log"] == b"one\n"  # visible before the stage ends
    log.write(b"two\n")
    log.close()
    spool.close()
    assert remote.objects["run/r1/☃.log"] == b"one\ntwo\n"
    log_pushes = [p for p in remote.pushes if p[0] == "run/r1/☃.log"]
    assert log_pushes[-1][2] is not None  # appended: the remote is told what it already has


def test_an_outage_is_said_once_and_everything_arrives_after_it(
    make_spool: MakeSpool,
    remote: FakeRemote,
    warnings_seen: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(spool_module, "FIRST_RETRY", 0.01)
    remote.down = True
    spool = make_spool()
    for i in range(5):
        spool.write(f"run/r1/s{i}.json", b"{}")
    while remote.failures < 4:
        time.sleep(0.01)
    remote.down = False
    spool.close()
    assert sorted(remote.objects) == [f"run/r1/s{i}.json" for i in range(5)]
    assert len(warnings_seen) == 2, warnings_seen
    assert "s3://bucket unreachable (connection refused); keeping results in" in warnings_seen[0]
    assert "reachable again" in warnings_seen[1]


def test_close_gives_up_and_the_next_spool_uploads_the_leftovers(
    make_spool: MakeSpool,
    remote: FakeRemote,
    warnings_seen: list[str],
    spool_folder: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(spool_module, "FIRST_RETRY", 0.01)
    remote.down = True
    first = make_spool(wait=0.2)
    first.write("run/r1/run.json", b"final")
    first.write("run/r1/a.json", b"{}")
    log = first.open_log("run/r1/a.log")
    log.write(b"line\n")
    log.close()
    started = time.monotonic()
    first.close()
    assert time.monotonic() - started < 3
    assert "still unreachable; 3 result file(s) kept in" in warnings_seen[-1]
    (session,) = spool_folder.iterdir()
    assert _files(session) == ["run/r1/a.json", "run/r1/a.log", "run/r1/run.json"]

    remote.down = False
    second = make_spool()
    assert second.recover() == 3
    assert second.upload_recovered() == 3
    assert remote.objects == {
        "run/r1/run.json": b"final",
        "run/r1/a.json": b"{}",
        "run/r1/a.log": b"line\n",
    }
    assert [key for key, _, _ in remote.pushes][-1] == "run/r1/run.json"  # the run's last
    assert "uploaded 3 result file(s) that an earlier run left in" in warnings_seen[-1]
    assert list(spool_folder.iterdir()) == []


def test_a_running_spool_is_never_adopted(
    make_spool: MakeSpool, remote: FakeRemote, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_module, "FIRST_RETRY", 0.01)
    remote.down = True
    running = make_spool(wait=0.1)
    running.write("run/r1/run.json", b"{}")
    other = make_spool()
    assert other.recover() == 0  # its process still holds the lock and uploads them itself
    remote.down = False
    running.close()
    assert remote.objects == {"run/r1/run.json": b"{}"}


def test_a_reader_leaves_no_session_behind(make_spool: MakeSpool, spool_folder: Path) -> None:
    spool = make_spool()
    assert spool.recover() == 0
    spool.close()
    assert list(spool_folder.iterdir()) == []


def test_a_log_that_grows_far_is_pushed_less_often() -> None:
    assert live_interval(0) == live_interval(16 << 20) == 2.0
    assert live_interval(64 << 20) == 8.0
    assert live_interval(10 << 30) == 30.0


def test_each_store_url_has_its_own_folder(tmp_path: Path) -> None:
    a, b = store_folder(tmp_path, "s3://b/x"), store_folder(tmp_path, "s3://b/x/y")
    assert a != b and a.parent == b.parent == tmp_path
    assert a.name.startswith("s3_b_x-")


def test_a_default_root_made_by_someone_else_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    assert default_root().parent == tmp_path
    monkeypatch.setattr("os.getuid", lambda: 12345)  # as if another user had made the folder
    (tmp_path / "dockercise-spool-12345").mkdir()
    with pytest.raises(StoreUnavailable, match="belongs to another user"):
        default_root()


def test_an_unwritable_spool_is_a_store_error(tmp_path: Path, remote: FakeRemote) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreUnavailable, match="cannot keep results in"):
        Spool(blocker / "spool", remote, "s3://bucket")


def test_writes_from_many_threads(make_spool: MakeSpool, remote: FakeRemote) -> None:
    spool = make_spool()
    threads = [
        threading.Thread(target=spool.write, args=(f"run/r1/s{i}.json", str(i).encode()))
        for i in range(20)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spool.close()
    assert {k: v.decode() for k, v in remote.objects.items()} == {
        f"run/r1/s{i}.json": str(i) for i in range(20)
    }


def test_a_closed_spool_can_be_written_again(
    make_spool: MakeSpool, remote: FakeRemote, spool_folder: Path
) -> None:
    spool = make_spool()
    spool.write("run/r1/run.json", b"1")
    spool.close()
    spool.write("run/r2/run.json", b"2")
    spool.close()
    assert remote.objects == {"run/r1/run.json": b"1", "run/r2/run.json": b"2"}
    assert list(spool_folder.iterdir()) == []
