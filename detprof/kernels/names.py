"""Kernel names as people read them: the signature of a demangled name, and a short form for tables."""

from __future__ import annotations

import re

_BRACKETS = re.compile(r"[<>(]")
_ANONYMOUS = "(anonymous namespace)"


def signature(name: str) -> str:
    """A demangled kernel name without ``void`` and without its parameter list (which repeats the
    template types and is often half the name). ``(anonymous namespace)`` is part of the name, and
    so is a parenthesis after a space, as in ``Memcpy HtoD (Pinned -> Device)``."""
    text = name[5:] if name.startswith("void ") else name
    if "(" not in text:
        return text
    depth = 0
    # Visit only the characters that matter: names run to thousands of characters.
    for match in _BRACKETS.finditer(text):
        char, index = match.group(), match.start()
        if char == "<":
            depth += 1
        elif char == ">":
            depth = max(depth - 1, 0)
        elif depth == 0 and index > 0 and text[index - 1] != " " and not text.startswith(_ANONYMOUS, index):
            return text[:index]
    return text


def short_name(name: str, width: int = 80) -> str:
    """``signature(name)`` cut to ``width`` characters, for tables."""
    text = signature(name)
    return text if len(text) <= width else text[: width - 1] + "…"
