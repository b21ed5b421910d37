"""A strict JSON reader (RFC 8259) for request bodies, and the text rule every input obeys.

Python's ``json`` module accepts more than the standard, and some of what it accepts would
reach the store changed or not at all: ``NaN`` and ``Infinity`` (and numbers such as ``1e400``
that overflow to infinity) are stored as ``null`` or refused by PostgreSQL, a repeated key
silently keeps its last value, ``"\\ud800"`` decodes to a lone surrogate that cannot be
encoded again, and integers of thousands of digits or deep nesting raise mid-parse. This
module refuses all of them, each with the location of the offence, so that what is accepted
is stored and returned exactly as sent.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 64
"""Objects and arrays nested deeper than this are refused (the body itself is level 1)."""
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
"""Integers must fit a signed 64-bit integer, the widest that PostgreSQL and workers in
typed languages hold without changing the value."""
MAX_ERRORS = 10

_INT_DIGITS = len(str(INT_MAX))
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Only an escape can put NUL or a surrogate in a decoded string: the decoder refuses a raw
# control character, and UTF-8 cannot encode a surrogate. (An escaped backslash before
# "u0000" matches too; that only costs the slow, exact walk.)
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Problem:
    """One offence: where (keys and indexes from the document's root) and what."""

    path: tuple[str | int, ...]
    message: str


class StrictJsonError(ValueError):
    """The document is not strict JSON; ``problems`` says where and why."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class _Refused:
    """Stands in for a value the parser met but the standard (or the store) does not allow."""

    message: str


class _Object(dict[str, Any]):
    """An object whose source repeated some keys (``dict`` keeps the last value of each)."""

    repeated: tuple[str, ...] = ()


def _constant(name: str) -> _Refused:
    return _Refused(f"{name} is not a JSON value")


def _float(text: str) -> float | _Refused:
    value = float(text)
    if math.isinf(value):
        return _Refused(f"number {_excerpt(text)} is beyond the range of a 64-bit float")
    mantissa = text.lower().partition("e")[0]
    if value == 0 and mantissa.strip("-+0.") != "":
        return _Refused(f"number {_excerpt(text)} is too small for a 64-bit float (it reads as 0)")
    return value


def _int(text: str) -> int | _Refused:
    # Checked before int(): Python refuses to convert more than 4300 digits.
    if len(text.lstrip("-")) <= _INT_DIGITS:
        value = int(text)
        if INT_MIN <= value <= INT_MAX:
            return value
    return _Refused(f"integer {_excerpt(text)} does not fit in 64 bits")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) == len(pairs):
        return result
    repeated = _Object(result)
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen and key not in repeated.repeated:
            repeated.repeated += (key,)
        seen.add(key)
    return repeated


def _excerpt(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def printable(text: str) -> str:
    """``text`` with lone surrogates written as ``\\udXXX`` escapes, so it can be encoded."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def printable_value(value: Any) -> Any:
    """``value`` with :func:`printable` applied to every string and key in it."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable(str(k)): printable_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable_value(v) for v in value]
    return value


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored as sent, or None: a NUL (PostgreSQL text cannot hold it)
    or a lone surrogate (not Unicode: it cannot be encoded as UTF-8)."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "text must not contain NUL (\\u0000): the store cannot hold it"
    return f"text must not contain a lone surrogate ({printable(found.group())}): it is not Unicode"


def loads(body: bytes) -> Any:
    """The value of a strict JSON document, or :class:`StrictJsonError` saying where it is not.

    Refused: bytes that are not UTF-8, a byte-order mark, anything ``json`` reports, the
    literals ``NaN``/``Infinity``/``-Infinity``, numbers out of the 64-bit float range,
    integers beyond 64 bits, repeated keys, nesting deeper than :data:`MAX_DEPTH`, and
    strings (keys too) holding NUL or a lone surrogate.
    """
    if body.startswith(_BOM):
        raise StrictJsonError([Problem((), "JSON text must not start with a byte-order mark")])
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = Problem((), f"not UTF-8: invalid byte at offset {exc.start}")
        raise StrictJsonError([problem]) from exc
    try:
        value = json.loads(
            text,
            parse_constant=_constant,
            parse_float=_float,
            parse_int=_int,
            object_pairs_hook=_pairs,
        )
    except json.JSONDecodeError as exc:
        message = f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        raise StrictJsonError([Problem((), message)]) from exc
    except RecursionError as exc:
        raise StrictJsonError([Problem((), _too_deep())]) from exc
    if _plainly_clean(value, text):
        return value
    problems = []
    for problem in _problems(value):
        problems.append(problem)
        if len(problems) == MAX_ERRORS:
            break
    if problems:
        raise StrictJsonError(problems)
    return value


def _too_deep() -> str:
    return f"nested deeper than {MAX_DEPTH} levels"


def _plainly_clean(root: Any, text: str) -> bool:
    """True when ``root`` (decoded from ``text``) certainly has no problem. A cheap first
    look: it visits the values but builds no locations, which cost most of the exact walk
    (:func:`_problems`, run only when this says no)."""
    if _UNSTORABLE_ESCAPE.search(text) is not None:
        return False
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        value, depth = stack.pop()
        children: Iterable[Any]
        if type(value) is dict:
            children = value.values()
        elif type(value) is list:
            children = value
        else:  # a refused value, or an object with a repeated key
            return False
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                if depth >= MAX_DEPTH:
                    return False
                stack.append((child, depth + 1))
            elif kind is _Refused or kind is _Object:
                return False
    return True


def _problems(root: Any) -> Iterator[Problem]:
    # Iterative, in document order: a recursive walk could itself run out of stack.
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(root, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, _Refused):
            yield Problem(path, value.message)
        elif isinstance(value, str):
            if (problem := text_problem(value)) is not None:
                yield Problem(path, problem)
        elif isinstance(value, dict | list):
            if len(path) >= MAX_DEPTH:
                yield Problem(path, _too_deep())
                continue
            if isinstance(value, dict):
                yield from _key_problems(value, path)
                children = [(child, (*path, key)) for key, child in value.items()]
            else:
                children = [(child, (*path, index)) for index, child in enumerate(value)]
            stack.extend(reversed(children))


def _key_problems(value: dict[str, Any], path: tuple[str | int, ...]) -> Iterator[Problem]:
    for key in value.repeated if isinstance(value, _Object) else ():
        yield Problem((*path, key), "key appears more than once in its object")
    for key in value:
        if (problem := text_problem(key)) is not None:
            yield Problem((*path, key), f"key: {problem}")
