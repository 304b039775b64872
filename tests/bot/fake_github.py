"""A fake GitHub on 127.0.0.1: the REST endpoints the bot uses, and git over HTTP.

Answers with GitHub's documented JSON shapes, checks the credentials the bot
must send (an RS256 app JWT, then installation tokens it issued), and records
every call, so tests assert on statuses exactly as GitHub would have stored
them. It is strict: every REST request is checked against GitHub's published
OpenAPI description (tests/github_contract.py); one GitHub would refuse is
answered 422, as GitHub does, and fails the test when the fake closes.
Repositories are real bare git repositories served by `git http-backend`.

Users (SPEC §11): `add_user` makes one, `grant` gives them read or write on
a repository (they are then its collaborators), `private` marks repositories
private. The OAuth web flow is on the same host as the API (as
`GITHUB_WEB_URL` and `GITHUB_API_URL` both point here): `/login/oauth/authorize`
signs in as `signing_in` at once (the user pressing "Authorize") and sends the
browser back with a code; `/login/oauth/access_token` exchanges it, or a
refresh token (each used once, as GitHub rotates them). These two are not
in the REST description: their parameters are checked here as GitHub
documents them, a wrong one recorded as a violation like the others.
"""

from __future__ import annotations

import base64
import re
import secrets
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

from tests.github_contract import ContractViolation, check_request

__all__ = ["FakeGitHub", "GitRequest", "make_private_key"]


def make_private_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def _git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Octo Cat", "-c", "user.email=octo@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@dataclass(frozen=True)
class GitRequest:
    """One request of git's smart HTTP that the fake served (for tests of fetches)."""

    path: str
    haves: int
    """`have` lines the client sent: what it told the server it already has."""
    objects: int | None
    """Objects in the pack the server sent back (None: no pack in the answer)."""
    pack_bytes: int


def _pack_objects(payload: bytes) -> int | None:
    """The object count in a pack's header ("PACK", version, count), sent inside pkt-lines."""
    at = payload.find(b"PACK\x00\x00\x00")
    if at < 0 or len(payload) < at + 12:
        return None
    return int.from_bytes(payload[at + 8 : at + 12], "big")


