"""Signed deliveries built from the real payloads, mutated at random: never a 500 (SPEC §10).

Each example takes one of GitHub's example payloads (or a `remote-build-complete`),
changes a few of its values (wrong types, huge or negative numbers, strings with
NUL, newlines or escapes, dates out of range, keys removed), signs the result
with the right secret and posts it.  The answer is 2xx, or 400 with a one-line
reason naming the field at fault; never a 500.  The receiver is tried alone
(the recording callbacks) and inside the bot's app, whose callbacks record the
builds in its real SQLite state.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.webhooks.conftest import EVENTS_SECRET, GITHUB_SECRET, PAYLOAD_FILES, Hooks, event_name
from tests.webhooks.test_events import REMOTE
from webhooks.verify import sign

REMOTE_EVENT = "remote-build-complete"
SAMPLES: list[tuple[str, Any]] = [
    (event_name(p), json.loads(p.read_bytes())) for p in PAYLOAD_FILES
] + [(REMOTE_EVENT, REMOTE)]
GITHUB_EVENTS = sorted({name for name, _ in SAMPLES if name != REMOTE_EVENT})

Path_ = tuple[str | int, ...]


def _paths(value: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every place in a JSON value, the value itself first."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _paths(item, (*prefix, i))
    return found


READ = frozenset(
    " ".join(
        [
            "ref before after deleted forced commits added modified removed head_commit message",
            "repository full_name clone_url default_branch pusher name sender login installation",
            "id action number pull_request head base sha repo account repositories zen hook_id",
            "pipeline status run_id url finished",
        ]
    ).split(" ")
)
"""Keys the parsers read: most mutations go there, the rest anywhere."""
PATHS = [_paths(payload) for _, payload in SAMPLES]
READ_PATHS = [[p for p in paths if p and p[-1] in READ] for paths in PATHS]

ODD_STRINGS = [
    "",
    "\0",
    "a\0b",
    "line\nbreak",
    "\r\n",
    "\x1b[31mred\x1b]0;title\x07",
    "refs/heads/\0x",
    "refs/heads/a..b",
    "--upload-pack=touch /tmp/x",
    "../../etc/passwd",
    "x" * 5000,
    "☃" * 300,
    "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:59:59-05:00",
    "2024-13-45T99:99:99Z",
    "2024-05-01T12:03:04",
    "1969-12-31T23:59:59Z",
    "not a date",
    "0" * 40,
    "https://\0evil",
]
ODD_NUMBERS = [0, -1, -(2**63), 2**31, 2**53, 2**63, 2**64, 10**30, 10**4000]

offsets = st.sampled_from(["Z", "+00:00", "+05:00", "-05:00", "+23:59", "-23:59", ""])
edges = st.sampled_from(["0001-01-01T00:00:00", "9999-12-31T23:59:59", "1969-12-31T23:00:00"])
dates = st.one_of(  # near the ends of datetime's range, some pushed out of it by their offset
    st.sampled_from(["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"]),
    st.builds(
        lambda moment, offset: moment + offset,
        st.one_of(edges, st.datetimes().map(lambda d: d.isoformat())),
        offsets,
    ),
)
odd_values = st.one_of(
    st.sampled_from(ODD_STRINGS),
    dates,
    st.sampled_from(ODD_NUMBERS),
    st.integers(),
    st.floats(),
    st.text(max_size=40),
    st.booleans(),
    st.none(),
    st.lists(st.one_of(st.integers(), st.text(max_size=5), st.none()), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _parent(root: Any, path: Path_) -> Any:
    """The container holding `path`, or None when earlier mutations removed the way there."""
    node = root
    for step in path[:-1]:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _is_date(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


@st.composite
def _changed(draw: st.DrawFn, original: Any) -> Any:
    """A new value for `original`: mostly one of its own type gone wrong, else anything."""
    if draw(st.integers(min_value=0, max_value=3)) == 0:
        return draw(odd_values)
    if isinstance(original, str) and _is_date(original) and draw(st.booleans()):
        return draw(dates)
    if isinstance(original, str):
        at = draw(st.integers(min_value=0, max_value=len(original)))
        odd = draw(st.sampled_from(["\0", "\n", "\x1b[2J", "..", " ", "\x7f"]))
        return draw(
            st.one_of(
                st.just(original[:at] + odd + original[at:]),
                st.sampled_from(ODD_STRINGS),
                dates,
                st.text(max_size=40),
            )
        )
    if isinstance(original, int) and not isinstance(original, bool):
        return draw(st.one_of(st.sampled_from(ODD_NUMBERS), st.integers(), st.floats()))
    return draw(odd_values)


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[str, Any]:
    """(event name, payload): a real payload with a few values changed (often just one)."""
    last = len(SAMPLES) - 1  # the remote-build-complete: about one example in four
    index = draw(st.integers(min_value=0, max_value=last + last // 3))
    index = min(index, last)
    name, payload = SAMPLES[index]
    payload = copy.deepcopy(payload)
    changes = draw(st.sampled_from([1, 1, 1, 2, 3, 6]))
    for _ in range(changes):
        anywhere = draw(st.integers(min_value=0, max_value=4)) == 0
        path = draw(st.sampled_from(PATHS[index] if anywhere else READ_PATHS[index]))
        if not path:
            payload = draw(odd_values)
            break
        parent = _parent(payload, path)
        key = path[-1]
        if isinstance(parent, dict):
            if key not in parent:
                continue
        elif not isinstance(parent, list) or not isinstance(key, int) or key >= len(parent):
            continue
        if draw(st.integers(min_value=0, max_value=4)) == 0:
            del parent[key]
        else:
            parent[key] = draw(_changed(parent[key]))
    if name != REMOTE_EVENT and draw(st.integers(min_value=0, max_value=5)) == 0:
        name = draw(st.sampled_from(GITHUB_EVENTS))  # a payload under another event's name
    return name, payload


_ids = itertools.count()


def _post(client: FlaskClient, name: str, payload: Any) -> None:
    body = json.dumps(payload).encode()
    if name == REMOTE_EVENT:
        path, headers = (
            "/webhooks/dockercise",
            {"X-Dockercise-Signature-256": sign(body, EVENTS_SECRET)},
        )
    else:
        path = "/webhooks/github"
        headers = {
            "X-Hub-Signature-256": sign(body, GITHUB_SECRET),
            "X-GitHub-Event": name,
            "X-GitHub-Delivery": f"fuzz-{next(_ids)}",
        }
    with client.post(path, data=body, headers={**headers, "Content-Type": "application/json"}) as r:
        assert r.status_code in (200, 202, 400), (r.status_code, r.get_data(as_text=True))
        answer = r.get_json()
        if r.status_code == 400:
            assert "\n" not in answer["error"], answer
            if answer["error"].startswith("payload invalid"):
                assert answer["field"] and answer["error"].startswith(
                    f"payload invalid: {answer['field']}: "
                )


FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(delivery=deliveries())
def test_the_receiver_never_answers_500(hooks: Hooks, delivery: tuple[str, Any]) -> None:
    _post(hooks.client, *delivery)


@pytest.fixture(scope="module")
def bot_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlaskClient]:
    from bot.web import create_bot_app

    root = tmp_path_factory.mktemp("bot")
    env = {
        "GITHUB_APP_ID": "1",
        "GITHUB_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----\nnot used\n-----END PRIVATE KEY-----",
        "GITHUB_WEBHOOK_SECRET": GITHUB_SECRET,
        "DOCKERCISE_EVENTS_SECRET": EVENTS_SECRET,
        "GITHUB_API_URL": "http://127.0.0.1:9",
        "DOCKERCISE_PUBLIC_URL": "http://127.0.0.1:8080",
        "DOCKERCISE_DATA_DIR": str(root / "data"),
        "DOCKERCISE_RESULTS": str(root / "results"),
    }
    with create_bot_app(env).test_client() as client:
        yield client


@settings(FUZZ, max_examples=150)
@given(delivery=deliveries())
def test_the_bot_never_answers_500(bot_client: FlaskClient, delivery: tuple[str, Any]) -> None:
    _post(bot_client, *delivery)


def test_paths_reach_every_value() -> None:
    assert all(len(paths) > 3 for paths in PATHS)
    assert Path(PAYLOAD_FILES[0]).exists()
