"""A build's reason on its commit: one line, masked, the worker's places replaced (pure)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from bot.reasons import PlaceMasker, Redactor, Step, crashed
from runner.masking import Masker
from tests.bot.fake_github import make_private_key


def _redactor(tmp_path: Path, *secrets: str) -> Redactor:
    data = tmp_path / "bot-data"
    places = [(str(data / "checkouts" / "b1"), "<checkout>"), (str(data), "<data>")]
    return Redactor.of(Masker(secrets), places, tempfile.gettempdir())


def test_the_worker_s_places_become_words_and_only_whole_components_match(tmp_path: Path) -> None:
    redact = _redactor(tmp_path)
    data = tmp_path / "bot-data"
    text = (
        f"cannot read {data}/checkouts/b1/ci/.dockercise.yml in {data}/state.db"
        f" nor {data}-other/x nor {tempfile.gettempdir()}/dockercise-1234-abcd/vol/a"
    )
    assert redact(text) == (
        "cannot read <checkout>/ci/.dockercise.yml in <data>/state.db"
        f" nor {data}-other/x nor <temp>/vol/a"
    )


def test_a_place_reached_through_a_link_is_replaced_both_ways(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    redact = Redactor.of(Masker(), [(str(tmp_path / "link"), "<data>")])
    assert redact(f"{real}/a and {tmp_path}/link/b") == "<data>/a and <data>/b"


def test_one_line_masked_without_controls(tmp_path: Path) -> None:
    key = make_private_key()
    line = key.splitlines()[3]
    redact = _redactor(tmp_path, "hunter2-secret", *key.splitlines()[1:-1])
    text = f"\n  first \x1b[31mhunter2-secret\x07 {line}\r\nsecond line\n"
    assert redact(text) == "first [31m*** ***"


@pytest.mark.parametrize("step", list(Step))
def test_an_unexpected_error_says_its_type_and_step_and_nothing_of_its_text(step: Step) -> None:
    why = crashed(step, RuntimeError("/srv/secret/path holds hunter2"))
    assert why == f"internal error while {step.value} (RuntimeError)"


def test_a_build_s_masker_hides_only_the_places_no_output_names_by_chance(tmp_path: Path) -> None:
    checkout = tmp_path / "bot-data" / "checkouts" / "b1"
    masker = PlaceMasker(["hunter2-secret"])
    masker.hide = Redactor.of(Masker(), [(str(checkout), "<checkout>")], "/tmp").hide_places
    masker.add("later-secret")
    line = f"{checkout}/a.txt /tmp/dockercise-1-x/vol /tmp/mine hunter2-secret later-secret /data"
    assert masker(line) == "<checkout>/a.txt <temp>/vol /tmp/mine *** *** /data"
