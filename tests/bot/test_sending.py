"""bot/sending.py: one event POSTed within SPEC §10's bounds, against servers on 127.0.0.1."""

from __future__ import annotations

import datetime
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bot.destinations import Address, Allowance, parse_allowance
from bot.sending import DeliveryFailed, DeliveryRefused, post, status_of
from runner.downstream import parse_target
from tests.bot.servers import Server

LOOPBACK = parse_allowance("127.0.0.1")
BODY = b'{"pipeline": "octo/lib"}'
HEADERS = {"X-Dockercise-Signature-256": "sha256=abc"}


def _reply(raw: bytes) -> Callable[[socket.socket], None]:
    return lambda connection: connection.sendall(raw)


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(answer: Callable[[socket.socket], None], tls: ssl.SSLContext | None = None) -> Server:
        servers.append(Server(answer, tls))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _to(address: str) -> Callable[[str, int], list[Address]]:
    return lambda host, port: [ipaddress.ip_address(address)]


def test_a_delivery_sends_one_request_and_returns_the_status(serve: Callable[..., Server]) -> None:
    server = serve(_reply(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"))
    url = f"http://127.0.0.1:{server.port}/webhooks/dockercise?x=1"
    assert post(parse_target(url), BODY, HEADERS, LOOPBACK) == 202
    (request,) = server.requests
    head, body = request.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /webhooks/dockercise?x=1 HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}" in lines
    assert "X-Dockercise-Signature-256: sha256=abc" in lines
    assert "Connection: close" in lines and f"Content-Length: {len(BODY)}" in lines
    assert body == BODY


def test_a_redirect_is_an_answer_never_followed(serve: Callable[..., Server]) -> None:
    target = serve(_reply(b"HTTP/1.1 200 OK\r\n\r\n"))
    redirect = (
        f"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{target.port}/\r\n\r\n"
    )
    server = serve(_reply(redirect.encode()))
    assert post(parse_target(f"http://127.0.0.1:{server.port}/"), BODY, HEADERS, LOOPBACK) == 307
    assert len(server.requests) == 1 and target.requests == []


@pytest.mark.parametrize(
    ("url", "resolved", "why"),
    [
        ("http://127.0.0.1:9/", "127.0.0.1", "is not https://"),
        ("http://events.example/", "8.8.8.8", "is not https://"),
        ("https://events.example/", "127.0.0.1", "resolves to 127.0.0.1, a loopback address"),
        ("https://events.example/", "169.254.169.254", "a link-local address"),
        ("https://events.example/", "10.0.0.7", "a private address"),
        ("https://events.example/", "::ffff:127.0.0.1", "a loopback address"),
        ("https://events.example/", "fd00::1", "a private address"),
    ],
)
def test_refused_targets_are_never_connected_to(url: str, resolved: str, why: str) -> None:
    server = Server(_reply(b"HTTP/1.1 200 OK\r\n\r\n"))
    try:
        with pytest.raises(DeliveryRefused, match=re.escape(why)):
            post(parse_target(url), BODY, HEADERS, Allowance(), resolver=_to(resolved))
    finally:
        server.close()
    assert server.requests == []


def test_one_refused_address_among_public_ones_refuses_the_host() -> None:
    def resolver(host: str, port: int) -> list[Address]:
        return [ipaddress.ip_address("8.8.8.8"), ipaddress.ip_address("127.0.0.1")]

    with pytest.raises(DeliveryRefused, match=re.escape("127.0.0.1, a loopback address")):
        post(parse_target("https://events.example/"), BODY, HEADERS, Allowance(), resolver=resolver)


def test_the_address_checked_is_the_address_connected_to(serve: Callable[..., Server]) -> None:
    """A second DNS answer (rebinding) is never asked for: one lookup, checked, connected to."""
    server = serve(_reply(b"HTTP/1.1 200 OK\r\n\r\n"))
    lookups: list[str] = []

    def resolver(host: str, port: int) -> list[Address]:
        lookups.append(host)
        return [ipaddress.ip_address("127.0.0.1" if len(lookups) == 1 else "10.9.9.9")]

    target = parse_target(f"http://events.internal:{server.port}/hook")
    allowance = parse_allowance("events.internal")
    assert post(target, BODY, HEADERS, allowance, resolver=resolver) == 200
    assert lookups == ["events.internal"]
    assert f"Host: events.internal:{server.port}".encode() in server.requests[0]


def test_the_bots_own_url_is_not_judged(serve: Callable[..., Server]) -> None:
    server = serve(_reply(b"HTTP/1.1 200 OK\r\n\r\n"))
    assert post(parse_target(f"http://127.0.0.1:{server.port}/"), BODY, HEADERS, None) == 200


def test_an_endless_answer_is_read_up_to_the_limit(serve: Callable[..., Server]) -> None:
    sent = [0]

    def flood(connection: socket.socket) -> None:
        chunk = b"x" * 65536
        while True:
            connection.sendall(chunk)
            sent[0] += len(chunk)

    server = serve(flood)
    url = parse_target(f"http://127.0.0.1:{server.port}/")
    with pytest.raises(DeliveryFailed, match="no status line in the first 1024 bytes"):
        post(url, BODY, HEADERS, LOOPBACK, limit=1024)


@pytest.mark.parametrize("style", ["silent", "drip"])
def test_a_slow_answer_ends_at_the_timeout(serve: Callable[..., Server], style: str) -> None:
    def slow(connection: socket.socket) -> None:
        for _ in range(100):
            time.sleep(0.1)
            if style == "drip":
                connection.sendall(b"H")

    server = serve(slow)
    started = time.monotonic()
    with pytest.raises(DeliveryFailed, match="timed out"):
        post(parse_target(f"http://127.0.0.1:{server.port}/"), BODY, HEADERS, LOOPBACK, timeout=0.6)
    assert time.monotonic() - started < 2


def test_a_resolver_that_hangs_ends_at_the_timeout() -> None:
    def hang(host: str, port: int) -> list[Address]:
        time.sleep(5)
        return []

    started = time.monotonic()
    target = parse_target("https://events.example/")
    with pytest.raises(DeliveryFailed, match=r"cannot resolve events\.example: timed out"):
        post(target, BODY, HEADERS, Allowance(), resolver=hang, timeout=0.3)
    assert time.monotonic() - started < 2


def test_nothing_listening_is_a_failure_worth_retrying() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DeliveryFailed, match=r"cannot connect to 127\.0\.0\.1"):
        post(parse_target(f"http://127.0.0.1:{port}/"), BODY, HEADERS, LOOPBACK)


