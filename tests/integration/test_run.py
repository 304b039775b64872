"""`dockercise run` against the real engine: SPEC §2-§4 and §7, one behaviour per test."""

from __future__ import annotations

import gc
import json
import zipfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from tests.integration.conftest import IMAGE, Outcome

pytestmark = pytest.mark.docker

Run = Callable[..., Outcome]
Project = Callable[..., Path]


def test_a_passing_pipeline_stores_the_spec_layout(project: Project, dockercise: Run) -> None:
    root = project(
        f"""
        meta: {{name: demo}}
        make:
          img: {IMAGE}
          run: echo made; echo oops >&2; echo artefact > $OUT/file.txt
        use:
          img: {IMAGE}
          after: make
          run: echo used
        """
    )
    result = dockercise(root, "run")
    assert result.code == 0, result.err
    assert sorted(p.name for p in result.run_dir.iterdir()) == [
        "make.json",
        "make.log",
        "make.zip",
        "run.json",
        "use.json",
        "use.log",
    ]
    run = result.run_json()
    assert run["id"] == result.run_id
    assert run["pipeline"] == "demo"
    assert run["status"] == "success"
    assert run["trigger"]["kind"] == "manual"
    assert run["edges"] == [["make", "use"]]
    assert [s["name"] for s in run["stages"]] == ["make", "use"]
    assert datetime.fromisoformat(run["started"]) < datetime.fromisoformat(run["finished"])
    make = result.stage("make")
    assert {
        k: make[k] for k in ("name", "status", "exit_code", "reason", "image", "logs", "artefact")
    } == {
        "name": "make",
        "status": "success",
        "exit_code": 0,
        "reason": None,
        "image": IMAGE,
        "logs": "make.log",
        "artefact": "make.zip",
    }
    assert make["started"].endswith("Z") and make["finished"].endswith("Z")
    assert result.log("make").splitlines() == ["made", "oops"] or sorted(
        result.log("make").splitlines()
    ) == ["made", "oops"]
    with zipfile.ZipFile(result.run_dir / "make.zip") as z:
        assert z.read("file.txt") == b"artefact\n"
    assert "make | made" in result.out.replace("  |", " |")
    assert "results:" in result.out


def test_out_holds_only_stdout_and_is_read_only(project: Project, dockercise: Run) -> None:
    root = project(
        f"""
        creds:
          img: {IMAGE}
          run: printf 'secret-ish\\n'; echo noise >&2
        reader:
          img: {IMAGE}
          run: |
            cat out/creds
            test "$(cat /out/creds)" = secret-ish
            if touch /out/x 2>/dev/null; then echo writable; exit 1; fi
        """
    )
    result = dockercise(root, "run")
    assert result.code == 0, result.out
    assert result.run_json()["edges"] == [["creds", "reader"]]  # from the out/creds mention
    assert "secret-ish" in result.log("reader")


def test_own_volume_is_writable_then_read_only_for_others(
    project: Project, dockercise: Run
) -> None:
    root = project(
        f"""
        build:
          img: {IMAGE}
          run: echo v1 > /build/app && echo $OUT
        check:
          img: {IMAGE}
          vol: [build, "build:/elsewhere"]
          run: |
            test "$(cat /build/app)" = v1
            test "$(cat /elsewhere/app)" = v1
            if echo x > /build/app 2>/dev/null; then echo "volume writable"; exit 1; fi
        """
    )
    result = dockercise(root, "run")
    assert result.code == 0, result.out
    assert (
        root / ".dockercise/results/run" / result.run_id / "build.log"
    ).read_text() == "/build\n"


def test_code_volume_is_read_only_and_hides_dockercise_folder(
    project: Project, dockercise: Run
) -> None:
    root = project(
        f"""
        look:
          img: {IMAGE}
          vol: [code]
          run: |
            cat /code/hello.txt
            test ! -e /code/.dockercise/state || {{ echo "state visible"; exit 1; }}
            if touch /code/new 2>/dev/null; then echo "code writable"; exit 1; fi
        """
    )
    (root / "hello.txt").write_text("from the checkout\n")
    (root / ".dockercise").mkdir()
    (root / ".dockercise" / "state").write_text("private")
    result = dockercise(root, "run")
    assert result.code == 0, result.out
    assert "from the checkout" in result.log("look")


