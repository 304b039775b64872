"""A raw TCP server on 127.0.0.1 for the sender's tests: answers as told, records requests."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Server"]


@dataclass
class Server:
    """A TCP server on 127.0.0.1 that answers every connection with `answer(connection)`."""

    answer: Callable[[socket.socket], None]
    tls: ssl.SSLContext | None = None
    requests: list[bytes] = field(default_factory=list)
    names: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.serving = threading.Thread(target=self._serve, daemon=True)
        self.serving.start()

    def _serve(self) -> None:
        while not self.stopping:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(connection,), daemon=True).start()

    def _one(self, connection: socket.socket) -> None:
        try:
            if self.tls is not None:
                self.tls.sni_callback = lambda s, name, c: self.names.append(name)
                connection = self.tls.wrap_socket(connection, server_side=True)
            connection.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = connection.recv(4096)
                if not chunk:
                    break
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            length = int(
                next(
                    (
                        line.split(b":", 1)[1]
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    b"0",
                )
            )
            while len(rest) < length:
                rest += connection.recv(4096)
            self.requests.append(head + b"\r\n\r\n" + rest)
            self.answer(connection)
        except (OSError, ssl.SSLError):
            pass
        finally:
            connection.close()

    def close(self) -> None:
        """Stop listening for real: a socket closed under a thread blocked in accept() would
        keep listening (Linux), and its port would answer whoever is given it next."""
        self.stopping = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() with an error
        self.sock.close()
        self.serving.join(5)
