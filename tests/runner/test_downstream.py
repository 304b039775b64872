"""runner/downstream.py: the `meta.downstream` URLs a pipeline may name, taken apart once."""

from __future__ import annotations

import pytest

from runner import pipeline
from runner.downstream import (
    MAX_URLS,
    Scheme,
    Target,
    UrlInvalid,
    count_problem,
    parse_target,
    url_problem,
)
from runner.errors import PipelineInvalid


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("https://ci.example.com/webhooks/x", ("https", "ci.example.com", 443, "/webhooks/x")),
        ("https://CI.Example.COM", ("https", "ci.example.com", 443, "/")),
        ("https://ci.example.com:8443/a?b=c&d", ("https", "ci.example.com", 8443, "/a?b=c&d")),
        ("HTTPS://1.2.3.4/x", ("https", "1.2.3.4", 443, "/x")),
        ("https://[2001:db8::1]:444/", ("https", "2001:db8::1", 444, "/")),
        ("http://127.0.0.1:8080/hook", ("http", "127.0.0.1", 8080, "/hook")),
        ("https://host_name.example./", ("https", "host_name.example.", 443, "/")),
    ],
)  # fmt: skip
def test_a_url_is_taken_apart_once(url: str, target: tuple[str, str, int, str]) -> None:
    found = parse_target(url)
    assert (found.scheme, found.host, found.port, found.path) == target
    assert parse_target(str(found)) == found  # what is sent is what was checked


def test_the_authority_brackets_ipv6_and_drops_default_ports() -> None:
    assert Target(Scheme.HTTPS, "2001:db8::1", 443, "/").authority == "[2001:db8::1]"
    assert Target(Scheme.HTTP, "h.example", 80, "/").authority == "h.example"
    assert Target(Scheme.HTTP, "h.example", 443, "/").authority == "h.example:443"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://ci.example.com/", "is not an absolute https:// URL"),
        ("file:///dev/zero", "is not an absolute https:// URL"),
        ("//ci.example.com/x", "is not an absolute https:// URL"),
        ("ci.example.com/x", "is not an absolute https:// URL"),
        ("https:/x", "is not an absolute https:// URL"),
        ("https://user:pw@ci.example.com/", "user name or password"),
        ("https://@ci.example.com/", "user name or password"),
        ("https://ci.example.com/#frag", "#fragment"),
        ("https://ci.example.com/ x", "spaces or unprintable"),
        ("https://ci.example.com/\nHost: evil", "spaces or unprintable"),
        ("https://ci.example.com\x00.evil/", "spaces or unprintable"),
        ("https://ci.example.com:99999/", "is not a URL"),
        ("https://ci.example.com:0/", "port 0"),
        ("https://[::1/", "is not a URL"),
        ("https://[fe80::1%25eth0]/", "no host name"),
        ("https://[1.2.3.4]/", "is not a URL"),
        ("https://2130706433/", "no host name"),
        ("https://0x7f.1/", "no host name"),
        ("https://127.1/", "no host name"),
        ("https://017.0.0.1/", "no host name"),
        ("https://bücher.example/", "no host name"),
        ("https://a..b/", "no host name"),
        ("https://-a.example/", "no host name"),
        ("https://" + "a" * 2100 + ".example/", "longer than 2048"),
    ],
)
def test_urls_that_could_be_read_two_ways_are_invalid(url: str, why: str) -> None:
    with pytest.raises(UrlInvalid, match=why):
        parse_target(url)
    problem = url_problem(url)
    assert problem is not None and why in problem


@pytest.mark.parametrize(
    "url",
    ["http://ci.example.com/hook", "http://10.0.0.1/", "http://[2001:db8::1]/"],
)
def test_plain_http_is_a_problem_unless_the_host_is_loopback(url: str) -> None:
    assert url_problem(url) == "is not https:// (http:// only for a loopback host, for tests)"


@pytest.mark.parametrize(
    "url",
    [
        "https://ci.example.com/webhooks/dockercise",
        "http://127.0.0.1:5000/hook",
        "http://127.9.9.9/",
        "http://[::1]:8080/",
        "http://localhost/",
    ],
)
def test_https_anywhere_and_http_to_loopback_are_fine(url: str) -> None:
    assert url_problem(url) is None


def test_at_most_ten_urls() -> None:
    urls = [f"https://h{i}.example/" for i in range(MAX_URLS + 1)]
    assert count_problem(urls[:MAX_URLS]) is None
    assert count_problem(urls) == "names 11 URLs; at most 10 are sent"


def test_the_loader_reports_each_bad_url_at_its_line_and_keeps_the_good_ones() -> None:
    text = (
        "meta:\n"
        "  downstream:\n"
        "    - https://ci.example.com/webhooks/dockercise\n"
        "    - http://ci.example.com/hook\n"
        "a: {img: x}\n"
    )
    with pytest.raises(PipelineInvalid) as caught:
        pipeline.load_texts({".dockercise.yml": text})
    assert [str(p) for p in caught.value.problems] == [
        ".dockercise.yml:2: 'meta.downstream' URL 'http://ci.example.com/hook' is not https://"
        " (http:// only for a loopback host, for tests)"
    ]
    fine = text.replace("http://ci.example.com/hook", "http://127.0.0.1:8080/hook")
    loaded = pipeline.load_texts({".dockercise.yml": fine})
    assert loaded is not None
    assert loaded.meta.downstream == (
        "https://ci.example.com/webhooks/dockercise",
        "http://127.0.0.1:8080/hook",
    )
