"""The prompts an inference grid decodes: seeded random token ids of mixed lengths, or a user's file
of token ids. Made in the parent (numpy only), so that every process decodes the same ids and the
document can say what they were."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from detprof.errors import ArgumentError, require

MAX_PROMPTS = 256
MAX_PROMPT_TOKENS = 4096


def random_prompts(count: int, shortest: int, longest: int, vocab: int, seed: int) -> tuple[tuple[int, ...], ...]:
    """``count`` prompts of ``shortest`` to ``longest`` tokens (each length drawn uniformly), ids
    drawn uniformly from 1 to ``vocab`` - 1 (0 is the pad id), all from ``seed``."""
    generator = np.random.default_rng(seed)
    lengths = generator.integers(shortest, longest + 1, size=count)
    return tuple(tuple(int(t) for t in generator.integers(1, vocab, size=int(n))) for n in lengths)


def read_prompts(path: str, vocab: int) -> tuple[tuple[int, ...], ...]:
    """Prompts from a file of token ids: a JSON list of lists, or JSON Lines of lists (one prompt a
    line). ArgumentError naming the file and what is wrong (not a list of ids, an id outside the
    vocabulary, an empty prompt, too many)."""
    file = Path(path)
    require(file.is_file(), f"--prompts-file {path!r} is not a file")
    text = file.read_text(encoding="utf-8", errors="replace").strip()
    try:
        data = json.loads(text) if text.startswith("[[") or text == "[]" else \
            [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as error:
        raise ArgumentError(f"--prompts-file {path!r} is not JSON ({error.msg}, line {error.lineno}); use a "
                            f"list of lists of token ids, or one list a line") from None
    require(isinstance(data, list) and bool(data) and all(isinstance(p, list) and p for p in data),
            f"--prompts-file {path!r} holds no prompts; use a list of non-empty lists of token ids")
    require(len(data) <= MAX_PROMPTS, f"--prompts-file {path!r} holds {len(data)} prompts; at most {MAX_PROMPTS}")
    for number, prompt in enumerate(data, 1):
        bad = next((t for t in prompt if type(t) is not int or not 0 <= t < vocab), None)
        require(bad is None, f"--prompts-file {path!r}: prompt {number} has {bad!r}, not a token id from 0 to "
                             f"{vocab - 1}")
        require(len(prompt) <= MAX_PROMPT_TOKENS,
                f"--prompts-file {path!r}: prompt {number} has {len(prompt)} tokens; at most {MAX_PROMPT_TOKENS}")
    return tuple(tuple(p) for p in data)
