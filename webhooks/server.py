"""The production WSGI server `dockercise serve` and `serve-results` run their apps in (waitress).

Werkzeug's development server gives every connection a thread of its own,
so 300 idle connections hold 300 threads and a few slow clients stop it.
Waitress reads requests (headers and body) in one event loop and hands only
complete requests to a bounded pool of threads, so idle and slow clients
(slowloris: headers a byte at a time) cost a socket, never a thread; idle
ones are closed after `channel_timeout`; requests are bounded in size.  Its
own error answers (400, 413, 431...) carry the receiver's security headers
too, as every answer must (SPEC §10).
"""

from __future__ import annotations

import logging
import resource
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from waitress.channel import HTTPChannel
from waitress.server import create_server
from waitress.task import ErrorTask
from waitress.wasyncore import close_all

from webhooks.app import DEFAULT_MAX_BODY, SECURITY_HEADERS

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = ["Limits", "Server"]

log = logging.getLogger("dockercise.web")


@dataclass(frozen=True)
class Limits:
    """How much the server gives its clients: what a slow or hostile one can hold."""

    threads: int = 8
    """Requests handled at once (complete requests only: reading them takes no thread)."""
    connections: int = 1000
    """Open connections at once, at most the process's file limit less a reserve."""
    idle_timeout: int = 30
    """Seconds a connection may stay silent (no request in progress) before it is closed."""
    max_body: int = DEFAULT_MAX_BODY + 1
    """Bigger bodies get the server's own 413 at once; up to it (limit + 1) the app answers."""
    max_headers: int = 64 * 1024
    """Bytes of request line and headers; more is 431."""


class _ErrorTask(ErrorTask):
    """Waitress's own error answers, with the security headers every answer carries."""

    def execute(self) -> None:
        # Before execute() writes the answer, which sends the headers.
        self.response_headers = [*self.response_headers, *SECURITY_HEADERS.items()]
        super().execute()


class _Channel(HTTPChannel):
    error_task_class = _ErrorTask


def _connection_limit(wanted: int) -> int:
    """`wanted`, or fewer when the process may not open that many files (a reserve of 64)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(16, min(wanted, soft - 64))


class Server:
    """An app listening on host:port (port 0: a free one) until `close()`.

    `start()` serves from a thread of its own; `serve_forever()` in the
    calling one.
    """

    def __init__(
        self, app: WSGIApplication, host: str, port: int, limits: Limits | None = None
    ) -> None:
        limits = limits or Limits()
        # create_server makes one socket's BaseWSGIServer for one host and port.
        server: Any = create_server(
            app,
            host=host,
            port=port,
            threads=limits.threads,
            connection_limit=_connection_limit(limits.connections),
            channel_timeout=limits.idle_timeout,
            cleanup_interval=max(1, min(limits.idle_timeout, 10)),
            max_request_body_size=limits.max_body,
            max_request_header_size=limits.max_headers,
            asyncore_use_poll=True,  # select() cannot watch descriptors past 1023
            ident="dockercise",
            expose_tracebacks=False,
        )
        server.channel_class = _Channel
        self._server = server
        self.host = host
        self.port: int = int(self._server.effective_port)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def serve_forever(self) -> None:
        self._server.run()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="web", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop listening, drop every connection, let running requests end (for 2 s at most)."""
        server: Any = self._server
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=2)
        close_all(server._map)
        if self._thread is not None:
            self._thread.join(timeout=2)
