"""The rows of the inference grid, declared once: each changes one factor of greedy decoding against
a baseline (the reference configuration unless the row says otherwise) and asks whether a prompt's
continuation and logits stay bitwise the same. A row is a name, its question, its baseline, and the
configurations it compares with that baseline, built from the grid's options.

Adding a row: a ``Row`` here, and, when it needs a factor DecodeSettings does not have yet, that
field and what detprof.backends.torch.inference.decode does with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from detprof.infer.spec import DecodeSettings

REFERENCE = DecodeSettings()


@dataclass(frozen=True)
class GridOptions:
    """What the rows are built from: the batch sizes compared with a prompt alone, the extra pad
    tokens, the prefill chunk, the dtypes compared with float32, the attention implementations
    compared with SDPA, the other CPU thread count, and the shared prefix's tokens."""

    batch_sizes: tuple[int, ...] = (4, 8)
    padding: int = 8
    prefill_chunk: int = 8
    dtypes: tuple[str, ...] = ("bfloat16",)
    attentions: tuple[str, ...] = ("eager",)
    threads: int | None = 2  # None: the row cannot run (one CPU)
    shared_prefix: int = 16


@dataclass(frozen=True)
class Row:
    """One factor (see the module docstring). ``fresh_process``: its configurations run in a
    process of their own, started after the reference's (the run-to-run row). ``default``: run
    when no rows are named (a row that takes minutes, such as compiling the model, is asked for).
    ``device``: "cpu" or "gpu" for a row whose factor exists on that kind of device only (it is
    left out elsewhere, and the document says so)."""

    name: str
    question: str
    configurations: Callable[[GridOptions], list[DecodeSettings]]
    baseline: Callable[[GridOptions], DecodeSettings] = lambda options: REFERENCE
    fresh_process: bool = False
    default: bool = True
    device: str | None = None

    def runs_on(self, on_gpu: bool) -> bool:
        """Whether the row's factor exists on this kind of device."""
        return self.device is None or self.device == ("gpu" if on_gpu else "cpu")


def _largest_batch(options: GridOptions) -> DecodeSettings:
    return DecodeSettings(batch_size=max(options.batch_sizes))


ROWS: tuple[Row, ...] = (
    Row("run", "the same configuration again, in a new process", lambda o: [REFERENCE], fresh_process=True),
    Row("batch", "each prompt in a batch of B instead of alone",
        lambda o: [DecodeSettings(batch_size=b) for b in o.batch_sizes]),
    Row("position", "each prompt at another position of the same batch (the batch reversed)",
        lambda o: [DecodeSettings(batch_size=max(o.batch_sizes), reverse_order=True)], baseline=_largest_batch),
    Row("padding", "pad tokens added before (left) or after (right) each prompt, masked out",
        lambda o: [DecodeSettings(extra_padding=o.padding),
                   DecodeSettings(padding_side="right", extra_padding=o.padding)]),
    Row("kv-cache", "no KV cache: every new token recomputes the whole sequence",
        lambda o: [DecodeSettings(kv_cache=False)]),
    Row("chunked-prefill", "the prompt prefilled in chunks through the KV cache instead of at once",
        lambda o: [DecodeSettings(prefill_chunk=o.prefill_chunk)]),
    Row("prefix-reuse", "a shared prefix's KV cache computed once, alone, and reused for every prompt, instead of "
                        "recomputed in each prompt's prefill",
        lambda o: [DecodeSettings(prefix="reused")], baseline=lambda o: DecodeSettings(prefix="recomputed")),
    Row("attention", "another attention implementation (Hugging Face attn_implementation)",
        lambda o: [DecodeSettings(attention=a) for a in o.attentions]),
    Row("dtype", "the model in another dtype (its logits compared as float32)",
        lambda o: [DecodeSettings(dtype=d) for d in o.dtypes]),
    Row("threads", "another CPU intra-op thread count",
        lambda o: [DecodeSettings(threads=o.threads)] if o.threads else [], device="cpu"),
    Row("tf32", "TF32 for float32 matrix products and convolutions (cuBLAS and cuDNN), against PyTorch's default",
        lambda o: [DecodeSettings(tf32=True)], device="gpu"),
    Row("compile", "the model compiled with torch.compile (dynamic shapes) instead of run eagerly",
        lambda o: [DecodeSettings(compiled=True)], default=False),
)
ROW_BY_NAME = {row.name: row for row in ROWS}
ROW_NAMES = tuple(ROW_BY_NAME)
DEFAULT_ROWS = tuple(row.name for row in ROWS if row.default)
