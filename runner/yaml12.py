"""YAML 1.2 (core schema) from libyaml's events, bounded, with line numbers (SPEC §1, §10).

PyYAML implements YAML 1.1, where `on`, `yes` and `off` are booleans and `010`
is octal; SPEC §1 promises YAML 1.2, where only `true`/`false` are booleans.
We keep libyaml's C parser and build the values ourselves from its events,
in one pass with an explicit stack, so that a hostile file is refused before
it costs anything (SPEC §10, "Loading is bounded"):

- nesting deeper than MAX_DEPTH collections is refused as soon as it is met;
- aliases are never expanded: an alias is the same Python object as its anchor,
  and the expanded size of the document (nodes, plus the characters of its
  scalars, so that one long string aliased a thousand times counts) is
  computed from the events alone; past MAX_EXPANSION times the document's own
  size it is refused (billion laughs), as is an alias inside its own anchor;
- only the core schema's tags exist (`!!str`, `!!int`, `!!float`, `!!bool`,
  `!!null`, `!!map`, `!!seq`): any other tag (`!!binary`, `!!timestamp`,
  `!!python/...`, `!custom`) and any value its tag cannot hold (`!!int abc`)
  is a problem, as are a NUL anywhere and numbers too long to be numbers.

Every mapping and sequence remembers the line of each key or item so that
errors can point at the exact line.  Nothing here raises but YamlError.
"""

from __future__ import annotations

import gc
import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

from runner.wording import one_line, quote

try:
    from yaml._yaml import CParser as _Parser
except ImportError:  # pragma: no cover - libyaml is in every wheel we install
    from yaml import SafeLoader as _Parser  # type: ignore[assignment]

__all__ = [
    "MAX_DEPTH",
    "MAX_DIGITS",
    "MAX_EXPANSION",
    "LineDict",
    "LineList",
    "Parsed",
    "YamlError",
    "load",
    "parse",
]

MAX_DEPTH = 64
"""Collections inside collections; a pipeline needs four (stage, env, item)."""
MAX_EXPANSION = 10
"""How many times its own size the aliases of a document may expand it to."""
MAX_DIGITS = 100
"""Characters of a number; past it, Python's int-str conversion limit is near."""


class YamlError(Exception):
    """A file that is not valid YAML; `line` is 1-based (0 when unknown)."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


class LineDict(dict[Any, Any]):
    """A mapping that knows the line of each of its keys and of its own start."""

    __slots__ = ("duplicates", "line", "lines")

    def __init__(self, line: int = 0) -> None:
        super().__init__()
        self.line = line
        self.lines: dict[Any, int] = {}
        self.duplicates: list[tuple[Any, int, int]] = []


class LineList(list[Any]):
    """A sequence that knows the line of each item."""

    __slots__ = ("line", "lines")

    def __init__(self, line: int = 0) -> None:
        super().__init__()
        self.line = line
        self.lines: list[int] = []


@dataclass
class Parsed:
    """A document, or None; `problems` (line, message) make it unusable when not empty.

    A limit (depth, aliases) or a syntax error stops the parse: `doc` is None
    and there is one problem.  A bad value (a tag, a NUL, a long number) does
    not: every one of them is reported, and the value stands as its text.
    """

    doc: Any
    problems: list[tuple[int, str]] = field(default_factory=list)


_TAG = "tag:yaml.org,2002:"
_NULL = re.compile(r"(?:~|null|Null|NULL|)\Z")
_BOOL = re.compile(r"(?:true|True|TRUE|false|False|FALSE)\Z")
_INT = re.compile(r"(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)\Z")
_FLOAT = re.compile(
    r"(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))\Z"
)
# The core schema's implicit tags, tried in this order; keyed by first character as
# PyYAML does, so that most plain scalars (words) are tried against nothing.
_IMPLICIT: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
for _tag, _pattern, _first in (
    ("null", _NULL, "~nN"),
    ("bool", _BOOL, "tTfF"),
    ("int", _INT, "-+0123456789"),
    ("float", _FLOAT, "-+.0123456789"),
):
    for _char in _first:
        _IMPLICIT.setdefault(_char, []).append((_tag, _pattern))


class _Stop(Exception):
    """A limit or a syntax error: the document is not built any further."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message


class _BadKey:
    """Stands for a key that cannot be one (a list, a mapping); its pair is dropped."""


_BAD_KEY = _BadKey()
_OPEN = object()
"""An anchor whose collection is still being built: an alias to it is recursive."""


