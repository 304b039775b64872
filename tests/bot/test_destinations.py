"""bot/destinations.py: which URLs and addresses a downstream event may go to (SPEC §10)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.destinations import (
    Address,
    Allowance,
    AllowanceInvalid,
    address_refusal,
    parse_allowance,
    special_kind,
    target_refusal,
)
from runner.downstream import parse_target

NOTHING = Allowance()

ipv4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
ipv6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)

# Ranges no downstream event may reach unless the operator allows them.
SPECIAL_NETWORKS = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.88.99.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "255.255.255.255/32",
    "::/8",
    "100::/64",
    "2001::/23",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
    "2001:db8::/32",
    "64:ff9b::a00:0/104",
    "2002:c0a8::/32",
]


def _special_network_address(data: st.DataObject) -> Address:
    network = ipaddress.ip_network(data.draw(st.sampled_from(SPECIAL_NETWORKS)))
    offset = data.draw(st.integers(0, network.num_addresses - 1))
    return network[offset]


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.1.2.3", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.0.8", "reserved"),
        ("100.64.0.1", "shared"),
        ("198.18.0.1", "benchmarking"),
        ("192.0.2.1", "documentation"),
        ("2001:db8::1", "documentation"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("::", "unspecified"),
        ("::7f00:1", "reserved"),
        ("64:ff9b::7f00:1", "loopback"),
        ("64:ff9b::a9fe:a9fe", "link-local"),
        ("2002:7f00:1::", "loopback"),
        ("2002:c0a8:101::1", "private"),
        ("fec0::1", "site-local"),
        ("8.8.8.8", None),
        ("::ffff:8.8.8.8", None),
        ("2606:4700::1111", None),
        ("140.82.112.3", None),
    ],
)
def test_the_kind_of_an_address(address: str, kind: str | None) -> None:
    assert special_kind(ipaddress.ip_address(address)) == kind


@given(ipv4)
def test_an_ipv4_mapped_address_is_judged_as_the_address_it_maps(
    address: ipaddress.IPv4Address,
) -> None:
    mapped = ipaddress.IPv6Address(f"::ffff:{address}")
    assert special_kind(mapped) == special_kind(address)


@given(st.data())
def test_every_address_of_a_special_range_is_refused(data: st.DataObject) -> None:
    address = _special_network_address(data)
    target = parse_target("https://events.example/hook")
    why = address_refusal(address, target, NOTHING)
    assert why is not None and why.startswith(f"events.example resolves to {address}, a ")
    assert "DOCKERCISE_DOWNSTREAM_ALLOW" in why


@given(st.one_of(ipv4, ipv6))
def test_what_python_calls_not_global_is_refused(address: Address) -> None:
    """Python's tables are a floor: dockercise refuses at least what they call special."""
    target = parse_target("https://events.example/")
    refused = address_refusal(address, target, NOTHING) is not None
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    judged = mapped or address
    if not judged.is_global or judged.is_multicast or judged.is_reserved:
        assert refused


@given(st.one_of(ipv4, ipv6))
def test_the_operator_may_allow_any_address_by_network(address: Address) -> None:
    allowance = parse_allowance("0.0.0.0/0, ::/0")
    assert address_refusal(address, parse_target("https://events.example/"), allowance) is None


@given(st.one_of(ipv4, ipv6))
def test_a_listed_host_may_resolve_to_any_address(address: Address) -> None:
    allowance = parse_allowance("events.internal")
    target = parse_target("https://events.internal/x")
    assert address_refusal(address, target, allowance) is None
    other = parse_target("https://other.internal/x")
    assert (address_refusal(address, other, allowance) is None) == (special_kind(address) is None)


def test_an_allowed_address_does_not_allow_its_neighbours() -> None:
    allowance = parse_allowance("127.0.0.1")
    target = parse_target("https://events.example/")
    assert address_refusal(ipaddress.ip_address("127.0.0.1"), target, allowance) is None
    assert address_refusal(ipaddress.ip_address("::ffff:127.0.0.1"), target, allowance) is None
    assert address_refusal(ipaddress.ip_address("127.0.0.2"), target, allowance) is not None
    assert address_refusal(ipaddress.ip_address("::1"), target, allowance) is not None


def test_parse_allowance_reads_hosts_addresses_networks_and_urls() -> None:
    allowance = parse_allowance(
        " events.internal , 127.0.0.1,10.0.0.0/8,[::1], http://hooks.lan:8080/in ,,"
    )
    assert allowance.hosts == {"events.internal"}
    assert [str(n) for n in allowance.networks] == ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]
    assert [str(u) for u in allowance.urls] == ["http://hooks.lan:8080/in"]
    assert parse_allowance("") == Allowance()


@pytest.mark.parametrize("entry", ["ftp://x.example/", "a b", "user@host", "host:80", "/path", "*"])
def test_parse_allowance_names_what_it_cannot_read(entry: str) -> None:
    with pytest.raises(AllowanceInvalid) as caught:
        parse_allowance(f"ok.example,{entry}")
    assert str(caught.value).startswith("DOCKERCISE_DOWNSTREAM_ALLOW: ")
    assert repr(entry) in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("allow", "url", "refused"),
    [
        ("", "https://events.example/", False),
        ("", "http://events.example/", True),
        ("", "http://127.0.0.1:8080/", True),
        ("127.0.0.1", "http://127.0.0.1:8080/hook", False),
        ("127.0.0.0/8", "http://127.0.0.5/hook", False),
        ("127.0.0.1", "http://localhost/hook", True),
        ("localhost", "http://localhost:5000/", False),
        ("http://hooks.lan:8080/in", "http://hooks.lan:8080/in/x?y", False),
        ("http://hooks.lan:8080/in", "http://hooks.lan:8080/inside", True),
        ("http://hooks.lan:8080/in", "http://hooks.lan:8081/in", True),
        ("https://hooks.lan/in", "http://hooks.lan/in", True),
    ],
)
def test_http_goes_only_where_the_operator_allows(allow: str, url: str, refused: bool) -> None:
    why = target_refusal(parse_target(url), parse_allowance(allow))
    assert (why is not None) == refused
    if refused:
        assert why is not None and "DOCKERCISE_DOWNSTREAM_ALLOW" in why


def test_a_listed_url_allows_private_addresses_under_its_path_only() -> None:
    allowance = parse_allowance("https://hooks.lan/in")
    private = ipaddress.ip_address("10.1.1.1")
    assert address_refusal(private, parse_target("https://hooks.lan/in/a"), allowance) is None
    assert address_refusal(private, parse_target("https://hooks.lan/out"), allowance) is not None
