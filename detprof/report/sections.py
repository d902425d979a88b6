"""The report's sections: the key each has in ``report --json`` (``sections``), its heading on the
page, and the short name the command line's summary gives it. One table for the page and the
summary, importable without plotly or pandas."""

from __future__ import annotations

from typing import NamedTuple


class Section(NamedTuple):
    key: str
    title: str  # the page's heading
    short: str  # the command line's summary


SECTIONS = (
    Section("figure_9a", "Overhead per network (paper Figure 9a)", "overhead per network"),
    Section("figure_9b", "Overhead against kernel size (paper Figure 9b)", "overhead against kernel size"),
    Section("frameworks", "PyTorch against TensorFlow", "PyTorch against TensorFlow"),
    Section("ablation", "Ablation: each switch of the deterministic mode on its own", "ablation"),
    Section("figure_8", "Top-20 kernels, default against deterministic (paper Figure 8)", "top-20 kernels"),
    Section("stability", "Stability: how much trained models differ (paper Figures 2 and 3)", "stability"),
    Section("subgroups", "Subgroup spread (paper Figure 4)", "subgroup spread"),
    Section("per_class", "Per-class spread (paper Figure 5)", "per-class spread"),
    Section("kernel_diff", "Kernel diff", "kernel diff"),
    Section("reproducibility", "Reproducibility: check, audit, advise, infer, record and compare verdicts",
            "reproducibility verdicts"),
    Section("inference_grid", "Inference: is greedy decoding batch invariant, row by row", "inference grid"),
    Section("inference_cost", "Inference: what batch invariance and determinism cost", "inference cost"),
    Section("sampler_trainer", "Inference: sampler against trainer log-probs", "sampler against trainer"),
    Section("paper", "The paper's published figures", "the paper's figures"),
    Section("environment", "Runs: environment and command", "runs and their environment"),
)
TITLES = {section.key: section.title for section in SECTIONS}
SHORT_NAMES = {section.key: section.short for section in SECTIONS}
