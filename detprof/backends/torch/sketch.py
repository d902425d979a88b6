"""A count sketch of a model's parameters: SKETCH_BUCKETS float64 sums, from which the parent
estimates how far two records' weights are apart without either keeping them
(detprof.records.format.sketch_distance).

Element ``i`` of the parameters, numbered across them in their order, is added into bucket
``i mod SKETCH_BUCKETS`` with the sign ``sign_pattern()[i mod SKETCH_PERIOD]``: the top bit of
SplitMix64 of its position in the pattern (detprof.records.format.sign_pattern, which also sketches
arrays the parent holds). The sketch is linear, so the difference of two
sketches is the sketch of the weights' difference, and its squared norm estimates the squared L2
distance without bias (the distance to about 6%, one standard deviation). The pattern is built in
unsigned 64-bit numpy arithmetic, the same on every machine, so a GPU's record and a CPU's sign
each element alike. Imports torch.
"""

from __future__ import annotations

import base64
import functools

import torch
import torch.nn.functional as F

from detprof.records.format import SKETCH_BUCKETS, SKETCH_PERIOD, sign_pattern

_CHUNK = 1 << 22  # elements widened to float64 per pass: bounds the temporaries at 32 MiB


@functools.cache
def _pattern(device: str) -> torch.Tensor:
    """The sketch's signs (detprof.records.format.sign_pattern) on ``device``."""
    return torch.from_numpy(sign_pattern()).to(device)


def weight_sketch(parameters: list[torch.Tensor]) -> str:
    """The count sketch of ``parameters`` (the floating ones, as float64), as base64 of
    SKETCH_BUCKETS little-endian float64 values."""
    device = parameters[0].device if parameters else torch.device("cpu")
    pattern = _pattern(str(device))
    sums = torch.zeros(SKETCH_BUCKETS, dtype=torch.float64, device=device)
    number = 0  # the global position of the next element
    with torch.no_grad():
        for tensor in parameters:
            if not tensor.is_floating_point():
                continue
            flat = tensor.detach().reshape(-1)
            done = 0
            while done < flat.numel():
                start = (number + done) % SKETCH_PERIOD
                length = min(SKETCH_PERIOD - start, flat.numel() - done, _CHUNK)
                signed = flat[done:done + length].to(torch.float64) * pattern[start:start + length]
                lead = (number + done) % SKETCH_BUCKETS  # the bucket of the segment's first element
                signed = F.pad(signed, (lead, -(lead + length) % SKETCH_BUCKETS))
                sums += signed.view(-1, SKETCH_BUCKETS).sum(0)
                done += length
            number += flat.numel()
    return base64.b64encode(sums.cpu().numpy().astype("<f8").tobytes()).decode("ascii")
