"""runner/masking.py: secret values -> *** in any text (SPEC §5), and line splitting."""

from __future__ import annotations

import base64
import itertools
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.masking import LONG_LINE, MASK, MIN_LENGTH, LineSplitter, Masker


def test_mask_is_three_stars() -> None:
    assert MASK == "***"


def test_masks_every_occurrence() -> None:
    mask = Masker(["s3cr3t"])
    assert mask("a s3cr3t and s3cr3ts3cr3t") == "a *** and ******"


def test_no_values_no_change() -> None:
    assert Masker()("anything at all") == "anything at all"


def test_several_values() -> None:
    mask = Masker(["alpha-key", "beta-key"])
    assert mask("alpha-key beta-key gamma-key") == "*** *** gamma-key"


def test_surrounding_whitespace_of_a_value_is_ignored() -> None:
    assert Masker(["  token-value\n"])("x=token-value;") == "x=***;"


def test_each_line_of_a_multiline_value() -> None:
    value = "-----BEGIN KEY-----\nAAAAline2AAAA\r\nBBBBline3BBBB\n-----END KEY-----\n"
    mask = Masker([value])
    assert mask("got AAAAline2AAAA here") == "got *** here"
    assert mask("BBBBline3BBBB") == "***"
    assert mask("-----END KEY-----") == "***"
    assert mask(value.strip()) == "***"


def test_base64_form() -> None:
    secret = "hunter2-password"
    encoded = base64.b64encode(secret.encode()).decode()
    assert Masker([secret])(f"Authorization: Basic {encoded}") == "Authorization: Basic ***"


def test_base64_of_each_line() -> None:
    encoded = base64.b64encode(b"second-line").decode()
    assert Masker(["first-line\nsecond-line"])(encoded) == "***"


def test_non_ascii_values() -> None:
    assert Masker(["pässwört☃"])("x pässwört☃ y") == "x *** y"


def test_longest_first() -> None:
    """A value that contains another is masked whole, not leaving its tail visible."""
    mask = Masker(["abcd", "abcdefgh"])
    assert mask("abcdefgh") == "***"
    assert Masker(["abcdefgh", "abcd"])("abcdefgh") == "***"


def test_regex_characters_are_literal() -> None:
    mask = Masker(["a.b*c+(d)", "[x]{2}"])
    assert mask("a.b*c+(d) aXbbc+(d) [x]{2} xx") == "*** aXbbc+(d) *** xx"


@pytest.mark.parametrize("length", range(MIN_LENGTH))
def test_short_values_are_ignored(length: int) -> None:
    value = "xyz"[:length]
    mask = Masker([value])
    text = f"a {value} b {value}"
    assert mask(text) == text


def test_min_length_value_is_masked() -> None:
    value = "k" * MIN_LENGTH
    assert Masker([value])(f"<{value}>") == f"<{MASK}>"


def test_short_lines_of_a_long_value_are_ignored() -> None:
    mask = Masker(["ok\nlong-enough-line"])
    assert mask("ok long-enough-line") == "ok ***"


def test_add_later() -> None:
    mask = Masker(["first-secret"])
    assert mask("second-secret") == "second-secret"
    mask.add("second-secret", "third-secret")
    assert mask("first-secret second-secret third-secret") == "*** *** ***"
    assert mask.longest >= len(base64.b64encode(b"second-secret"))


def test_add_from_threads() -> None:
    mask = Masker()
    values = [f"value-{i:04d}" for i in range(200)]
    threads = [threading.Thread(target=mask.add, args=(v,)) for v in values]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert mask(" ".join(values)) == " ".join([MASK] * len(values))


# --- LineSplitter ---------------------------------------------------------------------------


def test_lines_come_out_whole() -> None:
    split = LineSplitter()
    assert split.feed(b"one\ntw") == ["one"]
    assert split.feed(b"o\nthree\nfo") == ["two", "three"]
    assert split.feed(b"") == []
    assert split.close() == ["fo"]
    assert split.close() == []


def test_a_value_split_across_two_chunks_is_masked() -> None:
    mask = Masker(["top-secret-value"])
    split = LineSplitter()
    lines = split.feed(b"token: top-sec") + split.feed(b"ret-value\nnext\n")
    assert [mask(line) for line in lines] == ["token: ***", "next"]


def test_crlf_line_endings() -> None:
    split = LineSplitter()
    assert split.feed(b"dos\r\nline\r") == ["dos"]
    assert split.feed(b"\nrest") == ["line"]
    assert split.close() == ["rest"]


def test_empty_lines_are_kept() -> None:
    assert LineSplitter().feed(b"a\n\n\nb\n") == ["a", "", "", "b"]


def test_close_without_a_newline_at_the_end() -> None:
    split = LineSplitter()
    assert split.feed(b"done\nno newline") == ["done"]
    assert split.close() == ["no newline"]


def test_utf8_split_across_chunks() -> None:
    data = "☃ snowman\n".encode()
    split = LineSplitter()
    assert split.feed(data[:1]) == []
    assert split.feed(data[1:]) == ["☃ snowman"]


