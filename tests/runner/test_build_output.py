"""Which layers a classic build made, read from its output (what a failed build may remove)."""

from __future__ import annotations

from runner.containers import build_labels, built_layers

OUTPUT = """Step 1/4 : FROM dockercise/busybox
 ---> cde9a5630b87
Step 2/4 : RUN echo cached
 ---> Using cache
 ---> 9d6229db23e1
Step 3/4 : RUN echo made
 ---> Running in 0a1b2c3d4e5f
Removing intermediate container 0a1b2c3d4e5f
 ---> 06dfa397ddbc
Step 4/4 : RUN false
 ---> Running in 5f4e3d2c1b0a
"""


def test_only_the_steps_it_ran_are_its_own() -> None:
    made, fresh = built_layers(OUTPUT)
    assert made == ["06dfa397ddbc"]  # not the base image, not the cache's layer
    assert fresh  # the failing step was running


def test_a_step_split_across_chunks() -> None:
    lines = OUTPUT.splitlines(keepends=True)
    made: list[str] = []
    fresh = False
    for line in lines:
        found, fresh = built_layers(line, fresh)
        made += found
    assert made == ["06dfa397ddbc"]


def test_a_built_image_names_no_run_and_no_owner() -> None:
    labels = build_labels({"dockercise.cache.repo": "octo/app"})
    assert labels["dockercise.cache.repo"] == "octo/app"
    assert labels["dockercise.run"] == "" and labels["dockercise.owner.pid"] == ""
    assert set(labels.values()) == {"", "octo/app"}  # nothing that changes from run to run
