"""Recovery (SPEC §10) without Docker: whose leftovers are dead (pure), and the sweep over the
fake backend, a local store and a temp folder, with made-up machines and processes."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from runner.backend import Kind, Labelled
from runner.ownership import (
    Machine,
    Owner,
    Process,
    Verdict,
    digested,
    judge,
    owner_tag,
    parse_stat,
    process,
    tag_owner,
    this_process,
)
from runner.recovery import (
    OWNER_FILE,
    RunRecord,
    Swept,
    finish_run,
    read_record,
    sweep,
    write_record,
)
from runner.store.base import ResultStore
from runner.store.local import LocalStore
from tests.runner.fake_backend import FakeBackend

HERE = Machine("ci-1", "boot-a", "pid:[4026531836]")
LIVE = Owner(HERE, 100, 5000)


def _lookup(pid: int) -> Process | None:
    """This made-up machine: pid 100 started at 5000, 200 a zombie, 300 a newer process,
    400 another user's process that /proc hides (hidepid)."""
    return {
        100: Process(5000),
        200: Process(6000, zombie=True),
        300: Process(9999),
        400: Process(None),
    }.get(pid)


@pytest.mark.parametrize(
    ("owner", "verdict"),
    [
        (LIVE, Verdict.ALIVE),
        (Owner(HERE, 101, 5000), Verdict.DEAD),  # no such pid
        (Owner(HERE, 200, 6000), Verdict.DEAD),  # a zombie
        (Owner(HERE, 300, 7000), Verdict.DEAD),  # its pid reused by a newer process
        (Owner(HERE, 400, 7000), Verdict.ALIVE),  # hidden: in doubt, never touched
        (Owner(Machine("ci-1", "boot-b", HERE.pid_namespace), 100, 5000), Verdict.DEAD),  # reboot
        (Owner(Machine("ci-2", "boot-a", HERE.pid_namespace), 101, 5000), Verdict.ELSEWHERE),
        (Owner(Machine("ci-1", "boot-a", "pid:[1]"), 101, 5000), Verdict.ELSEWHERE),
        (Owner(Machine("ci-1", "unknown", "unknown"), 101, 5000), Verdict.ELSEWHERE),
    ],
)
def test_judge(owner: Owner, verdict: Verdict) -> None:
    assert judge(owner, HERE, _lookup) is verdict


def test_a_machine_without_proc_judges_nothing() -> None:
    blind = Machine("ci-1", "unknown", "unknown")
    assert judge(Owner(blind, 101, 1), blind, lambda pid: None) is Verdict.ELSEWHERE


def test_parse_stat_counts_fields_after_the_last_parenthesis() -> None:
    fields = " ".join(["S", *["0"] * 18, "4242", "0"])
    assert parse_stat(f"77 (we ird) name)) {fields}") == Process(4242)
    assert parse_stat(f"77 (x) {fields.replace('S', 'Z', 1)}") == Process(4242, zombie=True)
    assert parse_stat("77 (truncated") is None
    assert parse_stat("77 (x) S 1 2") is None


