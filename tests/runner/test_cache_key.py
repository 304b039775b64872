"""The `cache` stage key as the loader reads and checks it (SPEC §13, §10: one-line errors)."""

from __future__ import annotations

import pytest

from runner import pipeline
from runner.errors import PipelineInvalid
from runner.model import CachePath


def _stage(body: str) -> str:
    return f"test:\n  img: busybox\n  run: 'true'\n{body}"


def test_paths_and_keyed_items_are_read_and_normalised() -> None:
    loaded = pipeline.load_texts(
        {
            ".dockercise.yml": _stage(
                "  cache:\n"
                "    - //app/./.venv/\n"
                "    - path: /app/node_modules\n"
                "      key: package-lock.json\n"
                "    - {path: /root/.cache, key: ['**/*.lock', 'a.txt']}\n"
            )
        }
    )
    assert loaded is not None
    assert loaded.stages["test"].cache == (
        CachePath("/app/.venv"),
        CachePath("/app/node_modules", ("package-lock.json",)),
        CachePath("/root/.cache", ("**/*.lock", "a.txt")),
    )
    single = pipeline.load_texts({".dockercise.yml": _stage("  cache: /var/cache/apt\n")})
    assert single is not None and single.stages["test"].cache == (CachePath("/var/cache/apt"),)


@pytest.mark.parametrize(
    ("body", "wanted"),
    [
        ("  cache: relative/path\n", "must be an absolute path"),
        ("  cache: /\n", "is / (choose a folder"),
        ("  cache: //./\n", "is / (choose a folder"),
        ("  cache: /out/x\n", "inside /out"),
        ("  cache: /out\n", "inside /out"),
        ("  cache: /test\n", "inside the stage's own volume"),
        ("  cache: /test/deps\n", "inside the stage's own volume"),
        ("  cache: [/a, /a/]\n", "given twice"),
        ("  vol: [code]\n  cache: /code\n", "where a 'vol' item mounts"),
        ("  cache: {path: /a, key: /etc/passwd}\n", "relative to the checkout"),
        ("  cache: {path: /a, key: ../secret}\n", "relative to the checkout"),
        ("  cache: {path: /a, kee: x}\n", "'cache' must be"),
        ("  cache: []\n", "'cache' must be"),
        ("  cache: 3\n", "'cache' must be"),
        ("  cache: {key: x}\n", "'cache' must be"),
    ],
)
def test_bad_cache_values_are_one_line_problems(body: str, wanted: str) -> None:
    with pytest.raises(PipelineInvalid) as caught:
        pipeline.load_texts({".dockercise.yml": _stage(body)})
    (problem,) = caught.value.problems
    text = str(problem)
    assert wanted in text and "\n" not in text
    assert text.startswith(".dockercise.yml:") and "stage 'test'" in text
