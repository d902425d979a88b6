"""The command line's comma-separated values, parsed into the typed values the API takes.

Only the CLI reads text such as ``default,deterministic`` or ``1,8,64``: the Python API takes
tuples and mappings, and validates them itself. Each parser raises ArgumentError (or the domain's
own error) naming the text and what is accepted.
"""

from __future__ import annotations

from detprof.errors import require
from detprof.modes import MODES, ModePair, UnknownModeError, require_mode_pair
from detprof.parse import is_whole_number


def comma_parts(text: str) -> list[str]:
    """The non-empty, stripped parts of ``text`` split at commas."""
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_modes(text: str) -> ModePair:
    """``--modes A,B`` as two known mode names (``default,default`` is allowed: the A/A test)."""
    names = comma_parts(text)
    if len(names) != 2:
        raise UnknownModeError(f"--modes takes two modes as A,B (got {text!r}); accepted modes: {', '.join(MODES)}")
    return require_mode_pair(names)


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    """``--batch-sizes 1,8,64`` as (1, 8, 64)."""
    parts = comma_parts(text)
    require(bool(parts) and all(is_whole_number(p) for p in parts),
            f"--batch-sizes {text!r} is not accepted; use batch sizes as N,N,..., such as 1,8,64")
    return tuple(int(p) for p in parts)


def parse_fixed_sources(text: str | None) -> tuple[str, ...] | None:
    """``stability --fix``: None when not given, () for ``none``, else the named noise sources
    (checked by detprof.stability against the sources it knows)."""
    if text is None:
        return None
    return () if text.strip().lower() == "none" else tuple(comma_parts(text))


def parse_names(text: str) -> tuple[str, ...]:
    """A list of names such as ``--gpus v100,a100``, each as typed (empty parts kept), so that the
    API can refuse one by name and quote the option as given."""
    return tuple(text.split(","))


def parse_mapping(option: str, text: str | None) -> dict[str, str]:
    """``"a=b,c=d"`` as {"a": "b", "c": "d"}."""
    if not text:
        return {}
    pairs = comma_parts(text)
    require(all(p.count("=") == 1 and p.split("=")[0] and p.split("=")[1] for p in pairs),
            f"{option} {text!r} is not accepted; use NAME=VALUE pairs separated by commas, e.g. qos=high")
    return dict(p.split("=") for p in pairs)


def parse_range(option: str, text: str) -> tuple[int, int]:
    """``--prompt-tokens 8,32`` as (8, 32); one number N as (N, N)."""
    parts = comma_parts(text)
    require(1 <= len(parts) <= 2 and all(is_whole_number(p) for p in parts),
            f"{option} {text!r} is not accepted; use MIN,MAX (or one N) as whole numbers, such as 8,32")
    return int(parts[0]), int(parts[-1])
