"""Reading a JSON document back as the TypedDict it claims to be, strictly.

A document that crosses a process boundary or the disk (a child's result file, a run kept as a
pending file, a row given to the store) is declared as a TypedDict in detprof.documents or
beside its writer. ``shape_problem`` compares a parsed document with that declaration at run time:
a field the declaration does not have (a misspelt key, which would otherwise read as missing and
let a comparison of two empty values pass), a required field that is absent, or a value of the
wrong JSON type. Nested TypedDicts, lists, dicts, unions and None are followed; ``Any`` accepts
anything.
"""

from __future__ import annotations

import collections.abc
import functools
import types
import typing
from typing import Any, Union, get_args, get_origin, get_type_hints, is_typeddict

from detprof.errors import DetprofError


class ShapeError(DetprofError, ValueError):
    """A document that does not have the shape its TypedDict declares."""


@functools.cache
def _fields(kind: type) -> tuple[dict[str, Any], frozenset[str]]:
    """(each field's type, the required fields) of a TypedDict. ``NotRequired[...]`` and
    ``Required[...]`` are read from the hints themselves: under ``from __future__ import
    annotations`` Python 3.11 cannot see them in ``__required_keys__``."""
    wrapped = get_type_hints(kind, include_extras=True)
    required = set(getattr(kind, "__required_keys__", frozenset()))
    for name, hint in wrapped.items():
        if get_origin(hint) is typing.NotRequired:
            required.discard(name)
        elif get_origin(hint) is typing.Required:
            required.add(name)
    return get_type_hints(kind), frozenset(required)


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _value_problem(value: Any, hint: Any, where: str) -> str | None:
    """Why ``value`` is not of type ``hint`` (at ``where``, a path such as ``steps[0].loss``), or None."""
    if hint is Any or hint is object:
        return None
    if hint is None or hint is type(None):
        return None if value is None else f"{where} is {type(value).__name__}, not null"
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if any(_value_problem(value, option, where) is None for option in options):
            return None
        return f"{where} is {type(value).__name__}, not {' or '.join(_type_name(o) for o in options)}"
    if origin is typing.Literal:
        return None if value in get_args(hint) else f"{where} is {value!r}, not one of {get_args(hint)!r}"
    if is_typeddict(hint):
        if not isinstance(value, dict):
            return f"{where} is {type(value).__name__}, not an object"
        return _document_problem(value, hint, where + ".")
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, list | tuple):
            return f"{where} is {type(value).__name__}, not a list"
        elements = [a for a in get_args(hint) if a is not Ellipsis]
        element = elements[0] if len(elements) == 1 else Any
        return next((problem for index, item in enumerate(value)
                     if (problem := _value_problem(item, element, f"{where}[{index}]"))), None)
    if origin in (dict, collections.abc.Mapping) or hint is dict:
        if not isinstance(value, dict):
            return f"{where} is {type(value).__name__}, not an object"
        arguments = get_args(hint)
        element = arguments[1] if len(arguments) == 2 else Any
        return next((problem for key, item in value.items()
                     if (problem := _value_problem(item, element, f"{where}.{key}"))), None)
    if hint is float:  # JSON writes 2.0 as 2.0, but a writer may give an int where a float is declared
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(hint, type):
        ok = isinstance(value, hint)
    else:
        return None  # a hint this reader does not follow (a TypeVar, say): not checked
    return None if ok else f"{where} is {type(value).__name__}, not {_type_name(hint)}"


def _document_problem(document: dict[str, Any], kind: type, prefix: str = "") -> str | None:
    hints, required = _fields(kind)
    unknown = sorted(key for key in document if key not in hints)
    if unknown:
        return f"it has the field '{prefix}{unknown[0]}', which a {kind.__name__} does not have"
    missing = sorted(required - set(document))
    if missing:
        return f"it lacks the field '{prefix}{missing[0]}', which a {kind.__name__} requires"
    return next((problem for key, value in document.items()
                 if (problem := _value_problem(value, hints[key], prefix + key))), None)


def shape_problem(document: Any, kind: type) -> str | None:
    """Why ``document`` is not a ``kind`` (a TypedDict), in words such as "it has the field
    'step_mss', which a JobResult does not have"; None when it is one."""
    if not is_typeddict(kind):
        raise TypeError(f"{kind!r} is not a TypedDict")
    if not isinstance(document, dict):
        return f"it is {type(document).__name__}, not an object"
    return _document_problem(document, kind)


def require_shape(document: Any, kind: type, what: str) -> None:
    """Raise ShapeError "``what`` is not a ``kind``: <why>" when ``document`` is not one."""
    problem = shape_problem(document, kind)
    if problem is not None:
        raise ShapeError(f"{what} is not a {kind.__name__}: {problem}")


def known_fields(record: type, data: dict[str, Any], what: str,
                 error: type[Exception] = ShapeError) -> dict[str, Any]:
    """``data`` when every key is a field of the dataclass ``record``; ``error`` naming the others (a
    misspelt field, or one from a newer detprof) otherwise, so that it never reads as a default."""
    import dataclasses

    known = {f.name for f in dataclasses.fields(record)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise error(f"{what}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return data
