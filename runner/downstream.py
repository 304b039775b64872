"""`meta.downstream` URLs: their shape, checked by the loader and again by the sender (pure).

A pipeline comes from anyone who can open a pull request, and a bot build
sends its `remote-build-complete` event to every URL the pipeline names
(SPEC §8, §10).  So a URL is taken apart once, here, into a `Target` that
the sender connects to as it is, never re-parsed: scheme, a host that is a
DNS name or an IP literal (nothing a resolver would read differently), a
port, and the path.  No user name or password (the sender sends none, and
a credential written in a pipeline is a leaked one), no fragment, nothing
unprintable.

`https://` is the rule.  `http://` passes the loader only for a loopback
host (`localhost`, `127.0.0.0/8`, `[::1]`): tests and local development
(SPEC §10's "e.g. tests on 127.0.0.1"), and still needs the operator's
`DOCKERCISE_DOWNSTREAM_ALLOW` before anything is sent there.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from runner.errors import DockerciseError

__all__ = [
    "MAX_URLS",
    "Scheme",
    "Target",
    "UrlInvalid",
    "count_problem",
    "is_loopback_host",
    "parse_target",
    "url_problem",
]

MAX_URLS = 10
"""`meta.downstream` URLs a pipeline may name (SPEC §10)."""

_MAX_LENGTH = 2048
_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_DNS_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*\.?")
_LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


class UrlInvalid(DockerciseError):
    """A downstream URL that is not one dockercise sends to; the message says why."""


class Scheme(StrEnum):
    HTTP = "http"
    HTTPS = "https"


@dataclass(frozen=True)
class Target:
    """Where a URL points: what the sender resolves, checks and connects to."""

    scheme: Scheme
    host: str
    """Lower case; an IPv6 literal without its brackets."""
    port: int
    path: str
    """The path and query, at least `/`: what the request line asks for."""

    @property
    def address(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The host when it is an IP literal (no resolver involved), else None."""
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None

    @property
    def authority(self) -> str:
        """`host[:port]` as the Host header and a URL write it (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme is Scheme.HTTPS else 80
        return host if self.port == default else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.authority}{self.path}"


def parse_target(url: str) -> Target:
    """The target of an absolute `http(s)://` URL; UrlInvalid says what is wrong with it."""
    if len(url) > _MAX_LENGTH:
        raise UrlInvalid(f"is longer than {_MAX_LENGTH} characters")
    if not url.isprintable() or any(c.isspace() for c in url):
        raise UrlInvalid("has spaces or unprintable characters (percent-encode them)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:  # a bad port or IPv6 literal
        raise UrlInvalid(f"is not a URL ({e})") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise UrlInvalid("is not an absolute https:// URL")
    scheme = Scheme(parts.scheme.lower())
    if "@" in parts.netloc:
        raise UrlInvalid("holds a user name or password (events are signed instead)")
    if parts.fragment or url.endswith("#"):
        raise UrlInvalid("has a #fragment")
    host = (parts.hostname or "").lower()
    if not _is_host(host, bracketed=parts.netloc.startswith("[")):
        raise UrlInvalid("has no host name or IP address that dockercise can read one way only")
    if port == 0:
        raise UrlInvalid("has port 0")
    path = parts.path or "/"
    if not path.startswith("/"):
        raise UrlInvalid("is not an absolute https:// URL")
    query = f"?{parts.query}" if parts.query or url.endswith("?") else ""
    default = 443 if scheme is Scheme.HTTPS else 80
    return Target(scheme, host, port or default, path + query)


def _is_host(host: str, bracketed: bool) -> bool:
    if bracketed:  # only an IPv6 literal, without a zone (`%eth0` names a local interface)
        if "%" in host:
            return False
        try:
            return isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
        except ValueError:
            return False
    if not host.isascii() or not _DNS_NAME.fullmatch(host) or len(host) > 253:
        return False  # IDNs are written in punycode (xn--...)
    if host.rstrip(".").replace(".", "").isdigit() or host.startswith("0x"):
        # digits and dots: a dotted quad, or a form resolvers read as one (`2130706433`)
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
    return True


def is_loopback_host(target: Target) -> bool:
    """`localhost` or a loopback IP literal: where `http://` passes the loader."""
    address = target.address
    return target.host in _LOOPBACK_NAMES or (address is not None and address.is_loopback)


def url_problem(url: str) -> str | None:
    """What is wrong with `url` as a `meta.downstream` URL, or None (SPEC §10)."""
    try:
        target = parse_target(url)
    except UrlInvalid as e:
        return str(e)
    if target.scheme is Scheme.HTTP and not is_loopback_host(target):
        return "is not https:// (http:// only for a loopback host, for tests)"
    return None


def count_problem(urls: Sequence[str]) -> str | None:
    """Too many URLs for one pipeline, or None."""
    if len(urls) > MAX_URLS:
        return f"names {len(urls)} URLs; at most {MAX_URLS} are sent"
    return None