@pytest.mark.parametrize(
    "data", [b"\xff\xfe bad\n", b"ok \xc3\n", b"\x80\x80\x80", b"\xed\xa0\x80 surrogate\n"]
)
def test_invalid_utf8_does_not_crash(data: bytes) -> None:
    split = LineSplitter()
    lines = split.feed(data) + split.close()
    assert len(lines) == 1
    assert "\ufffd" in lines[0]


def test_a_very_long_line_is_not_held_forever() -> None:
    split = LineSplitter()
    out: list[str] = []
    for _ in range(100):
        out += split.feed(b"x" * 4096)
    out += split.close()
    assert "".join(out) == "x" * 409600
    assert len(out) > 1


# --- a line too long to hold: let go in pieces, never across a value ------------------------


def _pieces(mask: Masker, data: bytes, chunk: int) -> list[str]:
    """What the engine stores for `data` fed in `chunk`-byte writes: each piece masked alone."""
    split = LineSplitter(mask)
    out: list[str] = []
    for start in range(0, len(data), chunk):
        out += split.feed(data[start : start + chunk])
    return [mask(piece) for piece in out + split.close()]


SECRET = "s3cr3t-across-the-flush"


@pytest.mark.parametrize("chunk", [4096, 65535, LONG_LINE + 1, 1 << 20])
@pytest.mark.parametrize("secret", [SECRET, "pässwört-☃-across"], ids=["ascii", "utf-8"])
def test_a_secret_split_at_every_offset_around_the_flush_is_masked(chunk: int, secret: str) -> None:
    mask = Masker([secret])
    size = len(secret.encode())
    for offset in range(LONG_LINE - size - 2, LONG_LINE + 3):
        data = b"x" * offset + secret.encode() + b"y" * 300
        pieces = _pieces(mask, data, chunk)
        assert not any(secret in piece for piece in pieces), offset
        assert "".join(pieces) == mask(data.decode()), offset


def test_a_longer_value_is_not_cut_down_to_a_shorter_one_at_the_flush() -> None:
    """`abcd…` found at the end of a piece may still grow into the longer value: kept whole."""
    mask = Masker(["abcdefgh-longer", "abcdefgh"])
    for offset in range(LONG_LINE - 20, LONG_LINE + 5):
        data = b"x" * offset + b"abcdefgh-longer tail"
        pieces = _pieces(mask, data, 4096)
        assert "".join(pieces) == "x" * offset + "*** tail", offset


def test_a_value_longer_than_a_piece_is_still_masked() -> None:
    secret = "k" * (LONG_LINE + 100)
    mask = Masker([secret])
    data = b"a" * 1000 + secret.encode() + b"b" * (3 * LONG_LINE)
    pieces = _pieces(mask, data, 8192)
    assert "".join(pieces) == "a" * 1000 + MASK + "b" * (3 * LONG_LINE)
    assert all(piece for piece in pieces)  # no empty line is written while a value is held


def test_utf8_is_never_cut_in_the_middle_of_a_character() -> None:
    data = "☃".encode() * LONG_LINE
    for chunk in (4096, 65535, 65537):
        split = LineSplitter(Masker())
        out: list[str] = []
        for start in range(0, len(data), chunk):
            out += split.feed(data[start : start + chunk])
        out += split.close()
        assert len(out) > 1 and "\ufffd" not in "".join(out)
        assert "".join(out) == data.decode()


def test_pieces_keep_invalid_bytes_as_replacement_characters() -> None:
    data = b"\xff" * (LONG_LINE + 10)
    split = LineSplitter(Masker(["never-printed"]))
    out = split.feed(data) + split.close()
    assert "".join(out) == "\ufffd" * (LONG_LINE + 10)


@settings(max_examples=60, deadline=None)
@given(
    secrets=st.lists(st.text(min_size=MIN_LENGTH, max_size=40), min_size=1, max_size=3),
    before=st.integers(min_value=LONG_LINE - 100, max_value=LONG_LINE + 60),
    filler=st.sampled_from(["x", "é", "☃", "s"]),
    cuts=st.lists(st.integers(min_value=1, max_value=3 * LONG_LINE), max_size=8),
)
def test_pieces_masked_alone_equal_the_line_masked_whole(
    secrets: list[str], before: int, filler: str, cuts: list[int]
) -> None:
    """Whatever the values, where they sit and how the output is chunked."""
    secrets = [s.replace("\n", "") for s in secrets]
    mask = Masker(secrets)
    line = filler * before + secrets[0] + filler * 50 + secrets[-1] + "end"
    data = line.encode()
    split = LineSplitter(mask)
    out: list[str] = []
    bounds = [0, *sorted({c for c in cuts if c < len(data)}), len(data)]
    for start, end in itertools.pairwise(bounds):
        out += split.feed(data[start:end])
    out += split.close()
    assert "".join(mask(piece) for piece in out) == mask(line)
