"""A secret printed across the flush of a line too long to hold is masked in the stored log."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from runner.encryption import KEY_VARIABLE, encrypt, generate_key
from runner.masking import LONG_LINE
from tests.integration.conftest import IMAGE, Outcome

pytestmark = pytest.mark.docker

TOKEN = "tok-3f9a-SECRET-d81c"
HEAD, TAIL = TOKEN[:9], TOKEN[9:]


def test_a_secret_printed_across_the_long_line_flush_is_masked(
    project: Callable[..., Path],
    dockercise: Callable[..., Outcome],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each line: x * N, then half the secret, a pause (so the flush falls between), the rest.

    N puts the flush of the unfinished line before, inside and after the secret.
    """
    key = generate_key()
    monkeypatch.setenv(KEY_VARIABLE, key)
    offsets = [LONG_LINE - len(HEAD) + d for d in (-3, -1, 0, 1, 2, 5, 9, 12)]
    script = "\n".join(
        f"head -c {n} /dev/zero | tr '\\0' x; printf '{HEAD}'; sleep 0.1; printf '{TAIL}\\n'"
        for n in offsets
    )
    indented = "\n".join(f"            {line}" for line in script.splitlines())
    root = project(
        f"""
        meta:
          secrets:
            TOKEN: "secure:{encrypt(TOKEN, key)}"
        long:
          img: {IMAGE}
          env: [token]
          run: |
{indented}
        """
    )
    result = dockercise(root, "run", "-q")
    assert result.code == 0, result.err
    log = result.log("long")
    assert HEAD not in log and TAIL not in log, "a part of the secret was stored"
    lines = log.replace("\n", "")  # a piece let go of a long line ends with a newline
    assert lines == "".join("x" * n + "***" for n in offsets)