def _line(event: Any) -> int:
    mark = event.start_mark
    return mark.line + 1 if mark is not None else 0


def _tag_name(tag: str) -> str:
    return "!!" + tag[len(_TAG) :] if tag.startswith(_TAG) else tag


def _number(kind: str, text: str) -> Any:
    if kind == "int":
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text, 10)
    lowered = text.lower()
    if lowered.endswith(("inf", "nan")):
        value = math.inf if "inf" in lowered else math.nan
        return -value if lowered.startswith("-") else value
    return float(text)


class _Builder:
    """Events -> values, one pass, explicit stack, every limit checked on the way."""

    def __init__(self, parser: Any) -> None:
        self.parser = parser
        self.problems: list[tuple[int, str]] = []
        self.anchors: dict[str, Any] = {}
        self.own = 0
        """The document's size: each node once (1, plus a scalar's characters)."""
        self.expanded = 0
        """Its size with every alias expanded."""
        self.biggest_alias = (0, 0)  # (size, line)

    def problem(self, line: int, message: str) -> None:
        self.problems.append((line, message))

    def scalar(self, event: ScalarEvent, line: int) -> Any:
        text: str = event.value
        if "\0" in text:
            self.problem(line, f"NUL character in {quote(text)} (remove it)")
            return text
        tag = event.tag
        if tag is None:
            if not event.implicit[0]:
                return text  # quoted: always a string
            for kind, pattern in _IMPLICIT.get(text[:1], ()):
                if pattern.match(text):
                    return self.typed(kind, text, line)
            return text or None  # an empty plain value is null
        if tag == "!" or tag == _TAG + "str":
            return text
        kind = tag[len(_TAG) :] if tag.startswith(_TAG) else ""
        known = {"null": _NULL, "bool": _BOOL, "int": _INT, "float": _FLOAT}.get(kind)
        if known is None:
            self.problem(line, f"tag {quote(_tag_name(tag))} is not supported{_TAGS_WAY_OUT}")
            return text
        pattern = _INT if kind == "float" and _INT.match(text) else known
        if not pattern.match(text):
            self.problem(line, f"{quote(text)} is not a valid {_tag_name(tag)} value")
            return text
        value = self.typed(kind, text, line)
        return float(value) if kind == "float" and isinstance(value, int) else value

    def typed(self, kind: str, text: str, line: int) -> Any:
        if kind == "null":
            return None
        if kind == "bool":
            return text[0] in "tT"
        if len(text) > MAX_DIGITS:
            self.problem(
                line,
                f"the number {quote(text, 20)} is too long (at most {MAX_DIGITS} characters;"
                " quote it if it is text)",
            )
            return text
        return _number(kind, text)

    def build(self) -> Any:
        """The document's value, from the event after DocumentStart to its end.

        The hottest loop of a load: sizes are kept in locals, and an item of a
        list is attached in place.
        """
        parser = self.parser
        anchors = self.anchors
        stack: list[list[Any]] = []  # [container, anchor, size at start, key, key line, has key]
        own = expanded = 0
        implicit = _IMPLICIT
        value: Any = None
        while True:
            event = parser.get_event()
            kind = type(event)
            line = event.start_mark.line + 1  # libyaml marks every event
            if kind is ScalarEvent:
                text = event.value
                if (
                    event.tag is None
                    and text
                    and (text[0] not in implicit or not event.implicit[0])
                    and "\0" not in text
                ):
                    value = text  # the common case: a plain word or a quoted string
                else:
                    value = self.scalar(event, line)
                size = 1 + len(text)
                own += size
                expanded += size
                if event.anchor is not None:
                    anchors[event.anchor] = (value, size)
            elif kind is AliasEvent:
                found = anchors.get(event.anchor)
                if found is None:
                    raise _Stop(
                        line, f"YAML syntax error: found undefined alias {quote(event.anchor)}"
                    )
                if found is _OPEN:
                    raise _Stop(
                        line,
                        f"alias {quote(event.anchor)} is inside its own anchor"
                        " (a recursive alias expands without end)",
                    )
                value, size = found
                expanded += size
                self.biggest_alias = max(self.biggest_alias, (size, line))
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                if len(stack) >= MAX_DEPTH:
                    raise _Stop(
                        line,
                        f"nesting deeper than {MAX_DEPTH} levels (a pipeline needs a few)",
                    )
                is_map = kind is MappingStartEvent
                tag = event.tag
                if tag is not None and tag != "!" and tag != _TAG + ("map" if is_map else "seq"):
                    self.problem(
                        line, f"tag {quote(_tag_name(tag))} is not supported{_TAGS_WAY_OUT}"
                    )
                container: Any = LineDict(line) if is_map else LineList(line)
                own += 1
                expanded += 1
                if event.anchor is not None:
                    anchors[event.anchor] = _OPEN
                stack.append([container, event.anchor, expanded - 1, _BAD_KEY, 0, False])
                continue
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                frame = stack.pop()
                value = frame[0]
                line = value.line
                if frame[1] is not None:
                    anchors[frame[1]] = (value, expanded - frame[2])
            else:  # pragma: no cover - libyaml sends nothing else inside a document
                raise _Stop(line, f"YAML syntax error: unexpected {kind.__name__}")
            if not stack:
                break
            frame = stack[-1]
            parent = frame[0]
            if type(parent) is LineList:
                parent.append(value)
                parent.lines.append(line)
            else:
                self.attach(frame, value, line)
        self.own, self.expanded = own, expanded
        return value

    def attach(self, frame: list[Any], value: Any, line: int) -> None:
        container = frame[0]
        if type(container) is LineList:
            container.append(value)
            container.lines.append(line)
            return
        if not frame[5]:  # a key
            if isinstance(value, list | dict):
                self.problem(line, "a key must be a plain value, not a list or a mapping")
                value = _BAD_KEY
            frame[3], frame[4], frame[5] = value, line, True
            return
        key, key_line = frame[3], frame[4]
        frame[5] = False
        if key is _BAD_KEY:
            return
        if key in container.lines:
            container.duplicates.append((key, container.lines[key], key_line))
        container[key] = value
        container.lines[key] = key_line

    def finish(self) -> None:
        """After the document: its end, and the size its aliases expand it to."""
        event = self.parser.get_event()
        if not isinstance(event, DocumentEndEvent):  # pragma: no cover - libyaml's own order
            return
        event = self.parser.get_event()
        if isinstance(event, DocumentStartEvent):
            raise _Stop(
                _line(event),
                "YAML syntax error: a pipeline file holds one document (remove this '---')",
            )
        if self.expanded > MAX_EXPANSION * self.own:
            line = self.biggest_alias[1]
            raise _Stop(
                line,
                f"aliases expand this file {self.expanded // self.own}-fold"
                f" (at most {MAX_EXPANSION}-fold; write the values out instead)",
            )