def _certificate(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(the server's context, a client context that trusts only its self-signed certificate)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


def test_https_verifies_the_urls_host_on_the_checked_address(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    server_tls, client_tls = _certificate(tmp_path, "events.internal")
    server = serve(_reply(b"HTTP/1.1 200 OK\r\n\r\n"), server_tls)
    allowance = parse_allowance("127.0.0.1")
    good = parse_target(f"https://events.internal:{server.port}/hook")
    assert post(good, BODY, HEADERS, allowance, resolver=_to("127.0.0.1"), tls=client_tls) == 200
    assert server.names == ["events.internal"]
    other = parse_target(f"https://other.internal:{server.port}/hook")
    with pytest.raises(DeliveryFailed, match="certificate verify failed"):
        post(other, BODY, HEADERS, allowance, resolver=_to("127.0.0.1"), tls=client_tls)
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"", None),
        (b"HTTP/1.1 20", None),
        (b"HTTP/1.1 200 OK\r\n", 200),
        (b"HTTP/1.0 404\r\nX: y", 404),
        (b"HTTP/1.1 302 Found\n", 302),
    ],
)
def test_status_of(head: bytes, status: int | None) -> None:
    assert status_of(head) == status


@pytest.mark.parametrize("head", [b"SSH-2.0-OpenSSH\r\n", b"HTTP/2 200\r\n", b"HTTP/1.1 999 x\r\n"])
def test_status_of_something_else(head: bytes) -> None:
    with pytest.raises(DeliveryFailed, match=r"not HTTP/1\.x"):
        status_of(head)