def test_on_copies_a_volume_and_starts_there(project: Project, dockercise: Run) -> None:
    root = project(
        f"""
        src:
          img: {IMAGE}
          run: echo one > /src/f
        edit:
          img: {IMAGE}
          on: src
          run: pwd; echo two >> f; cat f
        orig:
          img: {IMAGE}
          vol: [src]
          after: edit
          run: cat /src/f
        fromcode:
          img: {IMAGE}
          on: code
          run: ls -a; cat data.txt
        """
    )
    (root / "data.txt").write_text("checked out\n")
    result = dockercise(root, "run")
    assert result.code == 0, result.out
    assert result.log("edit") == "/edit\none\ntwo\n"
    assert result.log("orig") == "one\n"
    assert "checked out" in result.log("fromcode")
    assert ".dockercise" not in result.log("fromcode").splitlines()


def test_dir_sets_the_working_directory(project: Project, dockercise: Run) -> None:
    root = project(f"w:\n  img: {IMAGE}\n  dir: /tmp\n  run: pwd\n")
    result = dockercise(root, "run")
    assert result.code == 0
    assert result.log("w") == "/tmp\n"


def test_host_volumes_default_read_only_and_rw_on_request(
    project: Project, dockercise: Run, tmp_path: Path
) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "in.txt").write_text("host data\n")
    root = project(
        f"""
        ro:
          img: {IMAGE}
          vol: ["{host}:/h"]
          run: cat /h/in.txt; if touch /h/x 2>/dev/null; then exit 1; fi
        rw:
          img: {IMAGE}
          vol: ["{host}:/h:rw"]
          run: echo written > /h/out.txt
        """
    )
    result = dockercise(root, "run")
    assert result.code == 0, result.out
    assert "host data" in result.log("ro")
    assert (host / "out.txt").read_text() == "written\n"


def test_environment_of_every_container(project: Project, dockercise: Run) -> None:
    root = project(
        f"""
        version:
          img: {IMAGE}
          run: printf '  1.2.3  \\n\\n'
        show:
          img: {IMAGE}
          env: [version, token, {{GREETING: hello world}}, {{PORT: 8080}}]
          run: |
            echo "OUT=$OUT STAGE=$DOCKERCISE_STAGE RUN=$DOCKERCISE_RUN_ID"
            echo "VERSION=[$VERSION] TOKEN=$TOKEN GREETING=$GREETING PORT=$PORT"
        """
    )
    result = dockercise(root, "run", "--env", "TOKEN=t0k3n=x")
    assert result.code == 0, result.err
    lines = result.log("show").splitlines()
    assert lines[0] == f"OUT=/show STAGE=show RUN={result.run_id}"
    assert lines[1] == "VERSION=[1.2.3] TOKEN=t0k3n=x GREETING=hello world PORT=8080"


@pytest.mark.parametrize(
    "value",
    [
        "two  spaces",
        "quotes ' and \" here",
        "$HOME and $(id) and `id`",
        "line one\nline two",
        "snö ☃ 雪",
    ],
)
def test_values_pass_verbatim(project: Project, dockercise: Run, value: str) -> None:
    root = project(
        f"""
        show:
          img: {IMAGE}
          env: [weird]
          run: printf '%s\\n' "$WEIRD"
        """
    )
    result = dockercise(root, "run", "--env", f"WEIRD={value}")
    assert result.code == 0, result.err
    assert result.log("show") == value + "\n"


