"""The fake GitHub's contract check refuses what GitHub's description refuses."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from tests.bot.fake_github import FakeGitHub
from tests.github_contract import check_request


def _request(method: str, path: str, body: object = None, **query: str) -> Request:
    data = None if body is None else json.dumps(body)
    builder = EnvironBuilder(
        method=method, path=path, query_string=query, data=data, content_type="application/json"
    )
    return Request(builder.get_environ())


def test_a_status_github_takes_passes() -> None:
    body = {"state": "success", "context": "dockercise", "description": "ok", "target_url": None}
    assert check_request(_request("POST", "/repos/o/r/statuses/abc123", body)) is None


@pytest.mark.parametrize(
    ("method", "path", "body", "found"),
    [
        ("POST", "/repos/o/r/statuses/abc", {"state": "passed"}, "passed"),
        ("POST", "/repos/o/r/statuses/abc", {"context": "x"}, "state"),
        ("POST", "/repos/o/r/statuses/abc", {"state": "success", "context": 7}, "7"),
        ("GET", "/repos/o/r/no-such-endpoint", None, "/repos/o/r/no-such-endpoint"),
        ("DELETE", "/repos/o/r/statuses/abc", None, "DELETE"),
    ],
)
def test_a_request_github_refuses_is_named(
    method: str, path: str, body: object, found: str
) -> None:
    violation = check_request(_request(method, path, body))
    assert violation is not None
    assert found in str(violation)
    assert "\n" not in str(violation)


def test_query_parameters_are_checked() -> None:
    assert check_request(_request("GET", "/repos/o/r/git/trees/abc", recursive="1")) is None
    refused = check_request(_request("GET", "/repos/o/r/commits/abc/check-runs", per_page="x"))
    assert refused is not None and "per_page" in str(refused)


def test_the_fake_answers_422_and_fails_the_test(tmp_path: Path) -> None:
    refusal = r"POST /repos/o/r/statuses/abc: .*'passed'"
    with pytest.raises(AssertionError, match=refusal), FakeGitHub(tmp_path) as fake:
        sent = urllib.request.Request(
            f"{fake.url}/repos/o/r/statuses/abc",
            data=json.dumps({"state": "passed"}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(sent, timeout=10)
        assert refused.value.code == 422
        refused.value.close()
