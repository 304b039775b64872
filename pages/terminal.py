"""Terminal control sequences out of text shown on a page (pure).

A stage's output is the pipeline author's: it may hold colours, cursor moves,
window-title or hyperlink sequences (OSC), or bare control characters.  None
of them means anything in a page, and some (OSC 8 links, title changes) are
made to mislead whoever copies the text into a terminal, so the page shows
the text without them.  Newlines and tabs stay; so does every printable
character.  The raw `.log` download keeps the bytes as they were stored.
"""

from __future__ import annotations

import re

__all__ = ["strip_controls"]

_SEQUENCES = re.compile(
    r"""
      \x1b\[ [0-?]* [\ -/]* [@-~]?          # CSI: colours, cursor moves, erases
    | \x1b[\]PX^_] [^\x07\x1b\n]* (?:\x07|\x1b\\)?
                                            # OSC, DCS, SOS, PM, APC strings, up to BEL or ST
                                            # (never past a line end: an unended one hides no more)
    | \x1b [\ -/]* [0-~]?                   # any other escape (charset, keypad, reset...)
    | \x9b [0-?]* [\ -/]* [@-~]?            # the same as C1 characters
    | [\x9d\x90\x98\x9e\x9f] [^\x07\x9c\x1b\n]* (?:\x07|\x9c|\x1b\\)?
    | [\x00-\x08\x0b-\x1f\x7f-\x9f]          # other C0 controls (not \t, \n), DEL, C1
    """,
    re.VERBOSE,
)


def strip_controls(text: str) -> str:
    """`text` without terminal escape sequences and control characters other than \\n and \\t."""
    return _SEQUENCES.sub("", text)
