"""Who may see what on the bot's results site, and signing in (SPEC §11), against the fake
GitHub's OAuth flow and per-user repository answers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from bot.sessions import COOKIE
from bot.site import safe_next
from tests.bot.fake_github import FakeGitHub
from tests.bot.siteclient import PRIVATE, PUBLIC, SiteUnderTest, make_site, write_bot_run
from tests.pages.conftest import RUN_ID
from webhooks.verify import sign

PAGES = [
    "/results/{repo}/",
    "/results/{repo}/run/" + RUN_ID,
    "/results/{repo}/run/" + RUN_ID + ".json",
    "/results/{repo}/run/" + RUN_ID + "/build.log",
    "/results/{repo}/run/" + RUN_ID + "/build.zip",
]


@pytest.fixture
def site(github: FakeGitHub, tmp_path: Path) -> Iterator[SiteUnderTest]:
    yield from make_site(github, tmp_path)


def _client_as(site: SiteUnderTest, who: str) -> FlaskClient:
    client = site.client()
    if who != "anonymous":
        signed = site.sign_in(client, who)
        assert signed.status_code == 303, signed.get_data(as_text=True)
    return client


@pytest.mark.parametrize("who", ["anonymous", "outsider", "reader", "writer"])
@pytest.mark.parametrize("repo", [PUBLIC, PRIVATE])
def test_private_results_are_404_to_whoever_cannot_read_them(
    site: SiteUnderTest, who: str, repo: str
) -> None:
    client = _client_as(site, who)
    readable = repo == PUBLIC or who in ("reader", "writer")
    for page in PAGES:
        response = client.get(page.format(repo=repo))
        assert response.status_code == (200 if readable else 404), (page, response.status_code)
        if repo == PRIVATE and readable:
            assert response.headers["Cache-Control"] == "private, no-store"
    home = client.get("/").get_data(as_text=True)
    listed = f'data-repo="{repo}"' in home
    assert listed == (who in ("reader", "writer"))  # the landing page: what they can read
    if who == "anonymous":
        assert "Sign in with GitHub" in home
    else:
        assert f'<span class="login">{who}</span>' in home


def test_unknown_privacy_counts_as_private(site: SiteUnderTest, tmp_path: Path) -> None:
    write_bot_run(Path(site.settings.results), "octo/unknown")
    site.github.push("octo/unknown", {"README": "x\n"})
    client = site.client()
    assert client.get("/results/octo/unknown/").status_code == 404
    assert client.get("/badge/octo/unknown.svg").status_code == 404


def _delivery(
    client: FlaskClient, site: SiteUnderTest, event: str, payload: dict[str, object]
) -> int:
    import json

    body = json.dumps(payload).encode()
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": f"d-{time.time()}",
        "X-Hub-Signature-256": sign(body, site.settings.webhook_secret),
        "Content-Type": "application/json",
    }
    return client.post("/webhooks/github", data=body, headers=headers).status_code


def _repository_event(action: str, repo: str, private: bool) -> dict[str, object]:
    owner, name = repo.split("/")
    return {
        "action": action,
        "repository": {
            "id": 7, "name": name, "full_name": repo, "private": private,
            "owner": {"login": owner, "id": 1},
        },
        "installation": {"id": 77},
        "sender": {"login": "octocat", "id": 1},
    }  # fmt: skip


def test_a_repository_made_private_hides_its_old_runs_at_once(site: SiteUnderTest) -> None:
    anonymous = site.client()
    page = f"/results/{PUBLIC}/run/{RUN_ID}"
    assert anonymous.get(page).status_code == 200
    privatized = _repository_event("privatized", PUBLIC, True)
    assert _delivery(anonymous, site, "repository", privatized) == 200  # recorded, builds nothing
    assert anonymous.get(page).status_code == 404
    assert anonymous.get(f"/badge/{PUBLIC}.svg").status_code == 404
    publicized = _repository_event("publicized", PUBLIC, False)
    assert _delivery(anonymous, site, "repository", publicized) == 200
    assert anonymous.get(page).status_code == 200


@pytest.mark.parametrize(
    "target, landed",
    [
        ("/results/octo/secret/", "/results/octo/secret/"),
        ("//evil.example/", "/"),
        ("/\\evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("/\t/evil.example/", "/"),
        ("", "/"),
    ],
)
def test_sign_in_returns_only_to_a_local_path(
    site: SiteUnderTest, target: str, landed: str
) -> None:
    client = site.client()
    response = site.sign_in(client, "reader", target)
    assert response.status_code == 303
    assert response.headers["Location"] == landed


@pytest.mark.parametrize(
    "target",
    ["//x", "/\\x", "/x\\y", "http://x", "x", "/ok/\x00", "/%0a", "//", "\\\\x"],
)
def test_safe_next_refuses_anything_not_a_local_path(target: str) -> None:
    expected = "/%0a" if target == "/%0a" else "/"  # an encoded newline is just a path here
    assert safe_next(target) == expected


def test_a_callback_with_another_state_signs_nobody_in(site: SiteUnderTest) -> None:
    victim = site.client()
    site.github.signing_in = "writer"
    victim.get("/login")  # the victim's sign-in started: a state in their session
    forged = victim.get("/login/callback?code=whatever&state=attackers-state")
    assert forged.status_code == 400
    assert victim.get(f"/results/{PRIVATE}/").status_code == 404
    no_session = site.client().get("/login/callback?code=x&state=")
    assert no_session.status_code == 400


def _cookie(client: FlaskClient) -> str | None:
    found = client.get_cookie(COOKIE)
    return None if found is None else found.value


def test_signing_in_renews_the_session_id(site: SiteUnderTest) -> None:
    """Session fixation: an id planted before sign-in never becomes a signed-in session."""
    attacker = site.client()
    attacker.get("/login")  # a real pre-sign-in session of the attacker's
    planted = _cookie(attacker)
    assert planted
    victim = site.client()
    victim.set_cookie(COOKIE, planted)
    assert site.sign_in(victim, "reader").status_code == 303
    signed_in = _cookie(victim)
    assert signed_in and signed_in != planted
    attacker.set_cookie(COOKIE, planted)
    assert attacker.get(f"/results/{PRIVATE}/").status_code == 404
    assert victim.get(f"/results/{PRIVATE}/").status_code == 200


def test_the_cookie_holds_only_a_random_id_with_safe_flags(site: SiteUnderTest) -> None:
    client = site.client()
    signed = site.sign_in(client, "reader")
    header = signed.headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Secure" not in header
    value = _cookie(client) or ""
    assert len(value) == 43 and "reader" not in header and "ghu_" not in header
    assert (
        site.client().get("/results/octo/secret/", headers={"Cookie": f"{COOKIE}=junk"}).status_code
        == 404
    )


def test_cookies_are_secure_when_the_site_is_https(github: FakeGitHub, tmp_path: Path) -> None:
    for site in make_site(github, tmp_path, DOCKERCISE_PUBLIC_URL="https://ci.example.com"):
        response = site.client().get("/login")
        assert "Secure" in response.headers["Set-Cookie"]


def test_logout_needs_the_csrf_token_and_ends_the_session_on_the_server(
    site: SiteUnderTest,
) -> None:
    client = site.client()
    site.sign_in(client, "reader")
    cookie = _cookie(client) or ""
    page = client.get(f"/results/{PRIVATE}/").get_data(as_text=True)
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    assert client.post("/logout").status_code == 400  # no token: a cross-site form
    assert client.post("/logout", data={"csrf_token": "forged"}).status_code == 400
    assert client.get(f"/results/{PRIVATE}/").status_code == 200  # still signed in
    out = client.post("/logout", data={"csrf_token": token})
    assert out.status_code == 303
    replay = site.client()
    replay.set_cookie(COOKIE, cookie)  # the old cookie, kept by whoever copied it
    assert replay.get(f"/results/{PRIVATE}/").status_code == 404
    assert "Sign in with GitHub" in replay.get("/").get_data(as_text=True)


def test_an_expired_user_token_is_refreshed_and_a_refused_refresh_ends_the_session(
    site: SiteUnderTest,
) -> None:
    client = site.client()
    site.sign_in(client, "reader")
    exchanges = site.github.calls.count(("POST", "/login/oauth/access_token"))
    site.github.expire_user_tokens()
    _age_tokens(site)  # the site sees expiry by the expires_in GitHub gave: as 8 hours passing
    assert client.get(f"/results/{PRIVATE}/").status_code == 200
    assert site.github.calls.count(("POST", "/login/oauth/access_token")) == exchanges + 1
    site.github.refusing_refresh = True
    _age_tokens(site)
    assert client.get(f"/results/{PRIVATE}/").status_code == 404
    assert "Sign in with GitHub" in client.get("/").get_data(as_text=True)


def _age_tokens(site: SiteUnderTest) -> None:
    """Make every stored session's user token expired (as eight hours passing would)."""
    import json
    import sqlite3

    db = sqlite3.connect(site.settings.data_dir / "state.db")
    with db:
        for key, data in db.execute("select key, data from sessions").fetchall():
            session = json.loads(data)
            if "user" in session:
                session["user"]["token"]["expires_at"] = time.time() - 1
                db.execute("update sessions set data = ? where key = ?", (json.dumps(session), key))
    db.close()


def test_a_badge_for_public_branches_only(site: SiteUnderTest) -> None:
    client = site.client()
    svg = client.get(f"/badge/{PUBLIC}.svg?branch=main")
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml"
    assert "passing" in svg.get_data(as_text=True)
    assert "unknown" in client.get(f"/badge/{PUBLIC}.svg?branch=nope").get_data(as_text=True)
    assert client.get(f"/badge/{PRIVATE}.svg?branch=main").status_code == 404
    signed = site.client()
    site.sign_in(signed, "writer")
    assert signed.get(f"/badge/{PRIVATE}.svg?branch=main").status_code == 404  # embeds leak
    assert client.get("/badge/octo/never.svg").status_code == 404
    assert client.get(f"/badge/{PUBLIC}.png").status_code == 404
