"""Checkouts from a mirror (SPEC §13) on a repository with a long history, against plain git.

    .venv/bin/python bench/checkout.py             # 3 samples per case and side
    .venv/bin/python bench/checkout.py --quick     # 1 sample, a smaller repository
    .venv/bin/python bench/checkout.py --commits 50000 --files 4600

A repository is generated at bench time with `git fast-import` (random blob
contents, so the pack does not delta-compress away): `--files` files in the
first commit, then `--commits` commits each changing one file. The tests'
fake GitHub serves it over HTTP (`git http-backend`, the installation token
checked), and both sides fetch through it with the token in a header.

- (1) first build: `Mirrors.checkout` with no mirror yet (full fetch, the
  tree written, hard-linked into the build's directory) against
  `git clone --no-tags` of the same URL.
- (2) repeat build: a new commit (three files changed) pushed before each
  sample; `Mirrors.checkout` of it with the mirror of the previous sample
  against `git clone --depth 1 --no-tags` of the same commit.
- (2b) repeat build in the bot: another new commit; from `Builder.build`
  taking the job (as a queue worker does: installation token, the mirror's
  checkout, the pipeline loaded, `pending`) to the engine's `start` event of
  the first stage's container, against the same shallow clones as (2).
- (3) disk per build: what a repeat build's directory adds to the disk (the
  files it does not share with the mirror) against the shallow clone.

A warm-up full clone runs first (the server's pack in the page cache), and
a warm-up bot build before (2b) (imports, the first installation token);
the sides take turns going first (ABBA).

Nothing is asserted; it writes bench/latest-checkout.md.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import common

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.builds import Builder
from bot.checkout import Mirrors
from bot.github_api import GitHubApp
from bot.jobs import Job, JobKind
from bot.settings import Settings, load_settings
from bot.state.sqlite_store import SqliteState
from tests.bot.fake_github import FakeGitHub
from tests.bot.running import bot_env

REPO = "bench/big"
STAGE = "first"
PIPELINE = f"{STAGE}:\n  img: {common.IMAGE}\n  vol: [code]\n  run: test -s /code/.dockercise.yml\n"
MIB = 1 << 20


@dataclass
class Ratio(common.Paired):
    goal: float = 1.0

    @property
    def met(self) -> bool | None:
        return None if self.ratio is None else self.ratio <= self.goal


@dataclass
class Disk(common.Paired):
    @property
    def met(self) -> bool | None:
        return None if self.ratio is None else self.ratio <= 0.5

    def fmt(self, value: float | None) -> str:
        return "—" if value is None else f"{value / MIB:.2f} MiB"


def _generate(bare: Path, files: int, commits: int, seed: int = 16) -> None:
    """`files` random files, then `commits` commits of one changed file each, on `main`."""
    rng = random.Random(seed)
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    paths = [f"src/{i % 200:03d}/{i // 200:03d}-{i}.bin" for i in range(files)]
    importer = subprocess.Popen(
        ["git", "fast-import", "--quiet", "--done"], cwd=bare, stdin=subprocess.PIPE
    )
    assert importer.stdin is not None
    out = importer.stdin
    when = 1_700_000_000

    def commit(changes: list[tuple[str, bytes]], n: int) -> None:
        message = f"change {n}\n".encode()
        out.write(b"commit refs/heads/main\n")
        out.write(f"committer Bench <bench@example.com> {when + n} +0000\n".encode())
        out.write(b"data %d\n%s\n" % (len(message), message))
        for path, data in changes:
            out.write(f"M 100644 inline {path}\ndata {len(data)}\n".encode())
            out.write(data + b"\n")

    first = [(p, rng.randbytes(12 * 1024)) for p in paths]
    commit([*first, (".dockercise.yml", PIPELINE.encode())], 0)
    for n in range(1, commits):
        commit([(rng.choice(paths), rng.randbytes(rng.randint(2048, 6144)))], n)
    out.write(b"done\n")
    out.close()
    if importer.wait() != 0:
        raise SystemExit("git fast-import failed")
    # Served as GitHub serves: one pack with a bitmap, no delta search at fetch time.
    subprocess.run(["git", "-C", str(bare), "repack", "-q", "-a", "-d", "-b", "--window=0"],
                   check=True)  # fmt: skip
    subprocess.run(["git", "-C", str(bare), "config", "pack.window", "0"], check=True)


def _push_change(bare: Path, n: int) -> str:
    """A new commit on `main` changing three files; its sha."""
    rng = random.Random(n)
    listing = subprocess.run(["git", "-C", str(bare), "ls-tree", "-r", "--name-only", "main"],
                             check=True, capture_output=True, text=True).stdout.split()  # fmt: skip
    listing.remove(".dockercise.yml")
    stream = [b"commit refs/heads/main\n",
              f"committer Bench <bench@example.com> {int(time.time())} +0000\n".encode(),
              b"data 7\nchange\n", b"from refs/heads/main^0\n"]  # fmt: skip
    for path in rng.sample(listing, 3):
        data = rng.randbytes(4096)
        stream += [f"M 100644 inline {path}\ndata {len(data)}\n".encode(), data, b"\n"]
    subprocess.run(["git", "fast-import", "--quiet"], cwd=bare, input=b"".join(stream),
                   check=True)  # fmt: skip
    return subprocess.run(["git", "-C", str(bare), "rev-parse", "main"], check=True,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip


def _first_container(settings: Settings, job: Job) -> float:
    """Seconds from a worker taking `job` to the engine starting its first container."""
    import docker

    client = docker.from_env()
    state = SqliteState(settings.data_dir / "state.db")
    state.record(job)
    app = GitHubApp(settings.app_id, settings.private_key, settings.api_url)
    since = started = time.time()
    worker = threading.Thread(target=Builder(settings, app, state, "bench").build, args=(job,))
    worker.start()
    try:
        wanted = {"type": "container", "event": "start", "label": f"dockercise.stage={STAGE}"}
        events = client.events(decode=True, since=int(since) - 1, filters=wanted)
        for event in events:
            when = event["timeNano"] / 1e9
            if when >= started:
                events.close()
                return when - started
        raise RuntimeError("no container started")
    finally:
        worker.join(120)
        client.close()


def _git_env(token: str) -> dict[str, str]:
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    header = f"Authorization: Basic {basic}"
    return os.environ | {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
                         "GIT_CONFIG_VALUE_0": header, "GIT_TERMINAL_PROMPT": "0"}  # fmt: skip


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _pair(
    case: common.Paired, rep: int, ours: Callable[[], object], base: Callable[[], object]
) -> None:
    """One sample of each side, the first side taking turns (ABBA)."""
    sides = [(case.ours, ours), (case.base, base)]
    for samples, action in sides if rep % 2 == 0 else reversed(sides):
        samples.append(_timed(action))


def _unshared_bytes(folder: Path, shared: Path) -> int:
    """Disk under `folder` that is not also under `shared` (hard links counted once)."""
    known = {(st.st_dev, st.st_ino) for st in _stats(shared)}
    return sum(st.st_blocks * 512 for st in _stats(folder) if (st.st_dev, st.st_ino) not in known)


def _stats(top: Path) -> list[os.stat_result]:
    found = {}
    for folder, dirs, files in os.walk(top):
        for name in dirs + files:
            st = os.lstat(os.path.join(folder, name))
            found[(st.st_dev, st.st_ino)] = st
    return list(found.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 sample, 10,000 commits")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--commits", type=int, default=50_000)
    parser.add_argument("--files", type=int, default=4_600)
    output = Path(__file__).with_name("latest-checkout.md")
    parser.add_argument("--output", type=Path, default=output)
    args = parser.parse_args()
    if args.quick:
        args.reps, args.commits = 1, min(args.commits, 10_000)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="dockercise-bench-checkout-"))
    first = Ratio("(1) first build: checkout with no mirror", "ratio ≤ 1.1", goal=1.1)
    repeat = Ratio("(2) repeat build: checkout of a new commit", "ratio ≤ 0.5", goal=0.5)
    in_bot = Ratio("(2b) repeat build in the bot: worker → first container", "ratio ≤ 0.5",
                   goal=0.5)  # fmt: skip
    disk = Disk("(3) disk per repeat build", "ratio ≤ 0.5")
    try:
        with FakeGitHub(tmp / "github") as fake:
            token = "ghs_bench"
            fake.tokens[token] = time.time() + 86_400
            bare = fake.repos / f"{REPO}.git"
            bare.parent.mkdir(parents=True)
            generating = _timed(partial(_generate, bare, args.files, args.commits))
            pack = sum(p.stat().st_size for p in (bare / "objects" / "pack").glob("*.pack"))
            url, env = fake.clone_url(REPO), _git_env(token)
            sha = _push_change(bare, 0)

            def clone(into: Path, *extra: str) -> None:
                subprocess.run(["git", "clone", "-q", "--no-tags", *extra, url, str(into)],
                               env=env, check=True)  # fmt: skip

            ref = "refs/heads/main"
            clone(tmp / "warm-up")
            shutil.rmtree(tmp / "warm-up")
            for rep in range(args.reps):
                mirrors = Mirrors(tmp / f"mirrors-{rep}", 1 << 40)
                build = tmp / f"first-{rep}"
                ours = partial(mirrors.checkout, REPO, url, ref, sha, build, token)
                _pair(first, rep, ours, partial(clone, tmp / f"clone-{rep}"))
                shutil.rmtree(tmp / f"clone-{rep}")
                if rep < args.reps - 1:
                    shutil.rmtree(tmp / f"mirrors-{rep}")
                shutil.rmtree(build)
            mirror_root = tmp / f"mirrors-{args.reps - 1}"
            mirrors = Mirrors(mirror_root, 1 << 40)
            for rep in range(args.reps):
                sha = _push_change(bare, rep + 1)
                build, shallow = tmp / f"repeat-{rep}", tmp / f"shallow-{rep}"
                ours = partial(mirrors.checkout, REPO, url, ref, sha, build, token)
                _pair(repeat, rep, ours, partial(clone, shallow, "--depth", "1"))
                disk.ours.append(_unshared_bytes(build, mirror_root))
                disk.base.append(_unshared_bytes(shallow, tmp / "nothing"))
                shutil.rmtree(build)
                shutil.rmtree(shallow)
            mirror_size = sum(st.st_blocks * 512 for st in _stats(mirror_root))
            # The bot's own worker, its data directory holding the mirror made above.
            settings = load_settings(bot_env(fake, tmp))
            (settings.data_dir).mkdir(parents=True)
            mirror_root.rename(settings.data_dir / "mirrors")
            fake.installation_id = 77
            in_bot.base = repeat.base
            for rep in range(-1, args.reps):  # -1: a warm-up (imports, the first token)
                sha = _push_change(bare, 100 + rep)
                job = Job(id=f"bench-{rep}", kind=JobKind.PUSH, repo=REPO, clone_url=url,
                          ref=ref, sha=sha, branch="main", installation_id=fake.installation_id,
                          delivery=f"bench-{rep}", fork=False)  # fmt: skip
                took = _first_container(settings, job)
                if rep >= 0:
                    in_bot.ours.append(took)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    git_version = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout
    cases = [first, repeat, in_bot, disk]
    details = [
        f"Repository: {args.commits:,} commits, {args.files:,} files of 12 KiB in the tree, "
        f"a pack of {pack / MIB:.0f} MiB (generated in {generating:.0f} s); "
        f"the mirror with its working tree: {mirror_size / MIB:.0f} MiB.",
        *common.case_details(first, "`git clone --no-tags` of the same URL"),
        *common.case_details(repeat, "`git clone --depth 1 --no-tags` of the new commit"),
        *common.case_details(in_bot, "the shallow clones of (2)"),
        *common.case_details(disk, "the shallow clone's directory", lambda b: f"{b / MIB:.2f}"),
    ]
    common.publish(
        "Checkouts from a mirror",
        [common.machine(git_version.strip()), common.table(cases), "\n".join(details)],
        args.output,
    )


if __name__ == "__main__":
    main()
