"""What signing in costs a page (SPEC §11): a private repository's run page and log page
for a signed-in reader, against the same pages of a public repository for anyone.

    .venv/bin/python bench/access.py            # 5 rounds of 200 requests per page and side
    .venv/bin/python bench/access.py --quick    # 1 round of 50

The bot's web side runs as the Procfile runs it (gunicorn, one sync worker,
`bot.web:create_bot_app()`, SQLite state) against the tests' fake GitHub (in
this process); the store holds the same run under both repositories. The
reader signs in once through the fake's OAuth flow; GitHub's answer about
the repository is then remembered (5 minutes), so what is timed is what
every signed-in request pays: the session read from the state, the privacy
read, the CSRF token of the sign-out form. Requests go one at a time over a
kept-alive connection per side, the sides alternating request by request. Nothing is
asserted; it writes bench/latest-access.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests
from common import Paired, case_details, free_port, machine, publish, table, wait_until

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.settings import load_settings  # noqa: E402
from bot.state import open_state  # noqa: E402
from tests.bot.fake_github import FakeGitHub  # noqa: E402
from tests.bot.running import bot_env  # noqa: E402
from tests.bot.siteclient import write_bot_run  # noqa: E402
from tests.pages.conftest import RUN_ID  # noqa: E402

BIN = Path(sys.executable).parent
PUBLIC, PRIVATE = "octo/public", "octo/secret"
GOAL = 1.2


class Latency(Paired):
    @property
    def met(self) -> bool | None:
        return None if self.ratio is None else self.ratio <= GOAL

    def fmt(self, value: float | None) -> str:
        return "failed" if value is None else f"{value * 1000:.2f} ms"


def _get(session: requests.Session, url: str) -> float:
    """Seconds one request of `url` takes, its whole body read (it must be a 200)."""
    started = time.perf_counter()
    answer = session.get(url, timeout=10)
    answer.content  # noqa: B018 - the whole body, as a browser reads it
    if answer.status_code != 200:
        raise RuntimeError(f"{url}: {answer.status_code}")
    return time.perf_counter() - started


def _round(
    ours: tuple[requests.Session, str], base: tuple[requests.Session, str], count: int
) -> tuple[float, float]:
    """Mean seconds a request on each side; the sides alternate request by request (ABBA),
    so a change in the machine's load hits both alike."""
    totals = [0.0, 0.0]
    for i in range(count):
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for side in order:
            session, url = (ours, base)[side]
            totals[side] += _get(session, url)
    return totals[0] / count, totals[1] / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds, count = (1, 50) if args.quick else (5, 200)
    header = machine()
    with tempfile.TemporaryDirectory() as folder, FakeGitHub(Path(folder) / "github") as github:
        tmp = Path(folder)
        port = free_port()
        env = bot_env(github, tmp, port)
        settings = load_settings(env)
        for repo in (PUBLIC, PRIVATE):
            github.push(repo, {"README": "x\n"})
            write_bot_run(Path(settings.results), repo)
        github.private.add(PRIVATE)
        github.grant(PRIVATE, "reader", "read")
        state = open_state(settings)
        state.set_private(PUBLIC, False)
        state.set_private(PRIVATE, True)
        state.close()
        log = (tmp / "gunicorn.log").open("wb")
        server = subprocess.Popen(
            [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "1",
             "bot.web:create_bot_app()"],
            env={**env, "PATH": str(BIN)}, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: requests.get(f"{base}/healthz", timeout=2).ok, 30, what="gunicorn")
            anonymous, reader = requests.Session(), requests.Session()
            github.signing_in = "reader"
            to_github = reader.get(f"{base}/login", allow_redirects=False, timeout=10)
            back = requests.get(to_github.headers["Location"], allow_redirects=False, timeout=10)
            callback = urlsplit(back.headers["Location"])
            reader.get(f"{base}{callback.path}?{callback.query}", timeout=10)
            pages = {
                "run page": f"/results/{{repo}}/run/{RUN_ID}",
                "log page": f"/results/{{repo}}/run/{RUN_ID}/build.log",
            }
            cases = []
            for label, path in pages.items():
                case = Latency(
                    f"{label}: private, signed-in reader vs public, anonymous",
                    f"ratio ≤ {GOAL}",
                )
                public_url, private_url = (base + path.format(repo=r) for r in (PUBLIC, PRIVATE))
                _round((reader, private_url), (anonymous, public_url), 10)  # warm-up
                for _ in range(rounds):
                    ours, theirs = _round((reader, private_url), (anonymous, public_url), count)
                    case.ours.append(ours)
                    case.base.append(theirs)
                cases.append(case)
            calls = sum(1 for c in github.calls if c[1].startswith(("/user", "/repos/")))
        finally:
            server.terminate()
            server.wait(timeout=20)
            log.close()
    details = []
    for case in cases:
        details += case_details(
            case, "the same page of a public repository, nobody signed in",
            lambda s: f"{s * 1000:.2f} ms",
        )  # fmt: skip
    details.append(
        f"- the reader's GitHub API calls in all: {calls} (sign-in and `/`; remembered 5 min)"
    )
    sections = [header, table(cases), "\n".join(details)]
    publish("dockercise results site: signed-in pages", sections, ROOT / "bench/latest-access.md")


if __name__ == "__main__":
    main()
