"""The S3 store against a real S3 endpoint over HTTP (moto in server mode on 127.0.0.1).

What a user relies on: SPEC §7's layout under the prefix, logs streamed up
while a stage runs with bounded memory, and no result lost when the store is
down at the start, in the middle of a run, or at the end.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import pytest

from runner.store import open_store
from tests.integration.conftest import IMAGE, Outcome, S3Bucket

pytestmark = pytest.mark.docker

Run = Callable[..., Outcome]
Project = Callable[..., Path]

PREFIX = "some/prefix"


def _run_id(outcome: Outcome) -> str:
    found = re.search(r"results: s3://\S+/run/([^/\s]+)/", outcome.out)
    assert found, outcome.out
    return found.group(1)


def test_a_run_stores_the_spec_layout_under_the_prefix(
    project: Project, dockercise: Run, s3: S3Bucket
) -> None:
    root = project(
        f"""
        meta: {{name: demo}}
        make:
          img: {IMAGE}
          run: echo made; echo artefact > $OUT/file.txt
        ☃:
          img: {IMAGE}
          after: make
          run: echo snow
        """
    )
    url = s3.url(PREFIX)
    outcome = dockercise(root, "run", "--results", url)
    assert outcome.code == 0, outcome.err
    run_id = _run_id(outcome)
    assert f"results: {url}/run/{run_id}/" in outcome.out
    base = f"{PREFIX}/run/{run_id}/"
    assert s3.listing() == [
        base + name for name in ("make.json", "make.log", "make.zip", "run.json", "☃.json", "☃.log")
    ]
    run = json.loads(s3.read(base + "run.json"))
    assert (run["id"], run["status"], run["edges"]) == (run_id, "success", [["make", "☃"]])
    snow = json.loads(s3.read(base + "☃.json"))
    assert (snow["name"], snow["status"], snow["logs"]) == ("☃", "success", "☃.log")
    assert s3.read(base + "☃.log") == b"snow\n"
    with zipfile.ZipFile(BytesIO(s3.read(base + "make.zip"))) as z:
        assert z.read("file.txt") == b"artefact\n"
    assert s3.spooled() == []
    assert "unreachable" not in outcome.err

    listed = dockercise(root, "results", "--results", url)
    assert listed.code == 0, listed.err
    assert listed.out.startswith(f"{run_id}  success")
    shown = dockercise(root, "results", run_id, "--results", url)
    assert shown.code == 0, shown.err
    assert "☃" in shown.out and "make" in shown.out and "success" in shown.out
    log = dockercise(root, "logs", run_id, "☃", "--results", url)
    assert (log.code, log.out) == (0, "snow\n")
    missing = dockercise(root, "logs", run_id, "nope", "--results", url)
    assert missing.code == 2 and "has no stage 'nope'" in missing.err


def test_reading_runs_names_and_missing_files(s3: S3Bucket, tmp_path: Path) -> None:
    store = open_store(s3.url(PREFIX), tmp_path, os.environ)
    # a prefix that starts the same
    other = open_store(s3.url(PREFIX + "x"), tmp_path, os.environ)
    ids = ["20260601T000000000Z-bbbbbbbb", "20261231T235959999Z-cccccccc", "20260101T0Z-aa"]
    for run_id in ids:
        store.write_json(run_id, "run.json", {"id": run_id})
    other.write_json("20270101T000000000Z-dddddddd", "run.json", {})
    log = store.open_log(ids[0], "☃")
    log.write(b"x" * (3 << 20))
    log.close()
    store.write_bytes(ids[0], "empty.log", b"")
    store.close()
    other.close()

    reader = open_store(s3.url(PREFIX), tmp_path, os.environ)
    assert reader.run_ids() == sorted(ids, reverse=True)
    assert reader.names(ids[0]) == ["empty.log", "run.json", "☃.log"]
    assert reader.read_json(ids[1], "run.json") == {"id": ids[1]}
    assert reader.read_bytes(ids[1], "nope.json") is None
    assert reader.read_bytes("no-such-run", "run.json") is None
    assert reader.read_bytes(ids[0], "../x") is None and reader.names("..") == []
    chunks = list(reader.iter_log(ids[0], "☃"))
    assert len(chunks) == 3 and b"".join(chunks) == b"x" * (3 << 20)  # streamed, 1 MiB each
    assert list(reader.iter_log(ids[0], "empty")) == [b""]
    assert list(reader.iter_log(ids[0], "absent")) == []
    reader.close()
    root = open_store(s3.url(), tmp_path, os.environ)
    assert root.run_ids() == []  # the bucket's root has no runs


def test_a_log_is_appended_in_place_only_while_the_bucket_still_holds_it(
    s3: S3Bucket, tmp_path: Path
) -> None:
    from runner.store.s3 import S3Remote

    remote = S3Remote(s3.client, s3.name, PREFIX)
    path = tmp_path / "a.log"
    path.write_bytes(b"a" * (6 << 20))
    key = f"{PREFIX}/run/r/a.log"
    with path.open("rb") as f:
        first = remote.push("run/r/a.log", f, 6 << 20, None)
    with path.open("ab") as f:
        f.write(b"b" * (3 << 20))
    with path.open("rb") as f:
        second = remote.push("run/r/a.log", f, 9 << 20, first)
    assert second.etag.endswith('-2"')  # a copied head and one new part, not a new upload
    assert s3.read(key) == path.read_bytes()

    s3.client.delete_object(Bucket=s3.name, Key=key)  # as if the bucket had been restored
    with path.open("ab") as f:
        f.write(b"c")
    with path.open("rb") as f:
        remote.push("run/r/a.log", f, (9 << 20) + 1, second)
    assert s3.read(key) == path.read_bytes()


def _wait_for_key(s3: S3Bucket, suffix: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [k for k in s3.listing() if k.endswith(suffix)]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no {suffix} in the bucket after {timeout}s")


def test_an_outage_in_the_middle_of_a_run_loses_nothing(
    project: Project, dockercise: Run, s3: S3Bucket
) -> None:
    root = project(
        f"""
        talk:
          img: {IMAGE}
          run: for i in $(seq 1 50); do echo line $i; sleep 0.1; done; echo art > $OUT/f.txt
        short:
          img: {IMAGE}
          run: sleep 1; echo short; echo art > $OUT/f.txt
        after:
          img: {IMAGE}
          after: talk
          run: echo done
        """
    )
    problems: list[BaseException] = []

    def outage() -> None:
        try:
            _wait_for_key(s3, "/talk.json")  # the stages have started
            s3.server.stop()
            time.sleep(3)  # `short` ends meanwhile, and the first pushes of the logs fail
            s3.server.start()
        except BaseException as e:
            problems.append(e)
            s3.server.start()

    thread = threading.Thread(target=outage)
    thread.start()
    outcome = dockercise(root, "run", "--results", s3.url(PREFIX))
    thread.join()
    assert not problems, problems
    assert outcome.code == 0, outcome.err
    assert outcome.err.count("unreachable (") == 1, outcome.err
    assert "reachable again" in outcome.err
    base = f"{PREFIX}/run/{_run_id(outcome)}/"
    assert s3.listing() == [
        base + name
        for name in (
            *("after.json", "after.log", "run.json"),
            *("short.json", "short.log", "short.zip", "talk.json", "talk.log", "talk.zip"),
        )
    ]
    assert s3.read(base + "short.log") == b"short\n"
    assert s3.read(base + "talk.log").decode().splitlines() == [f"line {i}" for i in range(1, 51)]
    assert json.loads(s3.read(base + "run.json"))["status"] == "success"
    for stage in ("talk", "short", "after"):
        assert json.loads(s3.read(base + f"{stage}.json"))["status"] == "success"
    assert s3.spooled() == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_a_store_down_from_the_start_gets_everything_later(
    project: Project, dockercise: Run, s3: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(f"say:\n  img: {IMAGE}\n  run: echo hi\n")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_free_port()}")
    monkeypatch.setenv("DOCKERCISE_SPOOL_WAIT", "1")
    url = s3.url(PREFIX)
    outcome = dockercise(root, "run", "--results", url)
    assert outcome.code == 0, outcome.err  # the run itself does not need the store
    assert outcome.err.count("unreachable (") == 1, outcome.err
    assert f"results store {url} unreachable (" in outcome.err
    assert "still unreachable; 3 result file(s) kept in" in outcome.err
    assert [p.name for p in s3.spooled()] == ["run.json", "say.json", "say.log"]
    assert s3.listing() == []

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.server.endpoint)
    run_id = _run_id(outcome)
    listed = dockercise(root, "results", "--results", url)  # uploads the leftovers first
    assert listed.code == 0, listed.err
    assert "uploaded 3 result file(s) that an earlier run left in" in listed.err
    assert listed.out.startswith(f"{run_id}  success")
    base = f"{PREFIX}/run/{run_id}/"
    assert s3.listing() == [base + n for n in ("run.json", "say.json", "say.log")]
    assert s3.read(base + "say.log") == b"hi\n"
    assert s3.spooled() == []


@pytest.mark.parametrize(
    ("make_url", "code", "message"),
    [
        (lambda s3: f"s3://{s3.name}-missing/x", 3, "-missing' does not exist (create it"),
        (lambda s3: "s3://Not_A_Bucket/x", 2, "is not an S3 bucket name"),
    ],
    ids=["missing-bucket", "bad-name"],
)
def test_a_store_that_says_no_stops_the_run_before_it_starts(
    project: Project,
    dockercise: Run,
    s3: S3Bucket,
    make_url: Callable[[S3Bucket], str],
    code: int,
    message: str,
) -> None:
    root = project(f"say:\n  img: {IMAGE}\n  run: echo hi\n")
    outcome = dockercise(root, "run", "--results", make_url(s3))
    assert outcome.code == code
    assert message in outcome.err
    assert "results:" not in outcome.out and not s3.spool.exists()


def test_missing_credentials_are_exit_3(
    project: Project,
    dockercise: Run,
    s3: S3Bucket,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    root = project(f"say:\n  img: {IMAGE}\n  run: echo hi\n")
    outcome = dockercise(root, "run", "--results", s3.url(PREFIX))
    assert outcome.code == 3
    assert "Unable to locate credentials" in outcome.err


_LAUNCHER = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def _measured(command: list[str], stdout: Path, while_running: Callable[[], None]) -> int:
    """Run `command`, calling `while_running` meanwhile; its peak RSS in MiB.

    The command is started by a small launcher: a child forked straight from
    pytest would count pytest's own pages (moto's objects) in its peak.
    """
    err = stdout.with_suffix(".err")
    with stdout.open("wb") as out, err.open("wb") as errors:
        process = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, *command], stdout=out, stderr=errors
        )
        while process.poll() is None:
            while_running()
            time.sleep(0.2)
    text = err.read_text()
    assert process.returncode == 0, text
    return int(text.split()[-1]) // 1024


@pytest.mark.slow
def test_a_200_mb_log_is_streamed_up_and_down_in_bounded_memory(
    project: Project, s3: S3Bucket, tmp_path: Path
) -> None:
    lines = 4_878_049
    printed = lines * 41  # 200 MB of 40 digits and a newline (stderr: stdout is kept as output)
    root = project(
        f"big:\n  img: {IMAGE}\n"
        f"  run: yes 0123456789012345678901234567890123456789 | head -n {lines} >&2\n"
    )
    url = s3.url(PREFIX)
    cli = [sys.executable, "-c", "from cli.main import main; main()"]
    seen: list[int] = []

    def watch() -> None:
        for key in s3.listing(PREFIX):
            if key.endswith("/big.log"):
                seen.append(s3.client.head_object(Bucket=s3.name, Key=key)["ContentLength"])

    peak = _measured(
        [*cli, "run", "-q", "-C", str(root), "--results", url], tmp_path / "run.out", watch
    )
    assert peak < 150, f"dockercise run peaked at {peak} MiB"
    (key,) = [k for k in s3.listing() if k.endswith("/big.log")]
    assert s3.client.head_object(Bucket=s3.name, Key=key)["ContentLength"] == printed
    assert any(0 < size < printed for size in seen), seen  # visible while the stage ran
    assert s3.spooled() == []

    run_id = key.split("/")[-2]
    printed_log = tmp_path / "big.log"
    peak = _measured(
        [*cli, "logs", run_id, "big", "-C", str(root), "--results", url],
        printed_log,
        lambda: None,
    )
    assert peak < 150, f"dockercise logs peaked at {peak} MiB"
    assert printed_log.stat().st_size == printed
    with printed_log.open("rb") as f:
        assert f.read(41) == b"0123456789012345678901234567890123456789\n"
