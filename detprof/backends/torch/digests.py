"""Digests of tensors: what two runs compare step by step and op by op, without keeping the tensors.

``host`` hashes a tensor's bytes with BLAKE2b on the CPU; ``device`` reduces its 32-bit words with
two position-weighted sums where the tensor lives (a GPU tensor is not copied off the device), so
that both runs of a check hash alike on any device (DIGEST_SCHEMES). Imports torch.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch

MASK64 = (1 << 64) - 1
DIGEST_CHUNK = 1 << 22  # 32-bit words reduced per pass: bounds the temporaries at 32 MiB of int64 each
# Odd multipliers and offsets of the two position weights (the 64-bit golden ratio and two others).
WEIGHTS = ((0x9E3779B97F4A7C15, 0x632BE59BD9B4E019), (0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9))
_chunk_weights: dict[str, torch.Tensor] = {}


def _signed(value: int) -> int:
    """An integer modulo 2**64 as the int64 torch computes with."""
    value &= MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


def _weights(device: torch.device) -> torch.Tensor:
    """[2, DIGEST_CHUNK] int64 on ``device``: (index * K + C) | 1 for each pair of WEIGHTS (odd, so
    that a change in any single word always changes the sum modulo 2**64)."""
    key = str(device)
    if key not in _chunk_weights:
        index = torch.arange(DIGEST_CHUNK, dtype=torch.int64, device=device)
        _chunk_weights[key] = torch.stack([(index * _signed(k) + _signed(c)) | 1 for k, c in WEIGHTS])
    return _chunk_weights[key]


def _words(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor's raw bytes as int32 words (zero-padded to a multiple of 4 bytes), on its device."""
    flat = tensor.detach().contiguous().reshape(-1)
    raw = flat.view(torch.uint8)
    pad = (-raw.numel()) % 4
    if pad:
        raw = torch.cat([raw, raw.new_zeros(pad)])
    try:
        return raw.view(torch.int32)
    except RuntimeError:  # a view whose offset is not 4-byte aligned
        return raw.clone().view(torch.int32)


def device_digest(tensor: torch.Tensor) -> torch.Tensor | None:
    """Two int64 values, computed where the tensor lives (nothing is copied to the host): sums,
    modulo 2**64, of the tensor's 32-bit words and of their squares, each word weighted by an odd
    function of its position. Integer sums are exact in any order, so the digest is itself
    deterministic on every device. None for a tensor without readable data (sparse, meta, quantized)."""
    if tensor.is_sparse or tensor.device.type == "meta" or tensor.is_quantized:
        return None
    with torch.no_grad():
        words = _words(tensor)
        total = torch.zeros(2, dtype=torch.int64, device=words.device)
        if words.numel() == 0:
            return total
        weights = _weights(words.device)
        for start in range(0, words.numel(), DIGEST_CHUNK):
            part = words[start:start + DIGEST_CHUNK].to(torch.int64)
            squares = part * part
            n = part.numel()
            # weight(start + j) = weights[j] + start * K, so the shift is added once per chunk
            total[0] += (part * weights[0, :n]).sum() + _signed(start * WEIGHTS[0][0]) * part.sum()
            total[1] += (squares * weights[1, :n]).sum() + _signed(start * WEIGHTS[1][0]) * squares.sum()
        return total


def digest_prefix(tensor: torch.Tensor) -> str:
    return f"{str(tensor.dtype).removeprefix('torch.')}{tuple(tensor.shape)}"


def format_digest(prefix: str, values: list[int] | None) -> str:
    """``float32(8, 3)#0123...`` : dtype, shape and the 128-bit digest in hex (dtype and shape alone
    when the tensor had no readable data)."""
    if values is None:
        return prefix
    return prefix + "#" + "".join(f"{value & MASK64:016x}" for value in values)


# How tensors are hashed. ``host``: BLAKE2b of the raw bytes, for tensors in host memory (on a CPU
# it is about 4x faster than the device reduction: 0.12 s against 0.46 s for 64 MiB here,
# benchmarks/locate_op_cost.py). ``device``: device_digest, so that nothing but 16 bytes per tensor
# leaves a GPU. The two give different strings, so both sides of one comparison use the same:
# ``device`` whenever either side runs on a GPU.
DIGEST_SCHEMES = ("host", "device")


def host_digest(tensor: torch.Tensor) -> str:
    """BLAKE2b (128 bits, hex) of a tensor's dtype, shape and raw bytes, read in host memory."""
    digest = hashlib.blake2b(f"{tensor.dtype}|{tuple(tensor.shape)}|".encode(), digest_size=16)
    if tensor.is_sparse or tensor.device.type == "meta" or tensor.is_quantized:
        return digest.hexdigest()
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.hexdigest()


def tensor_digests(tensors: list[torch.Tensor], scheme: str = "device") -> list[str]:
    """The digests of many tensors. ``device``: computed on their devices and copied to the host once
    per device; ``host``: BLAKE2b of their bytes (see DIGEST_SCHEMES)."""
    if scheme == "host":
        return [host_digest(t) for t in tensors]
    pending = [device_digest(t) for t in tensors]
    return resolve_digests([digest_prefix(t) for t in tensors], pending)


def resolve_digests(prefixes: list[str], pending: list[torch.Tensor | None]) -> list[str]:
    """Turn device digests into strings: one stack and one copy per device, not one per tensor."""
    values: list[list[int] | None] = [None] * len(pending)
    by_device: dict[str, list[int]] = {}
    for index, digest in enumerate(pending):
        if digest is not None:
            by_device.setdefault(str(digest.device), []).append(index)
    for indices in by_device.values():
        host = torch.stack([pending[i] for i in indices]).cpu().tolist()  # type: ignore[misc]
        for index, pair in zip(indices, host, strict=True):
            values[index] = pair
    return [format_digest(prefix, value) for prefix, value in zip(prefixes, values, strict=True)]


def tensor_digest(tensor: torch.Tensor, scheme: str = "device") -> str:
    """One tensor's digest as a string (see DIGEST_SCHEMES)."""
    return tensor_digests([tensor], scheme)[0]


def one_ulp_control(parameters: list[torch.Tensor], names: list[str], scheme: str) -> dict[str, Any] | None:
    """The digests of ``parameters`` (named ``names``) with one element of the first floating-point
    one moved by one ulp (to the next representable value), hashed as the run's own are: the
    check's sensitivity control at step 1 (detprof.check.compare.sensitivity). None when there is
    no floating-point parameter."""
    index = next((i for i, p in enumerate(parameters) if p.is_floating_point() and p.numel() > 0), None)
    if index is None:
        return None
    with torch.no_grad():
        nudged = parameters[index].detach().clone()
        flat = nudged.view(-1)
        flat[0] = torch.nextafter(flat[0], torch.tensor(float("inf"), dtype=flat.dtype, device=flat.device))
    tensors = [nudged if i == index else p for i, p in enumerate(parameters)]
    return {"parameter": names[index], "params": tensor_digests(tensors, scheme)}
