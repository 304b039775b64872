"""S3 reads of part of an object: ranged GETs, so a page showing a log's tail fetches only it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pages.app import create_results_app
from pages.reading import LOG_TAIL
from runner.store.base import ResultStore
from runner.store.s3 import S3Store
from tests.integration.conftest import S3Bucket

RUN_ID = "20261130T080000000Z-0badf00d"
PREFIX = "acme/app"
LOG = b"".join(b"line %07d\n" % i for i in range(100_000))  # 1.3 MB: more than one chunk


@pytest.fixture
def store(s3: S3Bucket, tmp_path: Path) -> Iterator[S3Store]:
    def put(name: str, body: bytes) -> None:
        s3.client.put_object(Bucket=s3.name, Key=f"{PREFIX}/run/{RUN_ID}/{name}", Body=body)

    run = {"id": RUN_ID, "pipeline": "app", "status": "success", "stages": [{"name": "build"}]}
    stage = {"name": "build", "status": "success", "logs": "build.log", "artefact": "build.zip"}
    put("run.json", json.dumps(run).encode())
    put("build.json", json.dumps(stage).encode())
    put("build.log", LOG)
    put("build.zip", b"PK" + bytes(range(256)) * 5000)
    put("empty.log", b"")
    opened = S3Store(s3.url(PREFIX), tmp_path / "spool")
    yield opened
    opened.close()


@pytest.mark.parametrize(
    "start", [0, 1, 1000, len(LOG) - 1, len(LOG), len(LOG) + 5, -1, -1000, -(10**9)]
)
def test_a_range_of_an_object(store: S3Store, start: int) -> None:
    found = store.stream(RUN_ID, "build.log", start)
    assert found is not None
    size, chunks = found
    assert size == len(LOG)
    assert b"".join(chunks) == LOG[start:]


def test_an_empty_object_and_a_missing_one(store: S3Store) -> None:
    for start in (0, 5, -100):
        found = store.stream(RUN_ID, "empty.log", start)
        assert found is not None and found[0] == 0 and b"".join(found[1]) == b""
    assert store.stream(RUN_ID, "nosuch.log") is None
    assert store.stream(RUN_ID, "../x") is None


def test_closing_early_releases_the_body(store: S3Store) -> None:
    found = store.stream(RUN_ID, "build.log")
    assert found is not None
    chunks = found[1]
    first = next(iter(chunks))
    assert LOG.startswith(first)
    chunks.close()
    chunks.close()


def test_the_site_over_s3_shows_the_tail_and_streams_downloads(store: S3Store) -> None:
    def locate(owner: str, repo: str) -> ResultStore | None:
        return store if (owner, repo) == ("acme", "app") else None

    app = create_results_app(locate)
    run = f"/results/acme/app/run/{RUN_ID}"
    with app.test_client() as client:
        with client.get(run) as page:
            text = page.get_data(as_text=True)
        assert page.status_code == 200
        assert "line 0099999" in text and "line 0000000" not in text
        assert len(LOG) > LOG_TAIL
        with client.get(f"{run}/build.log") as log:
            assert log.get_data() == LOG and log.content_length == len(LOG)
        with client.get(f"{run}/build.zip") as zipped:
            assert zipped.get_data().startswith(b"PK") and zipped.mimetype == "application/zip"
