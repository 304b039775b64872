"""Flask sessions kept in the bot's state: the cookie holds a random id and nothing else.

Flask's own sessions keep their data in the (signed) cookie; here the data
(the user, their GitHub token, the sign-in's `state`, the CSRF token) stays
on the server (`StateStore.put_session`, SQLite or Redis), under a SHA-256
digest of the id, so that neither the cookie nor a copy of the state is
enough to read or forge one. `renew()` gives the session a new id at the
next save and drops the old one (sign-in: no session fixation); clearing a
session drops it on the server (sign-out). A session that was never
written (an anonymous visitor) costs no write and sets no cookie.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from bot.state.base import StateStore

__all__ = ["COOKIE", "SIGNED_IN_TTL", "SIGNING_IN_TTL", "ServerSession", "StateSessions"]

COOKIE = "dockercise_session"
SIGNED_IN_TTL = 7 * 86400.0
"""Seconds a sign-in lasts (from signing in, not renewed by use)."""
SIGNING_IN_TTL = 600.0
"""Seconds a session lives before anyone signs in with it (a visit to /login, a form's token)."""
_ID = re.compile(r"[A-Za-z0-9_-]{43}")
_EXPIRES = "_expires"


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


class ServerSession(CallbackDict[str, Any], SessionMixin):
    """A session whose data lives in the state; `sid` None until it is first saved."""

    def __init__(self, data: dict[str, Any] | None = None, sid: str | None = None) -> None:
        def changed(_: CallbackDict[str, Any]) -> None:
            self.modified = True

        super().__init__(data or {}, changed)
        self.sid = sid
        self.modified = False
        self.renewing = False

    def renew(self) -> None:
        """A new id at the end of this request; the old one stops naming anything."""
        self.renewing = True
        self.modified = True


class StateSessions(SessionInterface):
    def __init__(self, state: StateStore, secure: bool) -> None:
        self.state = state
        self.secure = secure

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        sid = request.cookies.get(COOKIE, "")
        if not _ID.fullmatch(sid):
            return ServerSession()
        text = self.state.get_session(_digest(sid))
        if text is None:
            return ServerSession()
        try:
            data = json.loads(text)
        except ValueError:
            return ServerSession()
        if not isinstance(data, dict):
            return ServerSession()
        return ServerSession(data, sid)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        assert isinstance(session, ServerSession)
        if not session.modified:
            return
        if session.sid is not None and (session.renewing or not session):
            self.state.drop_session(_digest(session.sid))
            session.sid = None if not session else session.sid
        if not session:
            response.delete_cookie(COOKIE, path="/", secure=self.secure, samesite="Lax")
            return
        if session.sid is None or session.renewing:
            session.sid = secrets.token_urlsafe(32)
            session.renewing = False
        now = time.time()
        expires = session.get(_EXPIRES)
        if not isinstance(expires, int | float):
            expires = now + (SIGNED_IN_TTL if "user" in session else SIGNING_IN_TTL)
            session[_EXPIRES] = expires
        ttl = max(1.0, float(expires) - now)
        self.state.put_session(_digest(session.sid), json.dumps(dict(session)), ttl)
        response.set_cookie(
            COOKIE,
            session.sid,
            max_age=int(ttl),
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="Lax",
        )
        response.vary.add("Cookie")
