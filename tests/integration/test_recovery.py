"""Recovery (SPEC §10): kill -9 of `dockercise run`, then a new run cleans up and finishes it;
a live run of another process is never touched; a full store ends a run with exit 3, one line.

The engine is shared with other test processes, which sweep too: these tests only look at
things labelled with their own store, and never rely on a leftover staying until they look.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from runner.ownership import LABEL_STORE, this_process
from tests.conftest import kept_lineage
from tests.integration.conftest import IMAGE, S3Bucket

pytestmark = [pytest.mark.docker, pytest.mark.slow]

DOCKERCISE = str(Path(sys.executable).parent / "dockercise")


def _wait_for(predicate: Callable[[], Any], seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


def _start(root: Path, results: Path | str, tmp: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [DOCKERCISE, "run", "-C", str(root), "--results", str(results), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "TMPDIR": str(tmp)},
        text=True,
    )


def _running(client: docker.DockerClient, results: Path | str, stage: str) -> list[dict[str, Any]]:
    """The running containers of `stage` in runs that write to `results` (and no one else's)."""
    url = results.as_uri() if isinstance(results, Path) else results
    found: list[dict[str, Any]] = client.api.containers(
        filters={
            "label": [f"dockercise.store={url}", f"dockercise.stage={stage}"],
            "status": "running",
        }
    )
    return found


def _json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


QUICK = f"quick: {{img: {IMAGE}, run: echo quick}}\n"


def test_a_killed_run_is_removed_and_finished_by_the_next_run(
    project: Callable[..., Path],
    docker_client: docker.DockerClient,
    no_leaks: Path,
    tmp_path: Path,
) -> None:
    root = project(
        f"""
        image:
          build: docker/
        long:
          img: image
          run: echo started; sleep 120
        later:
          img: {IMAGE}
          after: long
          run: echo never
        """
    )
    (root / "docker").mkdir()
    (root / "docker" / "Dockerfile").write_text(f"FROM {IMAGE}\nRUN echo built > /built.txt\n")
    results = tmp_path / "results"
    victim = _start(root, results, no_leaks)
    try:
        (container,) = _wait_for(lambda: _running(docker_client, results, "long"))
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.communicate()
    labels = container["Labels"]
    run_id = labels["dockercise.run"]
    assert labels["dockercise.owner.pid"] == str(victim.pid)
    image = docker_client.api.inspect_container(container["Id"])["Image"]
    # What a dead run's network would be (runs make none yet): labelled as its containers are.
    owned = {k: v for k, v in labels.items() if k.startswith("dockercise.")}
    network = docker_client.api.create_network(f"recovery-test-{run_id}", labels=owned)["Id"]

    second = project(QUICK, root=tmp_path / "second")
    survivor = _start(second, results, no_leaks)
    out, err = survivor.communicate(timeout=120)
    assert survivor.returncode == 0, out + err
    assert "Traceback" not in err

    with pytest.raises(docker.errors.NotFound):
        docker_client.api.inspect_container(container["Id"])
    # The run's image is named by its tag alone (it names no owner): the tag is gone, and the
    # image too unless it is (or is a layer of) the `image` stage's kept image (SPEC §13).
    assert not docker_client.api.images(filters={"reference": f"dockercise-build:{run_id}-*"})
    if image not in kept_lineage(docker_client):
        with pytest.raises(docker.errors.NotFound):
            docker_client.images.get(image)
    else:
        assert all(t.startswith("dockercise-cache/") for t in docker_client.images.get(image).tags)
    with pytest.raises(docker.errors.NotFound):
        docker_client.networks.get(network)
    assert not list(no_leaks.glob(f"dockercise-{run_id}-*"))
    run_dir = results / "run" / run_id
    run = _json(run_dir / "run.json")
    assert (run["status"], run["reason"]) == ("error", "interrupted")
    assert run["finished"] is not None
    long = _json(run_dir / "long.json")
    assert (long["status"], long["reason"]) == ("error", "interrupted")
    assert "started" in (run_dir / "long.log").read_text()
    assert _json(run_dir / "image.json")["status"] == "success"  # finished ones keep theirs
    assert _json(run_dir / "later.json")["status"] == "cancelled"
    assert {s["name"]: s["status"] for s in run["stages"]} == {
        "image": "success",
        "long": "error",
        "later": "cancelled",
    }


def test_a_killed_run_on_s3_is_finished_in_its_bucket(
    project: Callable[..., Path],
    docker_client: docker.DockerClient,
    no_leaks: Path,
    tmp_path: Path,
    s3: S3Bucket,
) -> None:
    """The dead run's store is read from its labels and folder: here a bucket and prefix,
    which the next run (writing to a local store) opens with its own environment."""
    root = project(f"long: {{img: {IMAGE}, run: echo started; sleep 120}}\n")
    url = s3.url("ci/app")
    victim = _start(root, url, no_leaks)
    try:
        (container,) = _wait_for(lambda: _running(docker_client, url, "long"))
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.communicate()
    run_id = container["Labels"]["dockercise.run"]
    survivor = _start(project(QUICK, root=tmp_path / "second"), tmp_path / "local", no_leaks)
    out, err = survivor.communicate(timeout=120)
    assert survivor.returncode == 0, out + err
    run = json.loads(s3.read(f"ci/app/run/{run_id}/run.json"))
    assert (run["status"], run["reason"]) == ("error", "interrupted")
    long = json.loads(s3.read(f"ci/app/run/{run_id}/long.json"))
    assert (long["status"], long["reason"]) == ("error", "interrupted")
    assert not list(no_leaks.glob(f"dockercise-{run_id}-*"))
    with pytest.raises(docker.errors.NotFound):
        docker_client.api.inspect_container(container["Id"])


def _built_tags(client: docker.DockerClient, run_id: str) -> set[str]:
    """The tags of the run's built images: its stages' and its owner's (`owner_tag`)."""
    found = client.api.images(filters={"reference": f"dockercise-build:{run_id}-*"})
    return {t for info in found for t in info.get("RepoTags") or [] if run_id in t}


BUILDS_THEN_LONG = """
image:
  build: docker/
long:
  img: image
  run: echo started; sleep 120
"""


def test_a_live_run_of_another_process_is_untouched(
    project: Callable[..., Path],
    docker_client: docker.DockerClient,
    no_leaks: Path,
    tmp_path: Path,
) -> None:
    """Concurrent runs on one engine: the second one's sweep leaves the first's containers,
    temp folder, store and built images (by their owner tag, alive) alone."""
    root = project(BUILDS_THEN_LONG)
    (root / "docker").mkdir()
    (root / "docker" / "Dockerfile").write_text(f"FROM {IMAGE}\nRUN echo live > /built.txt\n")
    results = tmp_path / "results"
    first = _start(root, results, no_leaks)
    try:
        (container,) = _wait_for(lambda: _running(docker_client, results, "long"))
        built = _built_tags(docker_client, container["Labels"]["dockercise.run"])
        assert len(built) == 2 and sum("-owner-" in t for t in built) == 1, built
        second = _start(project(QUICK, root=tmp_path / "second"), results, no_leaks)
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, out + err
        assert docker_client.api.inspect_container(container["Id"])["State"]["Running"]
        assert _built_tags(docker_client, container["Labels"]["dockercise.run"]) == built
        (private,) = no_leaks.glob(f"dockercise-{container['Labels']['dockercise.run']}-*")
        assert (private / "owner.json").is_file()
        run = _json(results / "run" / container["Labels"]["dockercise.run"] / "run.json")
        assert run["status"] == "running"
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert first.returncode == 130


def test_a_dead_run_s_built_image_goes_when_nothing_else_names_its_run(
    project: Callable[..., Path],
    docker_client: docker.DockerClient,
    no_leaks: Path,
    tmp_path: Path,
) -> None:
    """What a reboot leaves (the engine's containers gone, the temp folder emptied): only
    the dead run's built image, whose owner tag names its dead owner; the next start
    removes its tags (issue #13/#17)."""
    root = project(BUILDS_THEN_LONG)
    (root / "docker").mkdir()
    (root / "docker" / "Dockerfile").write_text(f"FROM {IMAGE}\nRUN echo dead > /built.txt\n")
    results = tmp_path / "results"
    victim = _start(root, results, no_leaks)
    try:
        (container,) = _wait_for(lambda: _running(docker_client, results, "long"))
        run_id = container["Labels"]["dockercise.run"]
        built = _built_tags(docker_client, run_id)
        assert sum("-owner-" in t for t in built) == 1, built  # alive: nobody removes it
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.communicate()
    docker_client.api.remove_container(container["Id"], force=True)
    for private in no_leaks.glob(f"dockercise-{run_id}-*"):
        shutil.rmtree(private)

    survivor = _start(project(QUICK, root=tmp_path / "second"), results, no_leaks)
    out, err = survivor.communicate(timeout=120)
    assert survivor.returncode == 0, out + err
    assert _built_tags(docker_client, run_id) == set()
    # Nothing named its store: its run.json stays `running` (what `dockercise status` shows).
    assert _json(results / "run" / run_id / "run.json")["status"] == "running"


@pytest.fixture
def tiny_store(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs as the results store (the tests run as root)."""
    store = tmp_path / "tiny"
    store.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(store)])
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root?)")
    try:
        yield store
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            subprocess.run(["umount", "-l", str(store)], check=True)


def test_a_full_store_ends_the_run_with_exit_3_and_one_line(
    project: Callable[..., Path],
    docker_client: docker.DockerClient,
    no_leaks: Path,
    tiny_store: Path,
    tmp_path: Path,
) -> None:
    root = project(
        f"""
        loud:
          img: {IMAGE}
          run: yes "a line of a log too big for the store" | head -n 4000
        slow:
          img: {IMAGE}
          run: sleep 120
        """
    )
    started = time.monotonic()
    full = _start(root, tiny_store, no_leaks)
    out, err = full.communicate(timeout=120)
    assert full.returncode == 3, out + err
    assert time.monotonic() - started < 60  # the slow stage was stopped, not waited for
    # Other test processes' dead runs may give this run's sweep something to warn about.
    lines = [line for line in err.splitlines() if not line.startswith("dockercise: warning: ")]
    assert len(lines) == 1, err
    assert lines[0].startswith("dockercise: cannot write results to ")
    assert "No space left on device" in lines[0]
    assert not _running(docker_client, tiny_store, "slow")
    (run_id,) = os.listdir(tiny_store / "run")
    assert _json(tiny_store / "run" / run_id / "run.json")["status"] == "running"
    # Only the run's record is kept, for the next start to finish the run once there is room.
    (private,) = no_leaks.glob(f"dockercise-{run_id}-*")
    assert os.listdir(private) == ["owner.json"]

    subprocess.run(["mount", "-o", "remount,size=4m", str(tiny_store)], check=True)
    survivor = _start(project(QUICK, root=tmp_path / "second"), tmp_path / "other", no_leaks)
    out, err = survivor.communicate(timeout=120)
    assert survivor.returncode == 0, out + err
    run = _json(tiny_store / "run" / run_id / "run.json")
    assert (run["status"], run["reason"]) == ("error", "interrupted")
    assert not list(no_leaks.glob(f"dockercise-{run_id}-*"))


def test_an_unwritable_store_ends_the_run_with_exit_3_and_one_line(
    project: Callable[..., Path], no_leaks: Path, tiny_store: Path
) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_store)], check=True)
    root = project(QUICK)
    full = _start(root, tiny_store, no_leaks)
    out, err = full.communicate(timeout=120)
    assert full.returncode == 3, out + err
    lines = [line for line in err.splitlines() if not line.startswith("dockercise: warning: ")]
    assert lines == [f"dockercise: cannot write results to {tiny_store}: Read-only file system"]


def test_an_image_cannot_pose_as_a_dead_owner(
    docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    """Docker merges an image's labels into its containers': a hostile image that carries
    a dead owner's labels and a store of its choosing must not make a container of it look
    like a dead run's (to be removed, and its store written to)."""
    from runner.containers import Containers
    from runner.plan import ContainerSpec
    from runner.recovery import sweep_here

    me = this_process()
    posing = {**me.labels(), "dockercise.owner.pid": "999999999", LABEL_STORE: "file:///evil"}
    dockerfile = f"FROM {IMAGE}\n" + "".join(f'LABEL "{k}"="{v}"\n' for k, v in posing.items())
    tag = f"dockercise-posing:{os.getpid()}"
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    containers = Containers()
    try:
        spec = ContainerSpec(
            image=tag,
            command=["true"],
            env={},
            binds=[],
            workdir=None,
            network="none",
            labels={"dockercise.run": "posing-run", "dockercise.stage": "s"},
        )
        container = containers.create(spec)
        labels = docker_client.api.inspect_container(container)["Config"]["Labels"]
        assert labels[LABEL_STORE] == "" and labels["dockercise.owner.pid"] == ""
        sweep_here(containers, {})
        docker_client.api.inspect_container(container)  # still there: nobody's to judge
        containers.remove(container)  # closes its attached stream too
    finally:
        containers.remove_run("posing-run")
        containers.close()
        docker_client.images.remove(tag, force=True)


def test_a_full_temp_folder_ends_the_run_with_exit_3_and_one_line(
    project: Callable[..., Path],
    docker_client: docker.DockerClient,
    no_leaks: Path,
    tiny_store: Path,
    tmp_path: Path,
) -> None:
    """The run's own files (stdout, volumes) on a full disk: as for the store, exit 3, one
    line, and the run finished by the next start once there is room."""
    root = project(f"loud: {{img: {IMAGE}, run: yes 'stdout to fill the disk' | head -n 20000}}\n")
    results = tmp_path / "results"
    full = _start(root, results, tiny_store)  # the tiny tmpfs as TMPDIR
    out, err = full.communicate(timeout=120)
    assert full.returncode == 3, out + err
    lines = [line for line in err.splitlines() if not line.startswith("dockercise: warning: ")]
    assert lines == [
        f"dockercise: cannot write the run's files to {tiny_store}: No space left on device"
    ]
    (run_id,) = os.listdir(results / "run")
    assert _json(results / "run" / run_id / "run.json")["status"] == "running"
    (private,) = tiny_store.glob(f"dockercise-{run_id}-*")
    assert os.listdir(private) == ["owner.json"]

    survivor = _start(project(QUICK, root=tmp_path / "second"), tmp_path / "other", tiny_store)
    out, err = survivor.communicate(timeout=120)
    assert survivor.returncode == 0, out + err
    run = _json(results / "run" / run_id / "run.json")
    assert (run["status"], run["reason"]) == ("error", "interrupted")
    loud = _json(results / "run" / run_id / "loud.json")
    assert (loud["status"], loud["reason"]) == ("error", "interrupted")
    assert not list(tiny_store.glob(f"dockercise-{run_id}-*"))
