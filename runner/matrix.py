"""`matrix`: one stage written, one stage run per combination of values (pure; SPEC §14).

`test: {matrix: {py: [3.11, 3.12], db: [pg, my]}}` becomes the stages
`test[py=3.11,db=pg]`, `test[py=3.11,db=my]`, ... each with `$py` and `$db`
in its environment and `${py}` replaced in its `img`.  The loader expands
matrices before it checks references, so everything after it (the DAG, the
engine, `DOCKERCISE_MAX_STAGES`, the store, the pages) sees plain stages.

The values come from whoever wrote the pipeline and end up in a stage name,
hence in file names, S3 keys and URLs: every character that has a meaning in
an expanded name (`[`, `]`, `,`, `=`), that a stage name may not hold (`/`,
`\\`, NUL) or that cannot be shown is written `%XX` (as in a URL), and `%`
itself too, so two different combinations never share a name.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

from runner.wording import describe, quote

__all__ = [
    "MAX_COMBINATIONS",
    "MAX_EXPANDED",
    "Combination",
    "combinations",
    "expanded_name",
    "image_problem",
    "problems",
    "substitute",
    "value_text",
]

MAX_COMBINATIONS = 64
"""Combinations of one matrix stage (SPEC §14)."""
MAX_EXPANDED = 10_000
"""Stages all the matrices of one pipeline may expand into: a 1 MiB pipeline of small
matrix stages would otherwise become a million stages in the loader, before any limit
of a bot build could refuse it."""

Combination = tuple[tuple[str, str], ...]
"""(variable, value as text) for every variable of a matrix, in matrix order."""

_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_REFERENCE = re.compile(r"\$\{([^}]*)\}")
_SPECIAL = frozenset("%,=[]/\\")
_SECURE = "secure:"


def value_text(value: str | int | float | bool) -> str:
    """A value as YAML would write it: `true`, `3`, `1.0`, `.inf`; a string as it is.

    This text is both the variable's value in the container and what the stage's
    name shows, so `1` and `'1'` are the same value (a duplicate), `1.0` another.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    return str(value)


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float)  # bool is an int; None is not a value


def problems(matrix: Any) -> Iterator[str]:
    """Everything wrong with a `matrix` value, each as one line (the key is `matrix`)."""
    if not isinstance(matrix, dict):
        yield f"'matrix' must be a mapping of variables to lists of values, not {describe(matrix)}"
        return
    if not matrix:
        yield "'matrix' must name at least one variable ({VARIABLE: [value, ...]})"
        return
    count = 1
    for variable, values in matrix.items():
        if not isinstance(variable, str) or not _VARIABLE.match(variable):
            yield (
                f"'matrix' variable {quote(variable)} is not a variable name"
                " (letters, digits and _, not starting with a digit)"
            )
            continue
        if not isinstance(values, list):
            yield (
                f"'matrix' variable {quote(variable)} must be a list of values,"
                f" not {describe(values)}"
            )
            continue
        if not values:
            yield f"'matrix' variable {quote(variable)} has no values (give at least one)"
            continue
        count *= len(values)
        seen: set[str] = set()
        for value in values:
            if not _scalar(value):
                shown = "null" if value is None else describe(value)
                yield (
                    f"'matrix' variable {quote(variable)} holds {shown}"
                    " (values are strings, numbers or true/false)"
                )
                break
            text = value_text(value)
            if text.startswith(_SECURE):
                yield (
                    f"'matrix' variable {quote(variable)} holds a secure: value; matrix values"
                    " are shown in stage names (put secrets in 'env')"
                )
                break
            if text in seen:
                yield f"'matrix' variable {quote(variable)} lists {quote(text)} twice"
                break
            seen.add(text)
    if count > MAX_COMBINATIONS:
        yield (
            f"'matrix' makes {count} combinations, more than {MAX_COMBINATIONS}"
            " (split the stage or drop values)"
        )


def image_problem(img: str, variables: Collection[str]) -> str | None:
    """Why `img` cannot be completed with the stage's matrix variables, or None.

    Only `${VARIABLE}` of the stage's own matrix is replaced; anything else in
    `${...}` would reach the engine as an image name no one meant.
    """
    if "${" not in img:
        return None
    for found in _REFERENCE.finditer(img):
        name = found.group(1)
        if name not in variables:
            what = "has no matrix" if not variables else "has no such matrix variable"
            return f"'img' uses {quote('${' + name + '}')}, but the stage {what}"
    if "${" in _REFERENCE.sub("", img):
        return f"'img' has a '${{' without its '}}' in {quote(img)}"
    return None


def combinations(matrix: Mapping[str, Sequence[str | int | float | bool]]) -> list[Combination]:
    """Every combination of a valid matrix, the first variable changing slowest."""
    axes = [[(variable, value_text(v)) for v in values] for variable, values in matrix.items()]
    return [tuple(combination) for combination in itertools.product(*axes)]


def _escape(text: str) -> str:
    if text.isprintable() and not _SPECIAL.intersection(text):
        return text
    return "".join(
        c
        if c.isprintable() and c not in _SPECIAL
        else "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass"))
        for c in text
    )


def expanded_name(stage: str, combination: Combination) -> str:
    """`stage[a=1,b=x]`: the variables in matrix order, each value escaped (module doc)."""
    inner = ",".join(f"{variable}={_escape(value)}" for variable, value in combination)
    return f"{stage}[{inner}]"


def substitute(img: str, combination: Combination) -> str:
    """`img` with each `${VARIABLE}` replaced by its value (checked by `image_problem`)."""
    values = dict(combination)
    return _REFERENCE.sub(lambda found: values.get(found.group(1), found.group(0)), img)