@dataclass
class FakeGitHub:
    root: Path
    app_id: int = 4242
    private_key: str = field(default_factory=make_private_key)
    installation_id: int = 77
    installations: dict[str, int] = field(default_factory=dict)
    """Repositories (owner/repo) of other installations than `installation_id`, with theirs."""
    calls: list[tuple[str, str]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    tokens: dict[str, float] = field(default_factory=dict)
    token_ttl: float = 3600.0
    default_branches: dict[str, str] = field(default_factory=dict)
    violations: list[ContractViolation] = field(default_factory=list)
    truncated: dict[str, int] = field(default_factory=dict)
    """Repositories whose recursive tree is cut (`truncated: true`) after this many entries,
    as GitHub does past 100,000 entries or 7 MB."""
    git_requests: list[GitRequest] = field(default_factory=list)
    client_id: str = "Iv1.fakeclient"
    client_secret: str = field(default_factory=lambda: secrets.token_hex(20))
    user_token_ttl: float = 8 * 3600.0
    signing_in: str | None = None
    """Who is "at the keyboard" when the browser reaches GitHub's authorize page."""
    users: dict[str, int] = field(default_factory=dict)
    grants: dict[str, dict[str, str]] = field(default_factory=dict)
    """repository (lower case) -> login -> "read" | "write"."""
    private: set[str] = field(default_factory=set)
    codes: dict[str, str] = field(default_factory=dict)
    user_tokens: dict[str, tuple[str, float]] = field(default_factory=dict)
    refresh_tokens: dict[str, str] = field(default_factory=dict)
    refusing_refresh: bool = False
    permissions: dict[str, str] = field(
        default_factory=lambda: {"contents": "read", "statuses": "write", "metadata": "read"}
    )
    """What the installation grants: returned with every token it issues."""
    refuse_checks: bool = False
    """Answer every check-runs request 403, as GitHub does where checks are not granted."""
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Every check run made, by id, as GitHub stores it (each update applied)."""
    check_run_updates: list[dict[str, Any]] = field(default_factory=list)
    """Every create and update body, in order, with `id` added."""

    def __post_init__(self) -> None:
        self.repos = self.root / "repos"
        self.repos.mkdir(parents=True, exist_ok=True)
        public = serialization.load_pem_private_key(self.private_key.encode(), None).public_key()
        self._public_pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self._lock = threading.Lock()
        self.app = self._make_app()
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeGitHub:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        if kind is None and self.violations:
            refused = "\n  ".join(str(v) for v in self.violations)
            raise AssertionError(f"requests GitHub's OpenAPI description refuses:\n  {refused}")

    # --- repositories -----------------------------------------------------------

    def clone_url(self, full_name: str) -> str:
        return f"{self.url}/git/{full_name}.git"

    def push(
        self,
        full_name: str,
        files: dict[str, str],
        branch: str = "main",
        links: dict[str, str] | None = None,
        message: str | None = None,
    ) -> str:
        """Commit `files` (and `links`: path -> where the symbolic link points) on top of
        `branch` (creating the repository) and return the sha; `message` is the commit's."""
        bare = self.repos / f"{full_name}.git"
        work = self.root / "work" / full_name
        if not bare.exists():
            bare.mkdir(parents=True)
            _git("init", "-q", "--bare", "-b", branch, str(bare))
            work.mkdir(parents=True)
            _git("init", "-q", "-b", branch, cwd=work)
            _git("remote", "add", "origin", str(bare), cwd=work)
            self.default_branches.setdefault(full_name, branch)
        else:
            _git("checkout", "-q", "-B", branch, cwd=work)
        for name, text in files.items():
            path = work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        for name, target in (links or {}).items():
            path = work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.symlink_to(target)
        _git("add", "-A", cwd=work)
        text = message if message is not None else f"change {time.time()}"
        _git("commit", "-q", "--allow-empty", "-m", text, cwd=work)
        _git("push", "-q", "origin", f"HEAD:refs/heads/{branch}", cwd=work)
        return _git("rev-parse", "HEAD", cwd=work)

    def open_pull_request(self, full_name: str, number: int, sha_source: str) -> str:
        """Make `refs/pull/N/head` of `full_name` point at the tip of branch `sha_source`."""
        bare = self.repos / f"{full_name}.git"
        sha = _git("rev-parse", f"refs/heads/{sha_source}", cwd=bare)
        _git("update-ref", f"refs/pull/{number}/head", sha, cwd=bare)
        return sha

    def grant_checks(self) -> None:
        self.permissions = {**self.permissions, "checks": "write"}

    def check_runs_for(self, sha: str, name: str | None = None) -> list[dict[str, Any]]:
        """The check runs of `sha` (of `name`), oldest first."""
        with self._lock:
            found = [dict(r) for r in self.check_runs.values() if r["head_sha"] == sha]
        return [r for r in found if name is None or r["name"] == name]

    def statuses_for(self, sha: str) -> list[dict[str, Any]]:
        with self._lock:
            return [s for s in self.statuses if s["sha"] == sha]

    # --- users (SPEC §11) ---------------------------------------------------------

    def add_user(self, login: str) -> None:
        with self._lock:
            self.users.setdefault(login, 1000 + len(self.users))

    def grant(self, full_name: str, login: str, level: str) -> None:
        """`level`: "read" or "write"; the user becomes a collaborator of the repository."""
        self.add_user(login)
        with self._lock:
            self.grants.setdefault(full_name.lower(), {})[login] = level

    def expire_user_tokens(self) -> None:
        with self._lock:
            self.user_tokens = {t: (login, 0.0) for t, (login, _) in self.user_tokens.items()}

    def _user_of(self) -> str | None:
        header = request.headers.get("Authorization", "")
        token = header.split(" ", 1)[1] if header.startswith(("Bearer ", "token ")) else ""
        with self._lock:
            found = self.user_tokens.get(token)
        return found[0] if found is not None and found[1] > time.time() else None

    def _level(self, full_name: str, login: str) -> str | None:
        with self._lock:
            return self.grants.get(full_name.lower(), {}).get(login)

    def _repo_json(self, owner: str, name: str, login: str | None) -> dict[str, Any]:
        full = f"{owner}/{name}"
        body: dict[str, Any] = {
            "id": 1,
            "name": name,
            "full_name": full,
            "owner": {"login": owner, "id": 1},
            "private": full.lower() in self.private,
            "url": f"{self.url}/repos/{full}",
            "clone_url": self.clone_url(full),
            "default_branch": self.default_branches.get(full, "main"),
        }
        if login is not None:
            level = self._level(full, login)
            write = level == "write"
            read = write or level == "read" or full.lower() not in self.private
            body["permissions"] = {
                "admin": False, "maintain": False, "push": write, "triage": write, "pull": read
            }  # fmt: skip
        return body

    def _oauth_violation(self, problem: str) -> Any:
        with self._lock:
            self.violations.append(ContractViolation(request.method, request.path, problem))
        return jsonify({"error": "invalid_request", "error_description": problem}), 400

    def _issue_user_token(self, login: str) -> Any:
        token = "ghu_" + secrets.token_hex(18)
        refresh = "ghr_" + secrets.token_hex(30)
        with self._lock:
            self.user_tokens[token] = (login, time.time() + self.user_token_ttl)
            self.refresh_tokens[refresh] = login
        return jsonify(
            {
                "access_token": token,
                "expires_in": int(self.user_token_ttl),
                "refresh_token": refresh,
                "refresh_token_expires_in": 15897600,
                "scope": "",
                "token_type": "bearer",
            }
        )

    # --- the HTTP side ----------------------------------------------------------

    def _record(self) -> None:
        with self._lock:
            self.calls.append((request.method, request.path))

    def _app_jwt_ok(self) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return False
        try:
            claims = jwt.decode(header[7:], self._public_pem, algorithms=["RS256"])
        except jwt.PyJWTError:
            return False
        return str(claims.get("iss")) == str(self.app_id)

    def _token_ok(self, token: str) -> bool:
        with self._lock:
            expires = self.tokens.get(token)
        return expires is not None and expires > time.time()

    def _installation_token_ok(self) -> bool:
        header = request.headers.get("Authorization", "")
        return header.startswith("token ") and self._token_ok(header[6:])

    def _make_app(self) -> Flask:
        app = Flask("fake-github")

        def denied() -> Any:
            return jsonify({"message": "Bad credentials"}), 401

        @app.before_request
        def record() -> Any:
            self._record()
            if request.path.startswith(("/git/", "/login/oauth/")):
                return None  # git's smart HTTP and the OAuth web flow, not the REST API
            violation = check_request(request)
            if violation is None:
                return None
            with self._lock:
                self.violations.append(violation)
            return jsonify({"message": "Validation Failed", "errors": [violation.problem]}), 422

        @app.post("/app/installations/<int:installation>/access_tokens")
        def access_token(installation: int) -> Any:
            if not self._app_jwt_ok():
                return denied()
            if installation not in {self.installation_id, *self.installations.values()}:
                return jsonify({"message": "Not Found"}), 404
            token = "ghs_" + secrets.token_hex(18)
            expires = datetime.now(UTC) + timedelta(seconds=self.token_ttl)
            with self._lock:
                self.tokens[token] = time.time() + self.token_ttl
            return jsonify(
                {
                    "token": token,
                    "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "permissions": dict(self.permissions),
                    "repository_selection": "all",
                }
            ), 201

        @app.get("/repos/<owner>/<name>/installation")
        def installation(owner: str, name: str) -> Any:
            if not self._app_jwt_ok():
                return denied()
            if not (self.repos / owner / f"{name}.git").exists():
                return jsonify({"message": "Not Found"}), 404
            return jsonify(
                {
                    "id": self.installations.get(f"{owner}/{name}", self.installation_id),
                    "account": {"login": owner, "id": 1, "type": "Organization"},
                    "app_id": self.app_id,
                    "target_type": "Organization",
                    "permissions": dict(self.permissions),
                    "events": ["push", "pull_request", "check_run", "check_suite"],
                    "created_at": "2026-01-01T00:00:00Z",
                    "updated_at": "2026-01-01T00:00:00Z",
                }
            )

        @app.post("/repos/<owner>/<name>/statuses/<sha>")
        def create_status(owner: str, name: str, sha: str) -> Any:
            if not self._installation_token_ok():
                return denied()
            body = request.get_json()
            if body.get("state") not in ("pending", "success", "failure", "error"):
                return jsonify({"message": "Validation Failed"}), 422
            if len(body.get("description") or "") >= 140:
                return jsonify({"message": "Validation Failed: description is too long"}), 422
            entry = {
                "repo": f"{owner}/{name}",
                "sha": sha,
                "state": body["state"],
                "description": body.get("description"),
                "target_url": body.get("target_url") or None,
                "context": body.get("context", "default"),
                # The fields the bot sent: a status without a URL sends no `target_url`.
                "sent": sorted(body),
            }
            with self._lock:
                self.statuses.append(entry)
                number = len(self.statuses)
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            return jsonify(
                {
                    "url": f"{self.url}/repos/{owner}/{name}/statuses/{sha}",
                    "id": number,
                    "node_id": f"SC_{number}",
                    "state": entry["state"],
                    "description": entry["description"],
                    "target_url": entry["target_url"],
                    "context": entry["context"],
                    "created_at": now,
                    "updated_at": now,
                    "creator": {"login": "dockercise[bot]", "id": 2, "type": "Bot"},
                }
            ), 201

        def check_denied() -> Any:
            return jsonify(
                {
                    "message": "Resource not accessible by integration",
                    "documentation_url": "https://docs.github.com/rest/checks/runs",
                }
            ), 403

        def check_json(owner: str, name: str, run: dict[str, Any]) -> dict[str, Any]:
            """A check run as GitHub answers it (the fields the description requires)."""
            url = f"{self.url}/repos/{owner}/{name}/check-runs/{run['id']}"
            output = run.get("output") or {}
            return {
                "id": run["id"],
                "node_id": f"CR_{run['id']}",
                "head_sha": run["head_sha"],
                "external_id": run.get("external_id") or "",
                "url": url,
                "html_url": f"https://github.com/{owner}/{name}/runs/{run['id']}",
                "details_url": run.get("details_url"),
                "status": run["status"],
                "conclusion": run.get("conclusion"),
                "started_at": run["started_at"],
                "completed_at": run.get("completed_at"),
                "output": {
                    "title": output.get("title"),
                    "summary": output.get("summary"),
                    "text": output.get("text"),
                    "annotations_count": len(run.get("annotations", [])),
                    "annotations_url": f"{url}/annotations",
                },
                "name": run["name"],
                "check_suite": {"id": 1},
                "app": None,
                "pull_requests": [],
            }

        def apply(run: dict[str, Any], body: dict[str, Any]) -> None:
            """A create's or update's body onto the stored run, as GitHub applies it."""
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            for key in ("name", "details_url", "external_id", "status", "conclusion"):
                if key in body:
                    run[key] = body[key]
            if "conclusion" in body:  # a conclusion completes the run
                run["status"] = "completed"
            if run.get("status") == "completed" and not run.get("completed_at"):
                run["completed_at"] = now
            if "output" in body:
                output = body["output"]
                run["output"] = {k: output.get(k) for k in ("title", "summary", "text")}
                run.setdefault("annotations", []).extend(output.get("annotations") or [])

        @app.post("/repos/<owner>/<name>/check-runs")
        def create_check_run(owner: str, name: str) -> Any:
            if not self._installation_token_ok():
                return denied()
            if self.refuse_checks or self.permissions.get("checks") != "write":
                return check_denied()
            body = request.get_json()
            if body.get("status") == "completed" and not body.get("conclusion"):
                return jsonify({"message": "Validation Failed: conclusion required"}), 422
            with self._lock:
                number = len(self.check_runs) + 1
                run: dict[str, Any] = {
                    "id": number,
                    "repo": f"{owner}/{name}",
                    "head_sha": body["head_sha"],
                    "status": "queued",
                    "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
                apply(run, body)
                self.check_runs[number] = run
                self.check_run_updates.append({"id": number, **body})
                answer = check_json(owner, name, run)
            return jsonify(answer), 201

        @app.patch("/repos/<owner>/<name>/check-runs/<int:check_id>")
        def update_check_run(owner: str, name: str, check_id: int) -> Any:
            if not self._installation_token_ok():
                return denied()
            if self.refuse_checks or self.permissions.get("checks") != "write":
                return check_denied()
            body = request.get_json()
            with self._lock:
                run = self.check_runs.get(check_id)
                if run is None or run["repo"] != f"{owner}/{name}":
                    return jsonify({"message": "Not Found"}), 404
                apply(run, body)
                self.check_run_updates.append({"id": check_id, **body})
                answer = check_json(owner, name, run)
            return jsonify(answer)

        @app.get("/repos/<owner>/<name>/commits/<ref>/check-runs")
        def list_check_runs(owner: str, name: str, ref: str) -> Any:
            if not self._installation_token_ok():
                return denied()
            if self.refuse_checks or self.permissions.get("checks") != "write":
                return check_denied()
            wanted = request.args.get("check_name")
            with self._lock:
                runs = [
                    check_json(owner, name, r)
                    for r in self.check_runs.values()
                    if r["repo"] == f"{owner}/{name}"
                    and r["head_sha"] == ref
                    and (wanted is None or r["name"] == wanted)
                ]
            runs.reverse()  # newest first, as GitHub lists them
            return jsonify({"total_count": len(runs), "check_runs": runs})

        @app.get("/repos/<owner>/<name>/commits/<ref>")
        def commit(owner: str, name: str, ref: str) -> Any:
            if not self._installation_token_ok():
                return denied()
            bare = self.repos / owner / f"{name}.git"
            try:
                sha = _git("rev-parse", "--verify", f"{ref}^{{commit}}", cwd=bare)
                message = _git("log", "-1", "--format=%B", sha, cwd=bare)
            except (subprocess.CalledProcessError, OSError):
                return jsonify({"message": "No commit found for SHA: " + ref}), 422
            url = f"{self.url}/repos/{owner}/{name}/commits/{sha}"
            person = {"name": "Octo Cat", "email": "o@example.com", "date": "2026-01-01T00:00:00Z"}
            return jsonify(
                {
                    "sha": sha,
                    "node_id": f"C_{sha[:8]}",
                    "url": url,
                    "html_url": f"https://github.com/{owner}/{name}/commit/{sha}",
                    "comments_url": f"{url}/comments",
                    "commit": {
                        "url": url,
                        "author": person,
                        "committer": person,
                        "message": message,
                        "comment_count": 0,
                        "tree": {"sha": sha, "url": url},
                    },
                    "author": None,
                    "committer": None,
                    "parents": [],
                }
            )

        @app.get("/repos/<owner>/<name>")
        def repository(owner: str, name: str) -> Any:
            if self._installation_token_ok():
                return jsonify(self._repo_json(owner, name, None))
            login = self._user_of()
            if login is None:
                return denied()
            full = f"{owner}/{name}"
            if full.lower() in self.private and self._level(full, login) is None:
                return jsonify({"message": "Not Found"}), 404
            return jsonify(self._repo_json(owner, name, login))

        @app.get("/repos/<owner>/<name>/collaborators/<username>")
        def collaborator(owner: str, name: str, username: str) -> Any:
            if not self._installation_token_ok():
                return denied()
            if self._level(f"{owner}/{name}", username) is None:
                return jsonify({"message": "Not Found"}), 404
            return Response(status=204)

        @app.get("/login/oauth/authorize")
        def authorize() -> Any:
            args = request.args
            unknown = set(args) - {
                "client_id", "redirect_uri", "state", "login", "scope", "allow_signup",
                "prompt", "response_type", "code_challenge", "code_challenge_method",
            }  # fmt: skip
            if args.get("client_id") != self.client_id:
                return self._oauth_violation("client_id is not the app's")
            if unknown:
                return self._oauth_violation(f"unknown parameters {sorted(unknown)}")
            redirect_uri = args.get("redirect_uri", "")
            if not redirect_uri.endswith("/login/callback"):
                return self._oauth_violation(f"redirect_uri {redirect_uri!r} is not registered")
            if not args.get("state"):
                return self._oauth_violation("no state: the app cannot tell its callback apart")
            if self.signing_in is None:
                return Response("nobody at the keyboard", 403)
            code = secrets.token_hex(10)
            with self._lock:
                self.codes[code] = self.signing_in
            query = urlencode({"code": code, "state": args["state"]})
            return Response(status=302, headers={"Location": f"{redirect_uri}?{query}"})

        @app.post("/login/oauth/access_token")
        def oauth_token() -> Any:
            form = request.form
            if request.args:
                return self._oauth_violation("parameters belong in the body")
            if form.get("client_id") != self.client_id:
                return self._oauth_violation("client_id is not the app's")
            if form.get("client_secret") != self.client_secret:
                return jsonify({"error": "incorrect_client_credentials"})
            if "application/json" not in request.headers.get("Accept", ""):
                return self._oauth_violation(
                    "without Accept: application/json GitHub answers a form"
                )
            grant = form.get("grant_type", "authorization_code")
            if grant == "refresh_token":
                unknown = set(form) - {"client_id", "client_secret", "grant_type", "refresh_token"}
                if unknown:
                    return self._oauth_violation(f"unknown parameters {sorted(unknown)}")
                with self._lock:
                    login = self.refresh_tokens.pop(form.get("refresh_token", ""), None)
                if login is None or self.refusing_refresh:
                    return jsonify({"error": "bad_refresh_token"})
                return self._issue_user_token(login)
            if grant != "authorization_code":
                return self._oauth_violation(f"grant_type {grant!r}")
            unknown = set(form) - {
                "client_id", "client_secret", "code", "redirect_uri", "grant_type", "code_verifier"
            }  # fmt: skip
            if unknown:
                return self._oauth_violation(f"unknown parameters {sorted(unknown)}")
            with self._lock:
                login = self.codes.pop(form.get("code", ""), None)
            if login is None:
                return jsonify({"error": "bad_verification_code"})
            return self._issue_user_token(login)

        @app.get("/user")
        def user() -> Any:
            login = self._user_of()
            if login is None:
                return denied()
            return jsonify({"login": login, "id": self.users[login], "type": "User"})

        def user_repos(login: str) -> list[dict[str, Any]]:
            found = []
            for bare in sorted(self.repos.glob("*/*.git")):
                owner, name = bare.parent.name, bare.name.removesuffix(".git")
                if self._level(f"{owner}/{name}", login) is not None:
                    found.append(self._repo_json(owner, name, login))
            return found

        @app.get("/user/installations")
        def user_installations() -> Any:
            login = self._user_of()
            if login is None:
                return denied()
            mine = user_repos(login)
            installations = [] if not mine else [
                {
                    "id": self.installation_id,
                    "account": {"login": mine[0]["owner"]["login"], "id": 1},
                    "app_id": self.app_id,
                    "target_type": "Organization",
                    "permissions": {"contents": "read", "statuses": "write"},
                    "events": ["push", "pull_request", "repository"],
                    "repository_selection": "all",
                }
            ]  # fmt: skip
            return jsonify({"total_count": len(installations), "installations": installations})

        @app.get("/user/installations/<int:installation>/repositories")
        def user_installation_repositories(installation: int) -> Any:
            login = self._user_of()
            if login is None:
                return denied()
            if installation != self.installation_id:
                return jsonify({"message": "Not Found"}), 404
            per_page = int(request.args.get("per_page", 30))
            page = int(request.args.get("page", 1))
            mine = user_repos(login)
            chosen = mine[(page - 1) * per_page : page * per_page]
            return jsonify({"total_count": len(mine), "repository_selection": "all",
                            "repositories": chosen})  # fmt: skip

        @app.get("/repos/<owner>/<name>/git/trees/<sha>")
        def tree(owner: str, name: str, sha: str) -> Any:
            if not self._installation_token_ok():
                return denied()
            bare = self.repos / owner / f"{name}.git"
            try:
                listing = _git("ls-tree", "-r", "--full-tree", sha, cwd=bare)
            except (subprocess.CalledProcessError, OSError):  # OSError: no such repository
                return jsonify({"message": "Not Found"}), 404
            entries = []
            for line in listing.splitlines():
                meta, path = line.split("\t", 1)
                mode, kind, blob = meta.split()
                entries.append({"path": path, "mode": mode, "type": kind, "sha": blob})
            url = f"{self.url}/repos/{owner}/{name}/git/trees/{sha}"
            cut = self.truncated.get(f"{owner}/{name}")
            if cut is not None:
                entries = entries[:cut]
            return jsonify({"sha": sha, "url": url, "tree": entries, "truncated": cut is not None})

        @app.get("/repos/<owner>/<name>/contents/<path:path>")
        def contents(owner: str, name: str, path: str) -> Any:
            if not self._installation_token_ok():
                return denied()
            bare = self.repos / owner / f"{name}.git"
            ref = request.args.get("ref", "HEAD")
            try:
                data = subprocess.run(
                    ["git", "show", f"{ref}:{path}"], cwd=bare, check=True, capture_output=True
                ).stdout
            except (subprocess.CalledProcessError, OSError):  # OSError: no such repository
                return jsonify({"message": "Not Found"}), 404
            url = f"{self.url}/repos/{owner}/{name}/contents/{path}?ref={ref}"
            return jsonify(
                {
                    "type": "file",
                    "encoding": "base64",
                    "size": len(data),
                    "name": path.rsplit("/", 1)[-1],
                    "path": path,
                    "content": base64.b64encode(data).decode(),
                    "sha": "0" * 40,
                    "url": url,
                }
            )

        @app.get("/repos/<owner>/<name>/branches/<branch>")
        def branch(owner: str, name: str, branch: str) -> Any:
            if not self._installation_token_ok():
                return denied()
            bare = self.repos / owner / f"{name}.git"
            sha = _git("rev-parse", f"refs/heads/{branch}", cwd=bare)
            url = f"{self.url}/repos/{owner}/{name}/commits/{sha}"
            return jsonify({"name": branch, "commit": {"sha": sha, "url": url}, "protected": False})

        @app.route("/git/<path:path>", methods=["GET", "POST"])
        def git_http(path: str) -> Response:
            auth = request.headers.get("Authorization", "")
            user_token = base64.b64decode(auth[6:]).decode() if auth.startswith("Basic ") else ""
            if not user_token.startswith("x-access-token:") or not self._token_ok(
                user_token.split(":", 1)[1]
            ):
                return Response("denied", 401, {"WWW-Authenticate": 'Basic realm="fake"'})
            return self._http_backend(path)

        return app

    def _http_backend(self, path: str) -> Response:
        env = {
            "GIT_PROJECT_ROOT": str(self.repos),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": "/" + path,
            "REQUEST_METHOD": request.method,
            "QUERY_STRING": request.query_string.decode(),
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "REMOTE_ADDR": "127.0.0.1",
            "PATH": "/usr/bin:/bin",
        }
        if request.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = request.headers["Git-Protocol"]
        body = request.get_data()
        if request.headers.get("Content-Encoding") == "gzip":
            import gzip

            body = gzip.decompress(body)
        env["CONTENT_LENGTH"] = str(len(body))
        done = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True)
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        if path.endswith("/git-upload-pack"):
            haves = len(re.findall(rb"[0-9a-f]{4}have [0-9a-f]{40}", body))
            objects = _pack_objects(payload)
            served = GitRequest(path, haves, objects, len(payload) if objects is not None else 0)
            with self._lock:
                self.git_requests.append(served)
        status = 200
        headers = {}
        for line in head.decode().split("\r\n"):
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.strip().split()[0])
            elif key:
                headers[key] = value.strip()
        return Response(payload, status, headers)
