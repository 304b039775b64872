"""Serving a 400 MB log or zip costs the server under 100 MB of memory (SPEC §10).

The site runs in a process of its own (Werkzeug's server, as `serve-results`
runs it) and its resident memory is sampled from /proc while the test
downloads; the files are sparse, so they cost no disk.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pages.serving import PIPELINE, RUN_ID, TAIL, big_run, serve_store

pytestmark = pytest.mark.slow

SIZE = 400 * 1000 * 1000
LIMIT = 100 * 1024 * 1024
RUN = f"/results/local/{PIPELINE}/run/{RUN_ID}"


def test_a_400_mb_log_and_zip_are_served_in_bounded_memory(tmp_path: Path) -> None:
    store = big_run(tmp_path / "results", SIZE)
    with serve_store(store, tmp_path) as server:
        for path, size in [(f"{RUN}/build.log", SIZE), (f"{RUN}/build.zip", SIZE), (RUN, None)]:
            measured = server.measure(path)
            assert size is None or measured.received == size, path
            assert measured.growth < LIMIT, f"{path}: +{measured.growth >> 20} MiB"
        status, _ = server.get(RUN)
        assert status == 200
    assert (
        TAIL.decode().splitlines()[-1]
        in (store / "run" / RUN_ID / "build.log").read_text(errors="replace")[-200:]
    )
