"""The prompts an inference grid decodes: seeded random token ids of mixed lengths, or a user's file
of token ids or of text, the text tokenized by a local tokenizer.json (Hugging Face's ``tokenizers``,
which imports no framework). Made in the parent, so that every process decodes the same ids and the
document can say what they were."""

from __future__ import annotations

import json
from dataclasses import dataclass
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


def random_prefix(tokens: int, vocab: int, seed: int) -> tuple[int, ...]:
    """A shared prefix of ``tokens`` ids from 1 to ``vocab`` - 1, from ``seed`` but a stream of its
    own (the prompts drawn from the same seed do not change when it is drawn)."""
    return tuple(int(t) for t in np.random.default_rng([seed, 1]).integers(1, vocab, size=tokens))


TEXT_SUFFIXES = (".txt",)
TOKENIZER_FILE = "tokenizer.json"


def tokenizer_file(path: str) -> Path:
    """The tokenizer.json of ``--tokenizer`` (the file, or a folder holding it); ArgumentError when
    there is none."""
    given = Path(path).expanduser()
    require(given.exists(), f"--tokenizer {path!r} does not exist; give a folder holding {TOKENIZER_FILE}, or the file")
    file = given / TOKENIZER_FILE if given.is_dir() else given
    require(file.is_file(), f"--tokenizer {path!r} holds no {TOKENIZER_FILE} (a fast tokenizer's save_pretrained "
                            f"writes one)")
    return file


def _parsed(path: str, file: Path) -> list[object]:
    """The prompts of a file as parsed: a .txt file's non-empty lines (text), else a JSON list, or
    JSON Lines (one prompt a line)."""
    text = file.read_text(encoding="utf-8", errors="replace")
    if file.suffix in TEXT_SUFFIXES:
        return [line for line in text.splitlines() if line.strip()]
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = []
        for number, line in enumerate(text.splitlines(), 1):
            try:
                data += [json.loads(line)] if line.strip() else []
            except json.JSONDecodeError as error:
                raise ArgumentError(f"--prompts-file {path!r} is not JSON ({error.msg}, line {number}); use a list "
                                    f"of lists of token ids or of strings, one a line, or a .txt file of text "
                                    f"lines") from None
    if isinstance(data, list) and data and all(type(t) is int for t in data):
        data = [data]  # JSON Lines of one prompt
    require(isinstance(data, list) and bool(data),
            f"--prompts-file {path!r} holds no prompts; use a list of non-empty lists of token ids or of strings")
    return data


def _tokenized(path: str, texts: list[str], tokenizer: str | None) -> tuple[list[list[int]], Path]:
    """(each text's token ids, the tokenizer.json that made them) from ``tokenizer`` (special tokens
    added, as a tokenizer's own call adds them); ArgumentError when there is no tokenizer or it
    cannot be read."""
    require(tokenizer is not None, f"--prompts-file {path!r} holds text; give --tokenizer (a folder holding "
                                   f"{TOKENIZER_FILE}, or the file; a --config folder's own is used when it has one), "
                                   f"or token ids")
    assert tokenizer is not None
    file = tokenizer_file(tokenizer)
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ArgumentError("text prompts are tokenized with Hugging Face's tokenizers, which is not installed "
                            "(pip install 'detprof[transformers]')") from None
    try:
        loaded = Tokenizer.from_file(str(file))
    except Exception as error:  # tokenizers raises its own Exception for a damaged file
        raise ArgumentError(f"--tokenizer {tokenizer!r}: {file.name} cannot be read ({str(error)[:200]})") from None
    return [list(loaded.encode(text, add_special_tokens=True).ids) for text in texts], file


@dataclass(frozen=True)
class PromptFile:
    """A prompts file's token ids, and the tokenizer.json its text was tokenized by (None: ids)."""

    ids: tuple[tuple[int, ...], ...]
    tokenizer: Path | None = None

    def describe(self, path: str) -> str:
        """Where the prompts came from, in words."""
        return path + (f" (text tokenized by {self.tokenizer})" if self.tokenizer else "")


def read_prompts(path: str, vocab: int, tokenizer: str | None = None) -> PromptFile:
    """Prompts from a file of token ids (a JSON list of lists, or JSON Lines of lists: one prompt a
    line) or of text (a JSON list of strings, JSON Lines of strings, or a .txt file's lines),
    the text tokenized by ``tokenizer`` (a tokenizer.json or a folder holding one). ArgumentError
    naming the file and what is wrong (not ids or text, an id outside the vocabulary, an empty
    prompt, too many, text without a tokenizer)."""
    file = Path(path)
    require(file.is_file(), f"--prompts-file {path!r} is not a file")
    data = _parsed(path, file)
    require(len(data) <= MAX_PROMPTS, f"--prompts-file {path!r} holds {len(data)} prompts; at most {MAX_PROMPTS}")
    used: Path | None = None  # the tokenizer.json of a text file
    if all(isinstance(p, str) for p in data):
        require(all(str(p).strip() for p in data), f"--prompts-file {path!r} has an empty prompt")
        ids, used = _tokenized(path, [str(p) for p in data], tokenizer)
        data = list(ids)
    require(all(isinstance(p, list) and p for p in data),
            f"--prompts-file {path!r} holds no prompts; use a list of non-empty lists of token ids or of strings")
    prompts: list[list[object]] = [p for p in data if isinstance(p, list)]
    for number, prompt in enumerate(prompts, 1):
        bad = next((t for t in prompt if type(t) is not int or not 0 <= t < vocab), None)  # type: ignore[operator]
        require(bad is None, f"--prompts-file {path!r}: prompt {number} has {bad!r}, not a token id from 0 to "
                             f"{vocab - 1}" + (" (the tokenizer's vocabulary is larger than the model's)"
                                               if used else ""))
        require(len(prompt) <= MAX_PROMPT_TOKENS,
                f"--prompts-file {path!r}: prompt {number} has {len(prompt)} tokens; at most {MAX_PROMPT_TOKENS}")
    return PromptFile(tuple(tuple(int(t) for t in p) for p in prompts), used)  # type: ignore[call-overload]
