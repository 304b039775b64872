"""Where the bot may send a pipeline's downstream events: the operator's allowance (pure, SPEC §10).

A `meta.downstream` URL is written by whoever wrote the pipeline, so the bot
would otherwise POST, from inside the operator's network, wherever a pull
request asks: the cloud's metadata service, the Docker socket's TCP port,
a router's admin page.  Two decisions, both pure, made for every event:

- `target_refusal`: the URL itself.  `https://` always; `http://` only to
  what `DOCKERCISE_DOWNSTREAM_ALLOW` covers.
- `address_refusal`: each address the host resolves to.  Anything but a
  public unicast address (loopback, link-local, private, shared, multicast,
  reserved, unspecified, documentation, ...; an IPv6 address that embeds an
  IPv4 one, as IPv4-mapped, NAT64 and 6to4 addresses do, is judged by that
  one too) is refused unless the allowance covers the host or the address.

The sender (`bot.sending`) resolves once, asks `address_refusal` about every
address, and connects to those very addresses, so a DNS answer that changes
between the check and the connection changes nothing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from runner.downstream import Scheme, Target, UrlInvalid, parse_target
from runner.errors import DockerciseError

__all__ = [
    "ALLOW_VARIABLE",
    "Address",
    "Allowance",
    "AllowanceInvalid",
    "address_refusal",
    "parse_allowance",
    "special_kind",
    "target_refusal",
]

ALLOW_VARIABLE = "DOCKERCISE_DOWNSTREAM_ALLOW"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))

_SPECIAL: tuple[tuple[Network, str], ...] = tuple(
    (ipaddress.ip_network(network), kind)
    for network, kind in (
        # IANA's special-purpose registries, whole blocks: Python's `is_global` tables differ
        # from one release to the next, and a few of these blocks hold global exceptions
        # (192.0.0.9) that no downstream event needs.
        ("0.0.0.0/8", "unspecified"),
        ("100.64.0.0/10", "shared"),
        ("192.0.0.0/24", "reserved"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "reserved"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("240.0.0.0/4", "reserved"),
        ("::/8", "reserved"),
        ("100::/64", "discard"),
        ("2001::/23", "reserved"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("5f00::/16", "reserved"),
        ("fec0::/10", "site-local"),
    )
)


class AllowanceInvalid(DockerciseError):
    """An entry of DOCKERCISE_DOWNSTREAM_ALLOW is not a host, an address, a network or a URL."""


@dataclass(frozen=True)
class Allowance:
    """What the operator lets downstream events reach beyond public https:// hosts."""

    hosts: frozenset[str] = frozenset()
    """Host names (lower case): any address they resolve to, and http:// too."""
    networks: tuple[Network, ...] = ()
    """Addresses and networks (`10.1.2.3`, `10.0.0.0/8`, `::1`)."""
    urls: tuple[Target, ...] = field(default=())
    """`http(s)://host[:port]/path`: that scheme, host and port, paths under that path."""

    def covers(self, target: Target) -> bool:
        """Whether the operator listed this target's host (by name, address or URL)."""
        if target.host in self.hosts:
            return True
        literal = target.address
        if literal is not None and _within(literal, self.networks):
            return True
        return any(
            (entry.scheme, entry.host, entry.port) == (target.scheme, target.host, target.port)
            and _under(target.path, entry.path)
            for entry in self.urls
        )


def _under(path: str, top: str) -> bool:
    path = path.split("?", 1)[0]
    return top == "/" or path == top or path.startswith(top.rstrip("/") + "/")


def _within(address: Address, networks: tuple[Network, ...]) -> bool:
    candidates = [address, *_embedded(address)]
    return any(a in n for a in candidates for n in networks if a.version == n.version)


def parse_allowance(text: str) -> Allowance:
    """DOCKERCISE_DOWNSTREAM_ALLOW: comma-separated hosts, addresses, networks and URLs."""
    hosts: set[str] = set()
    networks: list[Network] = []
    urls: list[Target] = []
    bad: list[str] = []
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        if "://" in entry:
            try:
                urls.append(parse_target(entry))
            except UrlInvalid as e:
                bad.append(f"{entry!r} {e}")
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        try:  # a bare host name: the URL parser's rules for hosts
            target = parse_target(f"https://{entry}/")
        except UrlInvalid:
            target = None
        if target is None or target.host != entry.lower():  # no port, path or user
            bad.append(f"{entry!r} is not a host, an IP address, a network or a URL")
        else:
            hosts.add(target.host)
    if bad:
        raise AllowanceInvalid(f"{ALLOW_VARIABLE}: {'; '.join(bad)}")
    return Allowance(frozenset(hosts), tuple(networks), tuple(urls))


def target_refusal(target: Target, allowance: Allowance) -> str | None:
    """Why no event goes to this URL at all, or None."""
    if target.scheme is Scheme.HTTPS or allowance.covers(target):
        return None
    return f"{target} is not https:// (http:// only to hosts listed in {ALLOW_VARIABLE})"


def _embedded(address: Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address stands for (mapped, NAT64, 6to4)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found = [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
    if any(address in n for n in _NAT64):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def special_kind(address: Address) -> str | None:
    """What makes an address other than public unicast ("loopback", ...), or None.

    An IPv4-mapped address is the IPv4 address it maps, no more and no less.
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for each in [*_embedded(address), address]:
        for kind, flag in (
            ("unspecified", each.is_unspecified),
            ("loopback", each.is_loopback),
            ("link-local", each.is_link_local),
            ("multicast", each.is_multicast),
        ):
            if flag:
                return kind
        for network, name in _SPECIAL:
            if each.version == network.version and each in network:
                return name
        for kind, flag in (
            ("private", each.is_private),
            ("reserved", each.is_reserved),
            ("non-public", not each.is_global),
        ):
            if flag:
                return kind
    return None


def address_refusal(address: Address, target: Target, allowance: Allowance) -> str | None:
    """Why an event to `target` may not go to `address`, one of its host's addresses; or None."""
    if allowance.covers(target) or _within(address, allowance.networks):
        return None
    kind = special_kind(address)
    if kind is None:
        return None
    return (
        f"{target.host} resolves to {address}, a {kind} address"
        f" (the operator may list it in {ALLOW_VARIABLE})"
    )
