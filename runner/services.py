"""`services`: containers beside a stage, reached by their names (pure; SPEC §14).

What the loader decides about a stage's `services` mapping lives here: each
name a DNS label (it is the name the stage reaches the service by), at most
`MAX_SERVICES` of them, each body `{img, run, env, ready}`.  The values of
`img`, `run` and `env` obey the same rules as a stage's, so `runner.rules`
hands its own checks in (`KeyCheck`) rather than this module repeating them.
Also here: the names a service's things get in the engine and the store, so
that the loader can refuse a pipeline in which two of them would collide.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from runner.model import EnvItem, Service
from runner.wording import Suggester, describe, quote

__all__ = [
    "KEYS",
    "MAX_SERVICES",
    "KeyCheck",
    "literal_owner",
    "log_name",
    "parse",
    "problems",
]

MAX_SERVICES = 8
"""Services of one stage: each is a container, and a bot build's containers are counted."""
KEYS = ("img", "run", "env", "ready")
"""A service's keys; `img` is required."""

_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
"""A DNS label (RFC 1123): what a resolver on the stage's network answers to."""

KeyCheck = Callable[[str, Any], str | None]
"""Why a stage key's value is wrong for that key (`img`, `run`, `env`), or None."""

Problems = Iterator[tuple[int | None, str]]
"""(line of the problem, or None for the `services` key's own; what is wrong)."""


def problems(stage: str, value: Any, check: KeyCheck, suggest: Suggester) -> Problems:
    """Everything wrong in one stage's `services` taken alone; `value` is a mapping."""
    lines: Mapping[Any, int] = getattr(value, "lines", {})
    if len(value) > MAX_SERVICES:
        yield None, f"'services' has {len(value)} services; at most {MAX_SERVICES} a stage"
        return
    seen: dict[str, str] = {}
    for name, body in value.items():
        line = lines.get(name)
        if not isinstance(name, str) or not _LABEL.match(name):
            yield (
                line,
                f"service name {quote(name)} must be a DNS label (letters, digits and inner"
                " '-', at most 63 characters): the stage reaches the service by it",
            )
            continue
        folded = name.casefold()
        if folded == stage.casefold():
            yield line, f"service {quote(name)} has the stage's own name (rename the service)"
        elif folded in seen:
            yield (
                line,
                f"service {quote(name)} and service {quote(seen[folded])} differ only in"
                " case, which DNS ignores (rename one)",
            )
        seen.setdefault(folded, name)
        yield from _body_problems(name, body, line, check, suggest)


def _body_problems(
    name: str, body: Any, line: int | None, check: KeyCheck, suggest: Suggester
) -> Problems:
    who = f"service {quote(name)}"
    if not isinstance(body, dict):
        yield line, f"{who} must be a mapping of keys ({', '.join(KEYS)}), not {describe(body)}"
        return
    lines: Mapping[Any, int] = getattr(body, "lines", {})
    for key, item in body.items():
        at = lines.get(key, line)
        if key not in KEYS:
            hint = suggest(key, KEYS) if isinstance(key, str) else ""
            yield at, f"{who}: unknown key {quote(key)}{hint}"
        elif key == "ready":
            if not isinstance(item, str) or not item.strip():
                yield at, f"{who}: 'ready' must be a shell command, not {describe(item)}"
        else:
            why = check(key, item)
            if why is not None:
                yield at, f"{who}: {why}"
    if "img" not in body:
        yield line, f"{who} has no 'img' (add img: IMAGE)"


def parse(value: Any, script: Callable[[Any], str | None]) -> tuple[Service, ...]:
    """The services of a mapping that `problems` found nothing wrong in, as written."""
    lines: Mapping[Any, int] = getattr(value, "lines", {})
    found = []
    for name, body in (value or {}).items():
        found.append(
            Service(
                name=name,
                img=body["img"],
                line=lines.get(name, 0),
                run=script(body.get("run")),
                env=tuple(env_items(body.get("env"))),
                ready=body.get("ready"),
            )
        )
    return tuple(found)


def env_items(raw: Any) -> Iterator[EnvItem]:
    """`env` as written (a name, or a list of names and {NAME: value}) -> items, in order."""
    for item in [raw] if isinstance(raw, str) else raw or ():
        if isinstance(item, dict):
            yield from (EnvItem(str(k), _literal(v)) for k, v in item.items())
        else:
            yield EnvItem(item)


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def log_name(stage: str, service: str) -> str:
    """The store's name of a service's log, beside the stage's `<stage>.log`, less `.log`."""
    return f"{stage}.{service}"


def literal_owner(stage: str, service: str) -> str:
    """Whose decrypted `{NAME: secure:...}` items these are (`literals`' first half).

    A stage's own are keyed by its name, which never holds `/`: so this key
    never stands for a stage.
    """
    return f"{stage}/{service}"
