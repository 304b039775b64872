"""`matrix` (SPEC §14) against the real Docker engine: each expansion's container, its
environment and image, `/out` files, and its results in the local store, in S3 and
through the results site (names with `[`, `=`, `,` and `%` in files, keys and URLs)."""

from __future__ import annotations

import html
import io
import json
import os
import re
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import unquote

import docker
import pytest
from flask.testing import FlaskClient

from pages.local import create_local_app
from runner.store import open_store
from tests.integration.conftest import IMAGE, Outcome, S3Bucket

pytestmark = pytest.mark.docker

Run = Callable[..., Outcome]
Project = Callable[..., Path]


@pytest.fixture
def flavours(docker_client: docker.DockerClient) -> Iterator[tuple[str, str]]:
    """Two local tags of the busybox image, told apart by an environment variable."""
    repo = f"dockercise-matrix-test-{uuid.uuid4().hex[:8]}"
    tags = ("one", "two")
    for tag in tags:
        dockerfile = f"FROM {IMAGE}\nENV FLAVOUR=image-{tag}\n".encode()
        docker_client.images.build(fileobj=io.BytesIO(dockerfile), tag=f"{repo}:{tag}", rm=True)
    try:
        yield repo, "-".join(tags)
    finally:
        for tag in tags:
            docker_client.images.remove(f"{repo}:{tag}", force=True)


def _pipeline(repo: str) -> str:
    return f"""
        meta: {{name: grid}}
        check:
          img: "{repo}:${{tag}}"
          matrix:
            tag: [one, two]
            n: [1, "x,y=50%"]
          run:
            - echo "tag=$tag n=$n image=$FLAVOUR stage=$DOCKERCISE_STAGE out=$OUT" >&2
            - echo "$tag $n" > $OUT/made.txt
            - echo "$tag/$n"
        gather:
          img: {IMAGE}
          after: check
          run: 'for f in /out/check*; do echo "$f: $(cat "$f")"; done'
        """


EXPANSIONS = {
    "check[tag=one,n=1]": ("one", "1"),
    "check[tag=one,n=x%2Cy%3D50%25]": ("one", "x,y=50%"),
    "check[tag=two,n=1]": ("two", "1"),
    "check[tag=two,n=x%2Cy%3D50%25]": ("two", "x,y=50%"),
}


def _run_id(outcome: Outcome) -> str:
    found = re.search(r"/run/([^/\s]+)/", outcome.out)
    assert found, outcome.out
    return found.group(1)


def test_each_expansion_runs_in_its_image_with_its_variables(
    project: Project, dockercise: Run, flavours: tuple[str, str]
) -> None:
    root = project(_pipeline(flavours[0]))
    outcome = dockercise(root, "run")
    assert outcome.code == 0, outcome.err + outcome.out
    run_dir = root / ".dockercise" / "results" / "run" / _run_id(outcome)
    for name, (tag, n) in EXPANSIONS.items():
        log = (run_dir / f"{name}.log").read_text()
        assert f"tag={tag} n={n} image=image-{tag} stage={name} out=/{name}\n" in log, log
        stored = json.loads((run_dir / f"{name}.json").read_text())
        assert (stored["name"], stored["status"], stored["logs"]) == (
            name,
            "success",
            f"{name}.log",
        )
        with zipfile.ZipFile(run_dir / f"{name}.zip") as z:
            assert z.read("made.txt").decode() == f"{tag} {n}\n"
    gathered = (run_dir / "gather.log").read_text().splitlines()
    assert sorted(gathered) == sorted(
        f"/out/{name}: {tag}/{n}" for name, (tag, n) in EXPANSIONS.items()
    )
    run = json.loads((run_dir / "run.json").read_text())
    assert sorted(run["edges"]) == sorted([name, "gather"] for name in EXPANSIONS)

    shown = dockercise(root, "logs", _run_id(outcome), "check[tag=two,n=x%2Cy%3D50%25]")
    assert shown.code == 0, shown.err
    assert "tag=two n=x,y=50% image=image-two" in shown.out

    graph = dockercise(root, "graph")
    assert graph.code == 0 and all(name in graph.out for name in EXPANSIONS), graph.out

    site = create_local_app(open_store(None, root, os.environ))
    with site.test_client() as client:
        _check_site(client, _run_id(outcome))


def _check_site(client: FlaskClient, run_id: str) -> None:
    """The run page lists every expansion and draws it; its log and zip links work."""
    with client.get(f"/results/local/grid/run/{run_id}") as response:
        assert response.status_code == 200
        page = response.get_data(as_text=True)
    for name in EXPANSIONS:
        assert f'data-stage="{html.escape(name)}"' in page, name
    links = re.findall(r'href="([^"]*\.(?:log|zip))"', page)
    assert len(links) == 2 * len(EXPANSIONS) + 1, links  # gather has no artefact
    for link in links:
        url = html.unescape(link)
        name = unquote(url.rsplit("/", 1)[1]).rsplit(".", 1)[0]
        with client.get(url) as response:
            assert response.status_code == 200, url
            body = response.get_data()
        if url.endswith(".log") and name in EXPANSIONS:
            tag, n = EXPANSIONS[name]
            assert f"tag={tag} n={n} " in body.decode(), (url, body)
    with client.get(f"/results/local/grid/run/{run_id}.json") as response:
        stages = {s["name"] for s in response.get_json()["stages"]}
    assert stages == {*EXPANSIONS, "gather"}


def test_expansions_are_stored_in_s3_and_served_from_there(
    project: Project, dockercise: Run, flavours: tuple[str, str], s3: S3Bucket
) -> None:
    root = project(_pipeline(flavours[0]))
    url = s3.url("matrix")
    outcome = dockercise(root, "run", "--results", url)
    assert outcome.code == 0, outcome.err + outcome.out
    run_id = _run_id(outcome)
    base = f"matrix/run/{run_id}/"
    keys = set(s3.listing())
    for name, (tag, n) in EXPANSIONS.items():
        assert {base + f"{name}.{ext}" for ext in ("json", "log", "zip")} <= keys
        assert f"tag={tag} n={n} " in s3.read(base + f"{name}.log").decode()
    site = create_local_app(open_store(url, root, os.environ))
    with site.test_client() as client:
        _check_site(client, run_id)


def test_a_target_naming_the_matrix_stage_runs_every_expansion(
    project: Project, dockercise: Run, flavours: tuple[str, str]
) -> None:
    root = project(_pipeline(flavours[0]))
    outcome = dockercise(root, "run", "check")
    assert outcome.code == 0, outcome.err + outcome.out
    run_dir = root / ".dockercise" / "results" / "run" / _run_id(outcome)
    names = {p.name[: -len(".json")] for p in run_dir.glob("*.json")} - {"run"}
    assert names == set(EXPANSIONS)


def test_a_bad_matrix_stops_the_run_before_anything_starts(
    project: Project, dockercise: Run
) -> None:
    root = project(
        f"""
        check: {{img: {IMAGE}, matrix: {{v: [1, "1"]}}, run: "true"}}
        uses: {{img: {IMAGE}, env: [check], run: "true"}}
        """
    )
    outcome = dockercise(root, "run")
    assert outcome.code == 2
    assert outcome.err.splitlines() == [
        ".dockercise.yml:2: stage 'check': 'matrix' variable 'v' lists '1' twice",
        "1 problem(s) found; nothing was run",
    ]
