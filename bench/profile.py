"""Where dockercise's time goes, for whoever optimises what bench/run.py reports.

    .venv/bin/python bench/profile.py startup   # CLI import cost, by package
    .venv/bin/python bench/profile.py stages    # a 20-stage chain: time per Docker API call
    .venv/bin/python bench/profile.py load      # 10,000-stage load + plan, by phase, GC on and off

Like bench/run.py it measures and prints; it asserts nothing.
"""

from __future__ import annotations

import collections
import functools
import gc
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import run as bench  # noqa: E402 - bench/run.py, for its pipeline generators

IMPORTS = [
    "pass",
    "import yaml",
    "import click",
    "import rich.console, rich.live, rich.table",
    "import jsonschema",
    "import docker",
    "import runner.pipeline",
    "import runner.engine",
    "import cli.main",
]


def startup(tries: int = 7) -> None:
    """Best-of-N wall time of a fresh interpreter doing each import (includes ~20 ms of Python)."""
    for statement in IMPORTS:
        best = float("inf")
        for _ in range(tries):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", statement], cwd=ROOT, check=True)
            best = min(best, time.perf_counter() - start)
        print(f"{statement:48s} {best * 1000:7.1f} ms")


def _wrap(owner: Any, name: str, label: str, stats: dict[str, list[float]]) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            stats[label].append(time.perf_counter() - start)

    setattr(owner, name, timed)


def stages() -> None:
    """Run a 20-stage chain through the CLI in this process, timing each Docker API call."""
    t0 = time.perf_counter()
    import docker.api.client

    import cli.main
    import runner.containers
    import runner.engine
    import runner.execution
    import runner.supervisor

    t_import = time.perf_counter() - t0
    stats: dict[str, list[float]] = collections.defaultdict(list)
    first_call: list[float] = []
    client = docker.api.client.APIClient
    calls = [
        "inspect_image",
        "create_container",
        "attach",
        "start",
        "wait",
        "remove_container",
        "containers",
    ]
    original_version = client._retrieve_server_version  # type: ignore[attr-defined]

    def version(self: Any) -> Any:  # the client's first call: Containers() asks it
        first_call.append(time.perf_counter())
        return original_version(self)

    client._retrieve_server_version = version  # type: ignore[attr-defined]
    for name in calls:
        _wrap(client, name, f"api.{name}", stats)
    _wrap(runner.supervisor.Supervisor, "run", "Supervisor.run (whole container)", stats)
    _wrap(runner.execution.StageExecutor, "execute", "StageExecutor.execute (whole stage)", stats)
    _wrap(runner.engine._Run, "finish", "_Run.finish (main thread)", stats)

    tmp = Path(tempfile.mkdtemp(prefix="dockercise-profile-"))
    try:
        project = bench.write_pipeline(
            tmp / "chain",
            "".join(bench.stage(f"s{i}", f"s{i - 1}" if i else None) for i in range(bench.CHAIN)),
        )
        argv = ["run", "-C", str(project), "-q", "--results", str(tmp / "results")]
        code: Any = None
        start = time.perf_counter()
        try:
            cli.main.main(argv)
        except SystemExit as e:
            code = e.code
        total = time.perf_counter() - start
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"imports (cli.main, docker, engine): {t_import * 1000:.0f} ms in this process")
    if first_call:
        print(f"main() to first Docker API call: {(first_call[0] - start) * 1000:.0f} ms")
    print(f"main() total: {total:.3f} s, exit {code}")
    print(f"{'what':36s} {'n':>4s} {'mean ms':>8s} {'total s':>8s}")
    for label, samples in stats.items():
        mean = 1000 * sum(samples) / len(samples)
        print(f"{label:36s} {len(samples):4d} {mean:8.1f} {sum(samples):8.3f}")


def load(reps: int = 2) -> None:
    """Phases of load + prepare for the 10,000-stage pipeline, with the cyclic GC on and off."""
    import yaml

    from runner import dag, pipeline, rules, sources, yaml12
    from runner.engine import RunOptions, prepare

    stats: dict[str, list[float]] = collections.defaultdict(list)
    _wrap(sources, "read_files", "sources.read_files", stats)
    _wrap(yaml12, "parse", "yaml12.parse", stats)
    _wrap(pipeline, "_build_stage", "_build_stage (all stages)", stats)
    _wrap(pipeline, "_reference_problems", "_reference_problems", stats)
    _wrap(dag, "order", "dag.order (all calls)", stats)
    _wrap(dag, "select", "dag.select", stats)

    tmp = Path(tempfile.mkdtemp(prefix="dockercise-profile-"))
    try:
        files = bench.big_pipeline(bench.BIG)
        project = bench.write_files(tmp / "big", files)
        for collector in ("on", "off"):
            for _ in range(reps):
                stats.clear()
                for cached in (pipeline.schema, rules._expect):
                    cached.cache_clear()
                gc.collect()
                if collector == "off":
                    gc.disable()
                try:
                    start = time.perf_counter()
                    for text in files.values():
                        yaml.load(text, Loader=yaml.CSafeLoader)
                    base = time.perf_counter() - start
                    gc.collect()
                    start = time.perf_counter()
                    loaded = pipeline.load(project)
                    middle = time.perf_counter()
                    if loaded is not None:
                        prepare(loaded, RunOptions())
                    end = time.perf_counter()
                finally:
                    gc.enable()
                print(
                    f"GC {collector}: load {middle - start:.3f} s + prepare {end - middle:.3f} s"
                    f" = {end - start:.3f} s   (baseline CSafeLoader {base:.3f} s)"
                )
                for label, samples in stats.items():
                    print(f"    {label:36s} {len(samples):6d} calls {sum(samples):7.3f} s")
                del loaded
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    modes: dict[str, Callable[[], None]] = {"startup": startup, "stages": stages, "load": load}
    chosen = sys.argv[1:] or list(modes)
    for mode in chosen:
        if mode not in modes:
            sys.exit(f"usage: profile.py [{'|'.join(modes)}]...")
        print(f"## {mode}")
        modes[mode]()
        print()


if __name__ == "__main__":
    main()
