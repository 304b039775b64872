"""POST one signed event to one URL, within bounds (the I/O half of SPEC §10's downstream rules).

No HTTP library: their redirects, proxies from the environment, unbounded
header reads and their own DNS lookups are what SPEC §10 rules out.  This
resolves the host once, has `bot.destinations` judge every address, connects
to one of those very addresses (TLS verified against the URL's host name),
writes one `Connection: close` request, and reads the answer's head only:
at most `LIMIT` bytes, all within `TIMEOUT` seconds from the start, after
which the status code is all it wants.  A redirect is an answer like any
other: nothing follows it.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from bot.destinations import Address, Allowance, address_refusal, target_refusal
from runner.downstream import Scheme, Target
from runner.errors import DockerciseError

__all__ = [
    "LIMIT",
    "TIMEOUT",
    "DeliveryFailed",
    "DeliveryRefused",
    "post",
    "status_of",
]

LIMIT = 64 * 1024
"""Bytes of an answer read at most (SPEC §10)."""
TIMEOUT = 10.0
"""Seconds one delivery may take, from resolving to the answer's status (SPEC §10)."""

_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-5][0-9][0-9])(?: [^\r\n]*)?\r?\n")

Resolve = Callable[[str, int], Sequence[Address]]


class DeliveryRefused(DockerciseError):
    """The event may not go there at all (SPEC §10); sending again would not change that."""


class DeliveryFailed(DockerciseError):
    """The event did not arrive (network, timeout, a bad answer); worth trying again."""


def resolve(host: str, port: int) -> list[Address]:
    """Every address `host` resolves to (once: these are checked and connected to)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as e:
        raise DeliveryFailed(f"cannot resolve {host}: {e}") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in found))
    if not addresses:
        raise DeliveryFailed(f"{host} resolves to no address")
    return addresses


def status_of(head: bytes) -> int | None:
    """The status code of an answer that starts with `head`; None until its first line is in."""
    if b"\n" not in head:
        return None
    match = _STATUS_LINE.match(head)
    if match is None:
        raise DeliveryFailed("the answer is not HTTP/1.x")
    return int(match.group(1))


def _request(target: Target, body: bytes, headers: Mapping[str, str]) -> bytes:
    lines = [
        f"POST {target.path} HTTP/1.1",
        f"Host: {target.authority}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "User-Agent: dockercise",
        "Connection: close",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    if any("\r" in line or "\n" in line for line in lines):
        raise DeliveryRefused("a header holds a line break")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Clock:
    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        return left


def _in_time(resolver: Resolve, target: Target, clock: _Clock) -> Sequence[Address]:
    """The resolver's answer, or DeliveryFailed once the clock runs out (a resolver cannot be
    interrupted: its thread is left to finish on its own)."""
    found: list[Sequence[Address] | BaseException] = []

    def run() -> None:
        try:
            found.append(resolver(target.host, target.port))
        except BaseException as e:  # handed to the caller
            found.append(e)

    thread = threading.Thread(target=run, name=f"resolve-{target.host}", daemon=True)
    thread.start()
    thread.join(max(0.0, clock.deadline - time.monotonic()))
    if not found:
        raise DeliveryFailed(f"cannot resolve {target.host}: timed out")
    if isinstance(found[0], BaseException):
        raise found[0]
    return found[0]


def _connect(
    target: Target, addresses: Sequence[Address], clock: _Clock, tls: ssl.SSLContext | None
) -> socket.socket:
    errors = []
    for address in addresses:
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(clock.left())
            sock.connect((str(address), target.port))
            if target.scheme is Scheme.HTTPS:
                context = tls or ssl.create_default_context()
                sock = context.wrap_socket(sock, server_hostname=target.host)
            return sock
        except (OSError, ssl.SSLError) as e:
            sock.close()
            errors.append(f"{address}: {e}")
    raise DeliveryFailed(f"cannot connect to {target.authority} ({'; '.join(errors)})")


def _exchange(sock: socket.socket, request: bytes, clock: _Clock, limit: int) -> int:
    sock.settimeout(clock.left())
    sock.sendall(request)  # an event is a few hundred bytes: one send, bounded by the timeout
    head = b""
    while True:
        sock.settimeout(clock.left())
        chunk = sock.recv(min(4096, limit - len(head)))
        if not chunk:
            raise DeliveryFailed("the connection closed before an answer")
        head += chunk
        status = status_of(head)
        if status is not None:
            return status
        if len(head) >= limit:
            raise DeliveryFailed(f"no status line in the first {limit} bytes of the answer")


def post(
    target: Target,
    body: bytes,
    headers: Mapping[str, str],
    allowance: Allowance | None,
    *,
    timeout: float = TIMEOUT,
    limit: int = LIMIT,
    resolver: Resolve = resolve,
    tls: ssl.SSLContext | None = None,
) -> int:
    """POST `body` to `target`; the answer's status code (a 3xx is returned, not followed).

    `allowance` None is for the bot's own URL, which its operator wrote: no
    address is refused.  DeliveryRefused when SPEC §10 forbids the target or
    one of its addresses, DeliveryFailed when it did not arrive.
    """
    if allowance is not None:
        why = target_refusal(target, allowance)
        if why is not None:
            raise DeliveryRefused(why)
    request = _request(target, body, headers)
    clock = _Clock(timeout)
    addresses = _in_time(resolver, target, clock)
    if allowance is not None:
        for address in addresses:
            why = address_refusal(address, target, allowance)
            if why is not None:
                raise DeliveryRefused(why)
    try:
        sock = _connect(target, addresses, clock, tls)
        try:
            return _exchange(sock, request, clock, limit)
        finally:
            sock.close()
    except DeliveryFailed:
        raise
    except (OSError, ssl.SSLError) as e:  # timeouts included
        raise DeliveryFailed(f"{target.authority}: {e or type(e).__name__}") from None
