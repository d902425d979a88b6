"""Greedy decoding of a list of prompts under one DecodeSettings, written so that each factor of
the invariance grid is one field: the batch a prompt shares and its position there, the side and
amount of padding, the KV cache on or off, the prompt prefilled whole or in chunks.

Each prompt's sequence is laid out with its pads (masked out, position ids counting real tokens
only, as ``generate`` does for left padding); a new token goes after everything so far, and the
logits it is chosen from are read at that prompt's last real position. The KV cache is the
model's own (a ``DynamicCache`` filled by its forward).

A shared prefix goes before every prompt: recomputed, it is simply part of each prompt; reused, it
is run once, alone, before the first batch, and each batch starts from a copy of its cache
repeated to the batch's size (as a server's prefix cache serves it), then prefills only the
prompts' own tokens, padded after the prefix.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from detprof.backends.torch.inference.locate import ProbeAt
from detprof.backends.torch.inference.models import cache_keyword, keeps_last_logits
from detprof.infer.spec import DecodeSettings


@dataclass
class Decoded:
    """Every prompt's ``tokens`` (prompts x new tokens) and the float32 ``logits`` each was chosen
    from (prompts x new tokens x vocabulary), in the prompts' own order; the seconds spent in
    prefill and in the decoding steps after it, summed over batches, and each decoding step's
    seconds (every batch's, in order)."""

    tokens: np.ndarray
    logits: np.ndarray
    prefill_s: float
    decode_s: float
    step_s: list[float]


def batches_of(count: int, settings: DecodeSettings) -> list[list[int]]:
    """The prompts' indices in their batches: consecutive groups of ``batch_size``, each reversed
    when ``reverse_order``."""
    groups = [list(range(start, min(start + settings.batch_size, count)))
              for start in range(0, count, settings.batch_size)]
    return [group[::-1] for group in groups] if settings.reverse_order else groups


def _layout(prompts: list[tuple[int, ...]], settings: DecodeSettings, pad: int,
            device: torch.device) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """(token ids, attention mask, each prompt's last real column) of a batch padded to its longest
    prompt plus ``extra_padding``, on ``settings.padding_side``."""
    width = max(len(p) for p in prompts) + settings.extra_padding
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    last = []
    for row, prompt in enumerate(prompts):
        start = width - len(prompt) if settings.padding_side == "left" else 0
        ids[row, start:start + len(prompt)] = torch.tensor(prompt, dtype=torch.long)
        mask[row, start:start + len(prompt)] = 1
        last.append(start + len(prompt) - 1)
    return ids.to(device), mask.to(device), last


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids counting real tokens only (pads take 0 or their predecessor's: they are masked)."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def _forward(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor,
             cache: object | None, last_only: bool = False) -> tuple[torch.Tensor, object | None]:
    """(logits, the cache after) of one forward; no cache is kept when ``cache`` is None.
    ``last_only``: only the last column's logits are needed, so a model that takes ``logits_to_keep``
    is given 1, as Hugging Face's ``generate`` gives it (its output projection then runs on one row a
    prompt, and that row's bits can differ from the same row computed among all of them)."""
    keyword = cache_keyword(model)
    arguments = {"input_ids": ids, "attention_mask": mask, "position_ids": positions, "use_cache": cache is not None}
    if cache is not None:
        arguments[keyword] = cache
    if last_only and keeps_last_logits(model):
        arguments["logits_to_keep"] = 1
    out = model(**arguments)
    return out.logits, (getattr(out, keyword, None) if cache is not None else None)


def _new_cache(model: nn.Module) -> object:
    """An empty Hugging Face cache for ``model`` (sized by its config where it has one)."""
    from transformers import DynamicCache

    config = getattr(model, "config", None)
    try:
        return DynamicCache(config=config) if config is not None else DynamicCache()
    except TypeError:  # transformers 4.x: no config argument
        return DynamicCache()


def _now(device: torch.device) -> float:
    """perf_counter once the device's queued work is done (a GPU's kernels run asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def _choose(logits: torch.Tensor, settings: DecodeSettings, uniforms: list[float] | None) -> torch.Tensor:
    """Each row's next token: the argmax, or at a temperature the token whose cumulative probability
    first passes the row's uniform (inverse CDF, in float64 on the host, one row at a time, so a
    token depends on its own row's logits alone, never on the batch)."""
    if not settings.temperature:
        return logits.argmax(-1)
    assert uniforms is not None
    chosen = []
    for row, uniform in zip(logits.double().cpu().numpy(), uniforms, strict=True):
        scaled = row / settings.temperature
        weights = np.exp(scaled - scaled.max())
        cumulative = np.cumsum(weights)
        chosen.append(min(int(np.searchsorted(cumulative, uniform * cumulative[-1], side="right")), len(row) - 1))
    return torch.tensor(chosen, device=logits.device)


@dataclass
class SharedPrefix:
    """A prefix's token ids and the KV cache of one forward over them alone (batch 1)."""

    tokens: tuple[int, ...]
    cache: object


def prefill_prefix(model: nn.Module, tokens: tuple[int, ...], device: torch.device) -> SharedPrefix:
    """The KV cache of ``tokens`` run alone, once, with positions 0 to len - 1."""
    ids = torch.tensor([tokens], dtype=torch.long, device=device)
    with torch.no_grad():
        _, cache = _forward(model, ids, torch.ones_like(ids), torch.arange(len(tokens), device=device)[None],
                            _new_cache(model))
    return SharedPrefix(tokens, cache)


def _after_prefix(ids: torch.Tensor, mask: torch.Tensor, last: list[int], shared: SharedPrefix
                  ) -> tuple[torch.Tensor, torch.Tensor, list[int], object]:
    """A batch's (ids, mask, last columns) with the shared prefix's columns put before them, and a
    copy of its cache repeated to the batch's size."""
    rows, width = ids.shape[0], len(shared.tokens)
    prefix = torch.tensor([shared.tokens] * rows, dtype=ids.dtype, device=ids.device)
    cache = copy.deepcopy(shared.cache)
    if rows > 1:
        cache.batch_repeat_interleave(rows)  # type: ignore[attr-defined]
    return (torch.cat([prefix, ids], dim=1), torch.cat([torch.ones_like(prefix), mask], dim=1),
            [column + width for column in last], cache)


def decode_batch(model: nn.Module, prompts: list[tuple[int, ...]], new_tokens: int, settings: DecodeSettings,
                 pad: int, device: torch.device, uniforms: list[tuple[float, ...]] | None = None,
                 probe: tuple[ProbeAt, int] | None = None,
                 shared: SharedPrefix | None = None) -> tuple[np.ndarray, np.ndarray, float, list[float]]:
    """(tokens, float32 logits, prefill s, each decoding step's s) of one batch decoded greedily, or
    sampled from ``uniforms`` (per prompt, per step) at the settings' temperature. ``probe``: a
    ProbeAt and the prompt's row in this batch, armed for the one forward that computes that step
    of that row. ``shared``: a prefix already in a cache, which the batch starts from (its prompts
    prefilled after it)."""

    def armed(step: int, column: int, tokens: int) -> bool:
        if probe is None or probe[0].step != step:
            return False
        probe[0].probe.arm(probe[1], column, len(prompts), tokens)
        return True
    ids, mask, last = _layout(prompts, settings, pad, device)
    rows = torch.arange(len(prompts), device=device)
    started = _now(device)
    with torch.no_grad():
        if settings.kv_cache:
            cache: object | None = _new_cache(model)
            start = 0
            if shared is not None:
                ids, mask, last, cache = _after_prefix(ids, mask, last, shared)
                start = len(shared.tokens)
            chunk = settings.prefill_chunk or ids.shape[1]
            positions = _positions(mask)
            at_last: dict[int, torch.Tensor] = {}  # each prompt's logits at its last real column
            for begin in range(start, ids.shape[1], chunk):
                end = min(begin + chunk, ids.shape[1])
                watching = probe is not None and begin <= last[probe[1]] < end and \
                    armed(0, last[probe[1]] - begin, end - begin)
                # only the final column's logits are read when every prompt ending here ends there
                last_only = all(column == end - 1 for column in last if begin <= column < end)
                step_logits, cache = _forward(model, ids[:, begin:end], mask[:, :end], positions[:, begin:end], cache,
                                              last_only)
                if watching and probe is not None:
                    probe[0].probe.disarm()
                for row, column in enumerate(last):
                    if begin <= column < end:
                        at_last[row] = step_logits[row, column - end].float()
            first = torch.stack([at_last[row] for row in range(len(prompts))])
        else:
            if shared is not None:
                raise ValueError("a reused prefix needs the KV cache")
            cache = None
            watching = probe is not None and armed(0, last[probe[1]], ids.shape[1])
            last_only = all(column == ids.shape[1] - 1 for column in last)
            step_logits, _ = _forward(model, ids, mask, _positions(mask), None, last_only)
            if watching and probe is not None:
                probe[0].probe.disarm()
            first = step_logits[rows, torch.tensor(last, device=device) - ids.shape[1]].float()
        prefilled = _now(device)
        current = first

        def at_step(step: int) -> list[float] | None:
            return [row[step] for row in uniforms] if uniforms is not None else None

        chosen = _choose(current, settings, at_step(0))
        logits = [current]
        tokens = [chosen]
        steps: list[float] = []
        for step in range(1, new_tokens):
            step_started = _now(device)
            ids = torch.cat([ids, chosen[:, None]], dim=1)
            mask = torch.cat([mask, torch.ones_like(chosen)[:, None]], dim=1)
            positions = _positions(mask)
            watching = armed(step, 0, 1) if settings.kv_cache else armed(step, ids.shape[1] - 1, ids.shape[1])
            if settings.kv_cache:
                step_logits, cache = _forward(model, ids[:, -1:], mask, positions[:, -1:], cache, last_only=True)
            else:
                step_logits, _ = _forward(model, ids, mask, positions, None, last_only=True)
            if watching and probe is not None:
                probe[0].probe.disarm()
            current = step_logits[:, -1].float()
            chosen = _choose(current, settings, at_step(step))
            logits.append(current)
            tokens.append(chosen)
            steps.append(_now(device) - step_started)
    return (torch.stack(tokens, dim=1).cpu().numpy(), torch.stack(logits, dim=1).cpu().numpy(),
            prefilled - started, steps)


def score_batch(model: nn.Module, prompts: list[tuple[int, ...]], continuations: list[tuple[int, ...]],
                settings: DecodeSettings, pad: int, device: torch.device) -> tuple[np.ndarray, float]:
    """(float32 logits that predicted each continuation token, forward s) of one batch scored
    teacher-forced: each prompt and its continuation but the last token, one forward, no cache."""
    sequences = [tuple(prompt) + tuple(continuation[:-1]) for prompt, continuation in zip(prompts, continuations,
                                                                                          strict=True)]
    ids, mask, last = _layout(sequences, settings, pad, device)
    steps = len(continuations[0])
    started = _now(device)
    with torch.no_grad():
        step_logits, _ = _forward(model, ids, mask, _positions(mask), None)
        columns = torch.tensor([[column - (steps - 1) + t for t in range(steps)] for column in last], device=device)
        chosen = step_logits[torch.arange(len(sequences), device=device)[:, None], columns].float()
    return chosen.cpu().numpy(), _now(device) - started


def score(model: nn.Module, prompts: tuple[tuple[int, ...], ...], continuations: tuple[tuple[int, ...], ...],
          settings: DecodeSettings, pad: int, device: torch.device) -> Decoded:
    """Every prompt's continuation scored teacher-forced in batches of ``settings.batch_size`` (a
    trainer's log-prob pass): the continuations as tokens, the logits that predicted them."""
    logits: list[np.ndarray | None] = [None] * len(prompts)
    seconds = 0.0
    for group in batches_of(len(prompts), settings):
        got, spent = score_batch(model, [prompts[i] for i in group], [continuations[i] for i in group], settings,
                                 pad, device)
        seconds += spent
        for row, index in enumerate(group):
            logits[index] = got[row]
    return Decoded(np.asarray(continuations, dtype=np.int64), np.stack(logits), seconds, 0.0, [])  # type: ignore[arg-type]


def decode(model: nn.Module, prompts: tuple[tuple[int, ...], ...], new_tokens: int, settings: DecodeSettings,
           pad: int, device: torch.device, uniforms: tuple[tuple[float, ...], ...] = (),
           probe: ProbeAt | None = None, prefix: tuple[int, ...] = ()) -> Decoded:
    """Every prompt decoded for ``new_tokens`` tokens under ``settings`` (see Decoded): greedily, or
    sampled from ``uniforms`` (per prompt, per step) at the settings' temperature. With ``probe``,
    only the batch holding its prompt is decoded, up to its step, with the probe armed there.
    ``prefix``: the shared prefix, put before every prompt when the settings' prefix is not
    "none" (see the module docstring); the prefix's own run counts as prefill."""
    shared: SharedPrefix | None = None
    prefill_s = 0.0
    if settings.prefix != "none" and not prefix:
        raise ValueError(f"settings with a {settings.prefix} prefix, but the spec has no shared prefix")
    if settings.prefix == "recomputed":
        prompts = tuple(tuple(prefix) + tuple(prompt) for prompt in prompts)
    elif settings.prefix == "reused":
        started = _now(device)
        shared = prefill_prefix(model, prefix, device)
        prefill_s = _now(device) - started
    tokens: list[np.ndarray | None] = [None] * len(prompts)
    logits: list[np.ndarray | None] = [None] * len(prompts)
    step_s: list[float] = []
    groups = batches_of(len(prompts), settings)
    if probe is not None:
        groups = [group for group in groups if probe.prompt in group]
        new_tokens = probe.step + 1
    for group in groups:
        got_tokens, got_logits, prefill, steps = decode_batch(
            model, [prompts[i] for i in group], new_tokens, settings, pad, device,
            [uniforms[i] for i in group] if settings.temperature else None,
            (probe, group.index(probe.prompt)) if probe is not None else None, shared)
        prefill_s += prefill
        step_s += steps
        for row, index in enumerate(group):
            tokens[index], logits[index] = got_tokens[row], got_logits[row]
    if probe is not None:  # one batch only: its rows, in the group's order
        kept = [i for i in range(len(prompts)) if tokens[i] is not None]
        tokens, logits = [tokens[i] for i in kept], [logits[i] for i in kept]
    return Decoded(np.stack(tokens), np.stack(logits), prefill_s, sum(step_s), step_s)  # type: ignore[arg-type]