_TAGS_WAY_OUT = " (pipelines hold strings, numbers, true/false, lists and mappings)"


def parse(text: str, *, mapping_only: bool = False) -> Parsed:
    """Parse one YAML 1.2 document within the limits; never raises.

    With `mapping_only`, a document that is not a mapping is not read past its
    first event: its verdict is known (a pipeline file is a mapping of stages),
    and a 1 MiB list must not cost what it takes to build.
    """
    # The parse makes many small objects and no cycles: the cyclic garbage
    # collector would only halve the speed (it doubles a 10,000-stage load).
    collecting = gc.isenabled()
    gc.disable()
    parser = _Parser(text)
    builder = _Builder(parser)
    try:
        parser.get_event()  # StreamStart
        if isinstance(parser.get_event(), StreamEndEvent):
            return Parsed(None)  # nothing but comments
        first = parser.peek_event()
        if mapping_only and isinstance(first, SequenceStartEvent):
            return Parsed(LineList(_line(first)))
        doc = builder.build()
        builder.finish()
        return Parsed(doc, builder.problems)
    except _Stop as e:
        return Parsed(None, [(e.line, e.message)])
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else 0
        what = one_line(e.problem or e.context or "invalid YAML")
        return Parsed(None, [(line, f"YAML syntax error: {what}")])
    except yaml.reader.ReaderError as e:
        char = e.character
        code = char if isinstance(char, int) else ord(char) if char else 0
        line = text.count("\n", 0, e.position) + 1 if isinstance(e.position, int) else 0
        return Parsed(
            None, [(line, f"YAML syntax error: character #x{code:04x} is not allowed in YAML text")]
        )
    except yaml.YAMLError as e:
        return Parsed(None, [(0, f"YAML syntax error: {one_line(str(e))}")])
    finally:
        parser.dispose()
        if collecting:
            gc.enable()


def load(text: str) -> Any:
    """Parse one YAML 1.2 document; raise YamlError with the first problem and its line."""
    parsed = parse(text)
    if parsed.problems:
        line, message = parsed.problems[0]
        raise YamlError(message, line)
    return parsed.doc
