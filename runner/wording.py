"""How a problem quotes what the user wrote: escaped, cut short, always on one line (pure).

A pipeline may come from anyone who can open a pull request, and its problems
end up in a terminal, a log and a public commit status.  A name or a value
quoted verbatim could break the one-line promise of SPEC §10 (a newline, a NUL,
U+2028), move a terminal's cursor (ESC) or flood the status (a 200 KiB string),
so every quoted value goes through `quote`.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

__all__ = ["LIMIT", "Suggester", "describe", "escape", "one_line", "quote"]

LIMIT = 100
"""Characters of a quoted value shown before it is cut (a stage name's longest)."""

_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\0": "\\x00"}


def _escape(char: str) -> str:
    known = _ESCAPES.get(char)
    if known is not None:
        return known
    if char.isprintable():
        return char
    code = ord(char)
    return (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code < 0x10000
        else f"\\U{code:08x}"
    )


def quote(value: Any, limit: int = LIMIT) -> str:
    """`'value'`, escaped as Python escapes a string (`\\n`, `\\x00`, `\\u2028`, `\\'`).

    Printable non-ASCII text stays as it is (`'☃'`).  A value longer than
    `limit` characters is cut, and the cut says how long the value was:
    `'aaa…'... (250000 characters)`.
    """
    text = value if isinstance(value, str) else str(value)
    cut = len(text) > limit
    shown = text[:limit] if cut else text
    if not (shown.isprintable() and "'" not in shown and "\\" not in shown):
        shown = "".join(_escape(c) for c in shown)
    return f"'{shown}'... ({len(text)} characters)" if cut else f"'{shown}'"


def escape(text: str) -> str:
    """The text with every unprintable character escaped as `quote` does, no quotes added."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def one_line(text: str, limit: int = 200) -> str:
    """A message from a library (an OS error, a parser) made safe to print: no control
    characters, at most `limit` characters.  Unlike `quote`, no quotes are added."""
    if len(text) > limit:
        text = text[:limit] + "..."
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else " " if c in "\n\r\t" else _escape(c) for c in text)


def describe(value: Any) -> str:
    """What a value of the wrong type is, in words: `empty`, `the number 3`, `'yes'`, `a list`."""
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return quote(value) if len(value) < 40 else "a string"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


class Suggester:
    """`(did you mean 'run'?)` for an unknown name, at a bounded total cost.

    difflib compares the word with every choice; done for each of 20,000 bad
    references against 20,000 stage names that is quadratic.  So a load gets a
    budget of comparisons: suggestions stop (the problems do not) once it is
    spent, which never happens with pipelines of a human size.
    """

    def __init__(self, budget: int = 50_000) -> None:
        self.budget = budget

    def __call__(self, word: str, choices: Sequence[str]) -> str:
        if len(word) > 2 * LIMIT or len(choices) > self.budget:
            return ""
        self.budget -= len(choices)
        close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
        return f" (did you mean {quote(close[0])}?)" if close else ""