def test_env_sources_in_order(
    project: Project, dockercise: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(f"show:\n  img: {IMAGE}\n  env: [a, b, c]\n  run: echo $A $B $C\n")
    env_file = tmp_path / "vars.env"
    env_file.write_text("# comment\nA=from-file\nB=from-file\n")
    monkeypatch.setenv("A", "from-env")
    monkeypatch.setenv("B", "from-env")
    monkeypatch.setenv("c", "lower-case-name")
    result = dockercise(root, "run", "--env", "A=from-flag", "--env-file", str(env_file))
    assert result.code == 0, result.err
    assert result.log("show") == "from-flag from-file lower-case-name\n"


def test_missing_variable_fails_before_anything_starts(project: Project, dockercise: Run) -> None:
    root = project(
        f"""
        first:
          img: {IMAGE}
          run: echo should not run
        deploy:
          img: {IMAGE}
          env: [aws_key, region]
          run: echo $AWS_KEY
        notify:
          img: {IMAGE}
          env: [aws_key]
          run: "true"
        """
    )
    result = dockercise(root, "run")
    assert result.code == 2
    assert "AWS_KEY (wanted by deploy, notify)" in result.err
    assert "REGION (wanted by deploy)" in result.err
    assert "Traceback" not in result.err
    assert not (root / ".dockercise").exists()


def test_no_log_stage_is_never_printed_or_stored_and_masked_elsewhere(
    project: Project, dockercise: Run
) -> None:
    root = project(
        f"""
        assume-role:
          img: {IMAGE}
          noLog: true
          run: echo AKIA-SECRET-VALUE; echo data > $OUT/keys
        leak:
          img: {IMAGE}
          env: [assume-role]
          run: |
            echo "key is $(cat /out/assume-role)"
            env | grep ASSUME
            echo "split: AKIA-SEC"; echo "RET-VALUE"
        """
    )
    result = dockercise(root, "run")
    assert result.code == 0, result.err
    stored = sorted(p.name for p in result.run_dir.iterdir())
    assert "assume-role.log" not in stored and "assume-role.zip" not in stored
    everything = (
        result.out
        + result.err
        + "".join(
            p.read_text(encoding="utf-8", errors="replace")
            for p in result.run_dir.iterdir()
            if p.suffix != ".zip"
        )
    )
    assert "AKIA-SECRET-VALUE" not in everything
    assert "key is ***" in result.log("leak")
    assert "ASSUME_ROLE=***" in result.log("leak")


def test_never_fail_passes_and_records_the_exit_code(project: Project, dockercise: Run) -> None:
    root = project(
        f"""
        flaky: {{img: {IMAGE}, neverFail: true, run: exit 3}}
        next: {{img: {IMAGE}, after: flaky, run: "true"}}
        """
    )
    result = dockercise(root, "run")
    assert result.code == 0
    assert result.stage("flaky")["status"] == "success"
    assert result.stage("flaky")["exit_code"] == 3
    assert result.stage("next")["status"] == "success"


def test_failure_skips_dependents_and_independent_stages_carry_on(
    project: Project, dockercise: Run
) -> None:
    root = project(
        f"""
        broken:
          img: {IMAGE}
          run: echo failing; exit 4
        after-broken:
          img: {IMAGE}
          after: broken
          run: echo never
        transitively:
          img: {IMAGE}
          after: after-broken
          run: echo never
        independent:
          img: {IMAGE}
          run: sleep 0.5; echo still here
        """
    )
    result = dockercise(root, "run")
    assert result.code == 1
    assert result.stage("broken") | {} and result.stage("broken")["status"] == "failure"
    assert result.stage("broken")["reason"] == "exit 4"
    assert result.stage("after-broken")["status"] == "skipped"
    assert result.stage("after-broken")["reason"] == "dependency broken failed"
    assert result.stage("transitively")["status"] == "skipped"
    assert result.stage("transitively")["reason"] == (
        "dependency after-broken was skipped (broken failed)"
    )
    assert result.stage("independent")["status"] == "success"
    assert result.run_json()["status"] == "failure"
    assert "never" not in result.out


def test_docker_errors_become_stage_errors(project: Project, dockercise: Run) -> None:
    root = project(
        f"""
        missing-image:
          img: 127.0.0.1:5000/dockercise/does-not-exist:latest
          run: "true"
        bad-mount:
          img: {IMAGE}
          vol: ["/definitely/not/here:/x"]
          run: "true"
        fine:
          img: {IMAGE}
          run: echo fine
        """
    )
    result = dockercise(root, "run")
    assert result.code == 1
    missing = result.stage("missing-image")
    assert missing["status"] == "error"
    assert "does-not-exist" in missing["reason"] and "cannot be pulled" in missing["reason"]
    assert result.stage("bad-mount")["status"] == "error"
    assert "/definitely/not/here" in result.stage("bad-mount")["reason"]
    assert result.stage("fine")["status"] == "success"
    assert "Traceback" not in result.out + result.err


def test_targets_run_only_what_they_need(project: Project, dockercise: Run) -> None:
    root = project(
        f"""
        a: {{img: {IMAGE}, run: echo a}}
        b: {{img: {IMAGE}, after: a, run: echo b}}
        c: {{img: {IMAGE}, run: echo c}}
        """
    )
    result = dockercise(root, "run", "b")
    assert result.code == 0
    assert [s["name"] for s in result.run_json()["stages"]] == ["a", "b"]
    unknown = dockercise(root, "run", "bb")
    assert unknown.code == 2
    assert "unknown target stage 'bb' (did you mean 'b'?)" in unknown.err


def _spans(result: Outcome, names: list[str]) -> list[tuple[datetime, datetime]]:
    return [
        (
            datetime.fromisoformat(result.stage(n)["started"]),
            datetime.fromisoformat(result.stage(n)["finished"]),
        )
        for n in names
    ]


@pytest.mark.parametrize("jobs, overlap", [("1", False), ("3", True)])
def test_jobs_limit_concurrency(
    project: Project, dockercise: Run, jobs: str, overlap: bool
) -> None:
    root = project("\n".join(f"s{i}: {{img: {IMAGE}, run: sleep 0.6}}" for i in range(3)) + "\n")
    result = dockercise(root, "run", "-j", jobs, "-q")
    assert result.code == 0
    spans = sorted(_spans(result, ["s0", "s1", "s2"]))
    overlapping = any(spans[i][1] > spans[i + 1][0] for i in range(2))
    assert overlapping is overlap


def test_unicode_stage_names_are_stored_as_given(project: Project, dockercise: Run) -> None:
    root = project(f"☃:\n  img: {IMAGE}\n  run: echo snow\n")
    result = dockercise(root, "run")
    assert result.code == 0
    assert result.stage("☃")["name"] == "☃"
    assert (result.run_dir / "☃.log").read_text() == "snow\n"


def test_stage_without_run_has_nothing_to_do(project: Project, dockercise: Run) -> None:
    root = project("placeholder:\n  after: []\n")
    result = dockercise(root, "run")
    assert result.code == 0
    assert result.stage("placeholder")["status"] == "success"
    assert "nothing to do" in result.log("placeholder")


def test_timeout_kills_the_container(project: Project, dockercise: Run) -> None:
    root = project(f"slow:\n  img: {IMAGE}\n  timeout: 1s\n  run: sleep 30\n")
    result = dockercise(root, "run")
    assert result.code == 1
    slow = result.stage("slow")
    assert (slow["status"], slow["reason"]) == ("failure", "timeout")
    assert slow["duration"] < 10


def test_pipeline_errors_exit_2_without_traceback(project: Project, dockercise: Run) -> None:
    root = project(f"typo:\n  img: {IMAGE}\n  rnu: echo\n")
    result = dockercise(root, "run")
    assert result.code == 2
    assert ".dockercise.yml:3: stage 'typo': unknown key 'rnu' (did you mean 'run'?)" in result.err
    assert "Traceback" not in result.err
    assert not (root / ".dockercise").exists()


def test_no_pipeline_file_is_nothing_to_do(tmp_path: Path, dockercise: Run) -> None:
    result = dockercise(tmp_path, "run")
    assert result.code == 0
    assert f"nothing to do: no pipeline file in {tmp_path}" in result.out


# docker-py leaks the socket of its failed version probe when no engine answers (not ours to close).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_unreachable_engine_exits_3(
    project: Project, dockercise: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    root = project(f"a:\n  img: {IMAGE}\n  run: 'true'\n")
    result = dockercise(root, "run")
    assert result.code == 3
    assert "cannot reach the Docker engine" in result.err
    assert "Traceback" not in result.err
    gc.collect()  # collect docker-py's leaked socket here, under this test's warning filter


def test_results_and_logs_commands(project: Project, dockercise: Run) -> None:
    root = project(f"hello:\n  img: {IMAGE}\n  run: echo hello from the log\n")
    first = dockercise(root, "run")
    listing = dockercise(root, "results")
    assert listing.out.startswith(first.run_id)
    assert "success" in listing.out
    detail = dockercise(root, "results", first.run_id)
    assert "hello" in detail.out and "success" in detail.out
    logs = dockercise(root, "logs", first.run_id, "hello")
    assert logs.out == "hello from the log\n"
    missing = dockercise(root, "logs", first.run_id, "nope")
    assert missing.code == 2 and "has no stage 'nope'" in missing.err
    assert json.loads((first.run_dir / "run.json").read_text())["status"] == "success"
