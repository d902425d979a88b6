"""Bitwise fingerprints of a model's state: the evidence that two trainings ended identical.

Two jobs of one mode start from the same seed and the same synthetic batch, so when the mode is
deterministic their parameters and buffers must be equal bit for bit after the same steps. A
SHA-256 over the raw bytes of every tensor of the state dict, in its order, with each tensor's
name, dtype and shape mixed in, tells that without keeping the weights.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any


def state_fingerprint(state: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a state dict's tensors: names, dtypes, shapes and raw bytes, in order.

    Equal fingerprints mean bitwise-equal states; -0.0 and 0.0, or two NaN payloads, differ."""
    import torch

    digest = hashlib.sha256()
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):  # a module's extra state: any object, by its pickle
            import pickle

            try:
                digest.update(f"{name}|extra|".encode() + pickle.dumps(value))
            except Exception:  # noqa: BLE001 - an unpicklable extra state holds nothing to compare
                pass
            continue
        tensor = value.detach()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        flat = tensor.cpu().contiguous().reshape(-1)
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
