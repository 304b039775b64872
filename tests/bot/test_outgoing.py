"""bot/outgoing.py: which answers are retried, and where events go (SPEC §8, §10)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator

import pytest

from bot.destinations import parse_allowance
from bot.outgoing import downstream_targets, send_event
from bot.sending import DeliveryFailed, DeliveryRefused
from tests.bot.servers import Server
from webhooks.verify import sign

EVENT = {"pipeline": "octo/lib", "run_id": "r1"}
OWN = "https://ci.example.com/webhooks/dockercise"


@pytest.fixture
def answering() -> Iterator[Callable[[bytes], Server]]:
    servers: list[Server] = []

    def start(answer: bytes) -> Server:
        servers.append(Server(lambda c: c.sendall(answer)))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, None),
        (204, None),
        (500, DeliveryFailed),
        (503, DeliveryFailed),
        (429, DeliveryFailed),
        (408, DeliveryFailed),
        (301, DeliveryRefused),
        (307, DeliveryRefused),
        (401, DeliveryRefused),
        (404, DeliveryRefused),
    ],
)
def test_only_answers_that_may_change_are_retried(
    answering: Callable[[bytes], Server], status: int, outcome: type[Exception] | None
) -> None:
    server = answering(f"HTTP/1.1 {status} X\r\nLocation: http://127.0.0.1:9/\r\n\r\n".encode())
    url = f"http://127.0.0.1:{server.port}/hook"
    if outcome is None:
        send_event(url, EVENT, "s3cret", parse_allowance("127.0.0.1"))
    else:
        with pytest.raises(outcome, match=str(status)):
            send_event(url, EVENT, "s3cret", parse_allowance("127.0.0.1"))
    (request,) = server.requests
    head, body = request.split(b"\r\n\r\n", 1)
    assert json.loads(body) == EVENT
    assert f"X-Dockercise-Signature-256: {sign(body, 's3cret')}".encode() in head


def test_an_unparsable_or_refused_url_is_never_tried() -> None:
    with pytest.raises(DeliveryRefused, match="is not an absolute https:// URL"):
        send_event("file:///dev/zero", EVENT, "s", parse_allowance(""))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DeliveryRefused, match="is not https://"):
        send_event(f"http://127.0.0.1:{port}/", EVENT, "s", parse_allowance(""))


def test_downstream_targets_are_each_sent_once_never_the_bot_again_and_at_most_ten() -> None:
    urls = tuple(f"https://h{i % 12}.example/" for i in range(30))
    found = downstream_targets(OWN, (OWN, *urls), signed=True)
    assert found == [f"https://h{i}.example/" for i in range(10)]
    assert downstream_targets(OWN, urls, signed=False) == []
    assert downstream_targets(OWN, (), signed=False) == []
