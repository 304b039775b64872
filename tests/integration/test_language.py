"""The pipeline language against the real engine: when, if/unless, retry, build, paths."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from tests.conftest import kept_lineage
from tests.integration.conftest import IMAGE, Outcome

pytestmark = pytest.mark.docker

Run = Callable[..., Outcome]
Project = Callable[..., Path]


def test_clean_up_runs_after_a_failure_and_failure_handlers_only_then(
    project: Project, dockercise: Run
) -> None:
    root = project(
        f"""
        deploy: {{img: {IMAGE}, run: echo deploying; exit 1}}
        smoke: {{img: {IMAGE}, after: deploy, run: echo never}}
        clean-up: {{img: {IMAGE}, after: smoke, when: always, run: echo cleaning}}
        page-me: {{img: {IMAGE}, after: smoke, when: failure, run: echo paging}}
        celebrate: {{img: {IMAGE}, after: deploy, when: success, run: echo yay}}
        """
    )
    result = dockercise(root, "run")
    assert result.code == 1
    assert result.run_json()["status"] == "failure"
    assert result.stage("clean-up")["status"] == "success"
    assert result.log("clean-up") == "cleaning\n"
    assert result.stage("page-me")["status"] == "success"  # deploy failed further up
    assert result.stage("celebrate")["reason"] == "dependency deploy failed"


def test_failure_handler_is_skipped_when_all_is_well(project: Project, dockercise: Run) -> None:
    root = project(
        f"""
        build: {{img: {IMAGE}, run: "true"}}
        on-failure: {{img: {IMAGE}, after: build, when: failure, run: echo paging}}
        """
    )
    result = dockercise(root, "run")
    assert result.code == 0
    skipped = result.stage("on-failure")
    assert (skipped["status"], skipped["reason"]) == (
        "skipped",
        "no dependency failed (when: failure)",
    )


def test_create_or_update_with_a_check(project: Project, dockercise: Run) -> None:
    root = project(
        f"""
        stack-exists: {{img: {IMAGE}, run: echo looking; exit 1}}
        update: {{img: {IMAGE}, if: stack-exists, run: echo updating}}
        create: {{img: {IMAGE}, unless: stack-exists, run: echo creating}}
        after-update: {{img: {IMAGE}, after: update, run: echo never}}
        """
    )
    result = dockercise(root, "run")
    assert result.code == 0, result.out
    check = result.stage("stack-exists")
    assert (check["status"], check["check"], check["exit_code"]) == ("success", False, 1)
    assert check["reason"] == "check false (exit 1)"
    assert result.stage("update")["status"] == "skipped"
    assert result.stage("update")["reason"] == "check stack-exists was false"
    assert result.stage("after-update")["status"] == "skipped"
    assert result.log("create") == "creating\n"


def test_retry_runs_a_failed_stage_again_with_a_fresh_volume(
    project: Project, dockercise: Run, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    root = project(
        f"""
        flaky:
          img: {IMAGE}
          retry: 2
          vol: ["{state}:/state:rw"]
          run: |
            n=$(cat /state/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /state/n
            ls $OUT; touch $OUT/from-attempt-$n
            echo attempt $n
            test $n -ge 2
        hopeless: {{img: {IMAGE}, retry: 1, run: exit 7}}
        """
    )
    result = dockercise(root, "run")
    assert result.code == 1
    flaky = result.stage("flaky")
    assert (flaky["status"], flaky["attempts"], flaky["exit_code"]) == ("success", 2, 0)
    log = result.log("flaky")
    assert (
        log.index("--- attempt 1 ---") < log.index("attempt 1\n") < log.index("--- attempt 2 ---")
    )
    assert "from-attempt-1" not in log  # the second attempt started with an empty volume
    hopeless = result.stage("hopeless")
    assert (hopeless["status"], hopeless["attempts"], hopeless["reason"]) == (
        "failure",
        2,
        "exit 7",
    )


def test_build_stage_images_are_used_and_removed(
    project: Project, dockercise: Run, docker_client: docker.DockerClient
) -> None:
    root = project(
        """
        image:
          build: docker/
        use:
          img: image
          run: cat /built.txt
        self-built:
          build: docker/Dockerfile
          run: echo "$(cat /built.txt) and run"
        """
    )
    (root / "docker").mkdir()
    (root / "docker" / "Dockerfile").write_text(
        f"FROM {IMAGE}\nCOPY hello.txt /built.txt\nRUN echo built-step-ran\n"
    )
    (root / "docker" / "hello.txt").write_text("from the dockerfile\n")
    images_before = {i.id for i in docker_client.images.list(all=True)}
    result = dockercise(root, "run")
    assert result.code == 0, result.out
    assert result.run_json()["edges"] == [["image", "use"]]
    assert "built-step-ran" in result.log("image")
    assert result.log("use") == "from the dockerfile\n"
    assert result.stage("use")["image"].startswith("dockercise-build:")
    assert result.log("self-built").endswith("from the dockerfile and run\n")
    # Only the kept images of the `build` stages (SPEC §13) and their untagged layers remain.
    left = {i.id for i in docker_client.images.list(all=True)} - images_before
    assert left <= kept_lineage(docker_client)
    assert (
        len(
            {
                i.id
                for i in docker_client.images.list(
                    filters={"label": f"dockercise.cache.repo=local:{root.resolve()}"}
                )
                if any(t.startswith("dockercise-cache/") for t in i.tags)
            }
        )
        == 2
    )


def test_a_build_from_the_checkout_never_sees_its_results_folder(
    project: Project, dockercise: Run
) -> None:
    """The checkout's `.dockercise` folder (results written by other stages meanwhile) is
    never sent as build context; `.dockerignore` is honoured as `docker build` does."""
    root = project(
        f"""
        image:
          build: Dockerfile
          run: ls -a /ctx
        busy: {{img: {IMAGE}, run: "echo writing results meanwhile"}}
        """
    )
    (root / "Dockerfile").write_text(f"FROM {IMAGE}\nCOPY . /ctx\n")
    (root / ".dockerignore").write_text("# comment\nsecret.txt\n")
    (root / "secret.txt").write_text("not for the image\n")
    (root / "kept.txt").write_text("in the image\n")
    result = dockercise(root, "run")  # its results go to root/.dockercise as it builds
    assert result.code == 0, result.out
    listing = result.log("image").split()
    assert "kept.txt" in listing and "Dockerfile" in listing
    assert ".dockercise" not in listing and "secret.txt" not in listing


def test_a_dockerfile_that_does_not_build_fails_the_stage(
    project: Project, dockercise: Run, docker_client: docker.DockerClient
) -> None:
    root = project(
        """
        image: {build: Dockerfile}
        missing: {build: nowhere/}
        """
    )
    (root / "Dockerfile").write_text(f"FROM {IMAGE}\nRUN echo one > /one\nRUN exit 3\n")
    images_before = {i.id for i in docker_client.images.list(all=True)}
    result = dockercise(root, "run")
    assert result.code == 1
    image = result.stage("image")
    assert image["status"] == "failure", image
    assert "build failed" in image["reason"] and "non-zero code: 3" in image["reason"]
    assert result.stage("missing")["reason"] == "no Dockerfile at 'nowhere/' in the checkout"
    assert {i.id for i in docker_client.images.list(all=True)} == images_before


def test_paths_filters_on_changed_files(project: Project, dockercise: Run) -> None:
    root = project(
        f"""
        docs: {{img: {IMAGE}, paths: ["docs/**"], run: echo docs}}
        code: {{img: {IMAGE}, paths: ["src/**/*.py", "setup.cfg"], run: echo code}}
        always: {{img: {IMAGE}, run: echo always}}
        """.replace("code:", "source:")
    )
    result = dockercise(root, "run", "--changed", "docs/guide/intro.md")
    assert result.code == 0
    assert result.stage("docs")["status"] == "success"
    assert result.stage("source")["status"] == "skipped"
    assert result.stage("source")["reason"] == "no changed file matches 'paths'"
    assert result.stage("always")["status"] == "success"
    every = dockercise(root, "run")
    assert every.code == 0
    runs = sorted((root / ".dockercise/results/run").iterdir())
    assert '"status": "success"' in (runs[-1] / "source.json").read_text()


def test_since_uses_git_to_find_changes(project: Project, dockercise: Run) -> None:
    root = project(
        f"""
        app: {{img: {IMAGE}, paths: ["app/**"], run: echo app}}
        web: {{img: {IMAGE}, paths: ["web/**"], run: echo web}}
        """
    )
    (root / "app").mkdir()
    (root / "web").mkdir()
    (root / "app" / "main.py").write_text("v1\n")
    (root / "web" / "index.html").write_text("v1\n")
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    (root / "app" / "main.py").write_text("v2\n")
    result = dockercise(root, "run", "--since", "HEAD")
    assert result.code == 0
    assert result.stage("app")["status"] == "success"
    assert result.stage("web")["status"] == "skipped"
    bad = dockercise(root, "run", "--since", "no-such-rev")
    assert bad.code == 2 and "--since no-such-rev: no such revision" in bad.err


def test_the_create_or_update_example_takes_both_paths(dockercise: Run, tmp_path: Path) -> None:
    import shutil

    example = Path(__file__).resolve().parents[2] / "examples" / "create-or-update"
    root = tmp_path / "example"
    shutil.copytree(example, root, ignore=shutil.ignore_patterns(".dockercise"))
    first = dockercise(root, "run")
    assert first.code == 0, first.out
    assert first.stage("create")["status"] == "success"
    assert first.stage("update")["status"] == "skipped"
    assert first.stage("clean-up")["status"] == "success"
    (root / "stack.txt").write_text("v1\n")
    shutil.rmtree(root / ".dockercise")
    second = dockercise(root, "run")
    assert second.code == 0, second.out
    assert second.stage("create")["status"] == "skipped"
    assert second.log("update").endswith("updating the stack from v1\n")


def test_meta_settings_apply_to_every_stage(project: Project, dockercise: Run) -> None:
    root = project(
        f"""
        meta:
          name: settings
          concurrency: 1
          timeout: 1s
          network: none
        net: {{img: {IMAGE}, run: ls /sys/class/net}}
        slow: {{img: {IMAGE}, run: sleep 20}}
        other: {{img: {IMAGE}, run: sleep 0.3}}
        """
    )
    result = dockercise(root, "run")
    assert result.code == 1
    assert result.run_json()["pipeline"] == "settings"
    assert result.log("net") == "lo\n"
    assert (result.stage("slow")["status"], result.stage("slow")["reason"]) == (
        "failure",
        "timeout",
    )
    spans = sorted(
        (result.stage(n)["started"], result.stage(n)["finished"]) for n in ("net", "slow", "other")
    )
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(2))  # one at a time