def test_a_process_that_proc_hides_is_asked_with_signal_0(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_open = open

    def hidden(path: Any, *args: Any, **kwargs: Any) -> Any:
        if str(path).startswith("/proc/") and str(path).endswith("/stat"):
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", hidden)
    assert process(os.getpid()) == Process(None)  # exists (signal 0), start unknown
    assert process(2**22 + 1) is None  # past pid_max: no such process
    me = this_process()
    assert not me.machine.known  # without its own start time it names no judgeable machine


def test_this_process_is_alive_and_its_labels_round_trip() -> None:
    me = this_process()
    assert me.pid == os.getpid()
    assert process(me.pid) == Process(me.started)
    assert Owner.from_labels(me.labels()) == me
    assert Owner.from_json(json.loads(json.dumps(me.to_json()))) == me
    assert judge(me, me.machine, process) is Verdict.ALIVE


@pytest.mark.parametrize(
    "change",
    [
        {"dockercise.owner.pid": "-1"},
        {"dockercise.owner.pid": "1e3"},
        {"dockercise.owner.pid": "\uff11"},
        {"dockercise.owner.started": ""},
        {"dockercise.owner.host": "a\nb"},
        {"dockercise.owner.boot": "x" * 300},
    ],
)
def test_malformed_owner_labels_name_no_owner(change: dict[str, str]) -> None:
    assert Owner.from_labels({**LIVE.labels(), **change}) is None
    labels = LIVE.labels()
    del labels["dockercise.owner.pidns"]
    assert Owner.from_labels(labels) is None


# --- finishing a dead run ---------------------------------------------------------------

T0 = "2026-11-30T08:00:00.000Z"
LATER = datetime(2026, 11, 30, 8, 10, tzinfo=UTC)


def _dead_run(store: ResultStore, run_id: str) -> None:
    """What a run killed during its `long` stage leaves in its store."""
    stages = [{"name": n, "status": "waiting"} for n in ("first", "long", "later")]
    store.write_json(run_id, "run.json", {"id": run_id, "status": "running", "stages": stages})
    store.write_json(run_id, "first.json", {"name": "first", "status": "success"})
    store.write_json(run_id, "long.json", {"name": "long", "status": "running", "started": T0})


def test_finish_run_ends_running_stages_as_error_and_unstarted_ones_as_cancelled(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "results")
    _dead_run(store, "r1")
    assert finish_run(store, "r1", LATER)
    run = store.read_json("r1", "run.json")
    assert run is not None
    assert (run["status"], run["reason"], run["finished"]) == (
        "error",
        "interrupted",
        "2026-11-30T08:10:00.000Z",
    )
    assert [s["status"] for s in run["stages"]] == ["success", "error", "cancelled"]
    long = store.read_json("r1", "long.json")
    assert long is not None
    assert (long["status"], long["reason"], long["duration"]) == ("error", "interrupted", 600.0)
    later = store.read_json("r1", "later.json")
    assert later is not None and (later["status"], later["reason"]) == ("cancelled", "interrupted")
    assert store.read_json("r1", "first.json") == {"name": "first", "status": "success"}
    assert not finish_run(store, "r1", LATER)  # finished: left alone
    assert not finish_run(store, "absent", LATER)


# --- the sweep ---------------------------------------------------------------------------


def _container(cid: str, record: RunRecord, **extra: str) -> Labelled:
    return Labelled(Kind.CONTAINER, cid, {**record.labels(), "dockercise.stage": "s", **extra})


def _temp_dir(temp: Path, record: RunRecord, suffix: str = "x1") -> Path:
    private = temp / f"dockercise-{record.run_id}-{suffix}"
    private.mkdir(mode=0o700)
    write_record(private, record)
    return private


def _sweep(backend: FakeBackend, temp: Path, stores: dict[str, LocalStore]) -> Swept:
    return sweep(backend, lambda url: stores[url], temp, HERE, _lookup)


def test_sweep_removes_only_dead_owners_things_and_finishes_their_runs(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "results")
    temp = tmp_path / "tmp"
    temp.mkdir()
    dead = RunRecord("r-dead", store.url, Owner(HERE, 101, 5000))
    rebooted = RunRecord("r-boot", store.url, Owner(Machine("ci-1", "old", "p"), 100, 5000))
    live = RunRecord("r-live", store.url, LIVE)
    remote = RunRecord("r-far", store.url, Owner(Machine("ci-2", "boot-a", "p"), 101, 1))
    for record in (dead, rebooted, live, remote):
        _dead_run(store, record.run_id)
    backend = FakeBackend()
    backend.leftovers = [
        _container("c-dead", dead),
        Labelled(Kind.NETWORK, "n-dead", dead.labels()),
        Labelled(Kind.IMAGE, "i-dead", dead.labels()),
        _container("c-boot", rebooted),
        _container("c-live", live),
        _container("c-far", remote),
        Labelled(Kind.CONTAINER, "c-old-version", {"dockercise.run": "r-old"}),
    ]
    dirs = {r.run_id: _temp_dir(temp, r) for r in (dead, live, remote)}
    other = temp / "dockercise-unrelated"
    other.mkdir()

    swept = _sweep(backend, temp, {store.url: store})

    assert [t.id for t in swept.removed] == ["c-dead", "c-boot", "n-dead", "i-dead"]
    assert {t.id for t in backend.leftovers} == {"c-live", "c-far", "c-old-version"}
    assert swept.directories == [dirs["r-dead"]]
    assert sorted(p.name for p in temp.iterdir()) == sorted(
        [dirs["r-live"].name, dirs["r-far"].name, other.name]
    )
    assert sorted(swept.finished) == ["r-boot", "r-dead"]
    for run_id, status in [("r-dead", "error"), ("r-boot", "error"), ("r-live", "running")]:
        run = store.read_json(run_id, "run.json")
        assert run is not None and run["status"] == status, run_id
    assert swept.problems == []
    again = _sweep(backend, temp, {store.url: store})
    assert (again.removed, again.directories, again.finished) == ([], [], [])


def test_a_run_whose_store_cannot_be_written_keeps_its_record_for_the_next_sweep(
    tmp_path: Path,
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    store = LocalStore(tmp_path / "results")
    record = RunRecord("r-dead", store.url, Owner(HERE, 101, 5000))
    _dead_run(store, record.run_id)
    private = _temp_dir(temp, record)

    def unreachable(url: str) -> ResultStore:
        from runner.errors import StoreUnavailable

        raise StoreUnavailable(f"cannot write results to {url}: No space left on device")

    swept = sweep(FakeBackend(), unreachable, temp, HERE, _lookup)
    assert swept.problems == [
        f"cannot finish run r-dead in {store.url}: cannot write results to {store.url}:"
        " No space left on device"
    ]
    assert private.is_dir()
    swept = _sweep(FakeBackend(), temp, {store.url: store})
    assert swept.finished == ["r-dead"] and not private.exists()


def _write_raw(private: Path, data: Any) -> None:
    (private / OWNER_FILE).write_text(json.dumps(data))


def test_planted_temp_folders_are_never_believed(tmp_path: Path) -> None:
    """Anyone may write to /tmp: a folder that is a link, not this user's, or whose record
    names another run or a malformed owner steers no write and is not removed."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    store = LocalStore(tmp_path / "results")
    dead = RunRecord("r-dead", store.url, Owner(HERE, 101, 5000))
    _dead_run(store, "r-dead")
    _dead_run(store, "r-other")

    real = _temp_dir(tmp_path, dead, "real")
    (temp / "dockercise-r-dead-link").symlink_to(real)
    foreign = _temp_dir(temp, dead, "foreign")
    os.chown(foreign, 65534, 65534)
    mismatched = _temp_dir(temp, RunRecord("r-other", store.url, dead.owner), "x")
    mismatched.rename(temp / "dockercise-r-dead-renamed")
    (temp / "dockercise-r-dead-linked-record").mkdir()
    (temp / "dockercise-r-dead-linked-record" / OWNER_FILE).symlink_to(real / OWNER_FILE)
    bad = temp / "dockercise-r-dead-bad"
    bad.mkdir()
    _write_raw(bad, {"run": "r-dead", "store": store.url, "owner": {"pid": "101"}})
    climbing = temp / "dockercise-..-x"
    climbing.mkdir()
    _write_raw(climbing, {"run": "..", "store": store.url, "owner": dead.owner.to_json()})

    before = sorted(p.name for p in temp.iterdir())
    for planted in temp.iterdir():
        assert read_record(planted) is None, planted.name
    swept = _sweep(FakeBackend(), temp, {store.url: store})
    assert (swept.finished, swept.directories) == ([], [])
    assert sorted(p.name for p in temp.iterdir()) == before
    assert real.is_dir()
    for run_id in ("r-dead", "r-other"):
        run = store.read_json(run_id, "run.json")
        assert run is not None and run["status"] == "running"


def test_an_image_never_names_a_store(tmp_path: Path) -> None:
    """A pulled image may carry any label: it is removed when dead, never believed about runs."""
    store = LocalStore(tmp_path / "results")
    _dead_run(store, "r-img")
    record = RunRecord("r-img", store.url, Owner(HERE, 101, 5000))
    backend = FakeBackend()
    backend.leftovers = [Labelled(Kind.IMAGE, "i-1", record.labels())]
    swept = _sweep(backend, tmp_path, {})  # opening any store would fail the test (KeyError)
    assert [t.id for t in swept.removed] == ["i-1"]
    assert swept.finished == []


# --- built images: their owner is named by a tag (their labels cannot) ----------------------


def _gone(pid: int) -> Process | None:
    return None


def test_an_owner_tag_round_trips_digested_and_is_judged_as_labels_are() -> None:
    host = "a-very-long.host-name.example" * 4  # longer than a tag may be
    machine = Machine(host, "3f1c0a2e-7b9d-4c1e-9a8b-0123456789ab", "pid:[4026531836]")
    owner = Owner(machine, 4194304, 123456789012)
    tag = owner_tag("20261130T121500123Z-abcd1234", owner)
    assert tag is not None and len(tag) <= 128
    assert tag.startswith("20261130T121500123Z-abcd1234-owner-")
    run_id, named = tag_owner(tag) or ("", None)
    assert run_id == "20261130T121500123Z-abcd1234"
    assert named == Owner(digested(machine), owner.pid, owner.started)
    lookup = {4194304: Process(123456789012)}.get
    assert judge(named, digested(machine), lookup) is Verdict.ALIVE
    assert judge(named, digested(machine), _gone) is Verdict.DEAD
    rebooted = Machine(host, "another-boot", machine.pid_namespace)
    assert judge(named, digested(rebooted), lookup) is Verdict.DEAD
    elsewhere = Machine("ci-2", machine.boot_id, machine.pid_namespace)
    assert judge(named, digested(elsewhere), _gone) is Verdict.ELSEWHERE
    # Nothing to judge anywhere: no tag.
    assert owner_tag("r1", Owner(Machine("h", "unknown", "unknown"), 1, 1)) is None


@pytest.mark.parametrize(
    "tag",
    [
        "r1-0123456789ab",  # a stage's tag
        "r1-owner-0123456789ab-0123456789ab-0123456789ab-1",  # a part missing
        "r1-owner-0123456789ab-0123456789ab-0123456789ab-0-5",  # pid 0
        "r1-owner-0123456789AB-0123456789ab-0123456789ab-1-5",  # not a digest
        "r1-owner-0123456789ab-0123456789ab-0123456789ab-1-x",
        "-owner-0123456789ab-0123456789ab-0123456789ab-1-5",  # no run
    ],
)
def test_other_tags_name_no_owner(tag: str) -> None:
    assert tag_owner(tag) is None


def _built(backend: FakeBackend, run_id: str, owner: Owner | None) -> set[str]:
    """What a run's `build` stage leaves: its stage's tag, and its owner's; both tags."""
    tag = owner_tag(run_id, owner) if owner is not None else None
    stage = f"dockercise-build:{run_id}-0123456789ab"
    backend.build(Path("."), "Dockerfile", stage, run_id, lambda text: None, owner_tag=tag)
    return {stage} | ({f"dockercise-build:{tag}"} if tag is not None else set())


def test_a_dead_run_s_built_images_go_by_their_owner_tag_alone(tmp_path: Path) -> None:
    """No container and no temp folder name the run (a reboot emptied /tmp): its built
    images' owner tag does. A live run's, another machine's and an untagged one's stay."""
    backend = FakeBackend()
    dead = _built(backend, "r-dead", Owner(HERE, 101, 5000))
    rebooted = _built(
        backend, "r-boot", Owner(Machine("ci-1", "old", HERE.pid_namespace), 100, 5000)
    )
    live = _built(backend, "r-live", LIVE)
    far = _built(backend, "r-far", Owner(Machine("ci-2", "boot-a", HERE.pid_namespace), 101, 1))
    old = _built(backend, "r-old", None)  # an earlier version's: no owner tag
    assert len(dead) == len(rebooted) == len(live) == len(far) == 2 and len(old) == 1
    swept = _sweep(backend, tmp_path, {})
    assert {t.id for t in swept.removed} == dead | rebooted
    assert set(backend.images) == live | far | old
    assert swept.finished == [] and swept.problems == []
    assert _sweep(backend, tmp_path, {}).removed == []
