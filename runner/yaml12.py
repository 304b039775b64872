"""YAML 1.2 (core schema) on top of PyYAML's libyaml parser, keeping line numbers.

PyYAML implements YAML 1.1, where `on`, `yes` and `off` are booleans and `010`
is octal; SPEC §1 promises YAML 1.2, where only `true`/`false` are booleans.
We keep PyYAML's fast C parser and replace only its implicit-tag resolvers and
the int constructor.  Every mapping and sequence remembers the line of each key
or item so that errors can point at the exact line.
"""

from __future__ import annotations

import gc
import re
from typing import Any

import yaml

try:
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - libyaml is in every wheel we install
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

__all__ = ["LineDict", "LineList", "YamlError", "load"]


class YamlError(Exception):
    """A file that is not valid YAML; `line` is 1-based (0 when unknown)."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


class LineDict(dict[Any, Any]):
    """A mapping that knows the line of each of its keys and of its own start."""

    line: int
    lines: dict[Any, int]
    duplicates: list[tuple[Any, int, int]]


class LineList(list[Any]):
    """A sequence that knows the line of each item."""

    line: int
    lines: list[int]


_CORE_RESOLVERS: list[tuple[str, re.Pattern[str], str | list[str]]] = [
    # "" as a first character: an empty value (`key:`) is null, as in every YAML schema.
    ("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF"),
    (
        "tag:yaml.org,2002:int",
        re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
        "-+0123456789",
    ),
    (
        "tag:yaml.org,2002:float",
        re.compile(
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        "-+.0123456789",
    ),
]


class _Loader(_BaseLoader):
    # Our own table, so that PyYAML's YAML 1.1 resolvers are not inherited.
    yaml_implicit_resolvers = {}  # noqa: RUF012

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        text = str(self.construct_scalar(node))
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text, 10)

    def construct_line_mapping(self, node: yaml.MappingNode) -> LineDict:
        result = LineDict()
        result.line = node.start_mark.line + 1
        result.lines = {}
        result.duplicates = []
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise YamlError(
                    "a key must be a plain value", key_node.start_mark.line + 1
                ) from None
            line = key_node.start_mark.line + 1
            if key in result.lines:
                result.duplicates.append((key, result.lines[key], line))
            result[key] = self.construct_object(value_node, deep=True)
            result.lines[key] = line
        return result

    def construct_line_sequence(self, node: yaml.SequenceNode) -> LineList:
        result = LineList(self.construct_object(child, deep=True) for child in node.value)
        result.line = node.start_mark.line + 1
        result.lines = [child.start_mark.line + 1 for child in node.value]
        return result


for _tag, _regexp, _first in _CORE_RESOLVERS:
    _Loader.add_implicit_resolver(_tag, _regexp, list(_first))
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_line_mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _Loader.construct_line_sequence)


def load(text: str) -> Any:
    """Parse one YAML 1.2 document; raise YamlError with the line of the mistake."""
    # The parse makes many small objects and no cycles: the cyclic garbage
    # collector would only halve the speed (it doubles a 10,000-stage load).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else 0
        what = e.problem or e.context or "invalid YAML"
        raise YamlError(f"YAML syntax error: {what}", line) from None
    except yaml.YAMLError as e:
        raise YamlError(f"YAML syntax error: {e}", 0) from None
    finally:
        if collecting:
            gc.enable()
