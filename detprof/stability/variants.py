"""Noise variants of the paper's Section 2.2, and the seeds of each algorithmic source.

Implementation noise is controlled by the determinism mode; algorithmic noise by seeds. Each
algorithmic source has its own seed, so any of them can be held fixed alone (``--fix``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from detprof.errors import DetprofError

SOURCES = ("init", "shuffle", "augment", "dropout")
FIXED_SEED = 0


@dataclass(frozen=True)
class Variant:
    name: str
    mode: str  # determinism mode (detprof.modes)
    fixed: tuple[str, ...]  # algorithmic sources held fixed across runs
    description: str
    custom_fix: bool = False  # --fix replaced the variant's own choice of fixed sources

    @property
    def label(self) -> str:
        """The name shown and stored: the variant's, plus ``[fixed: ...]`` when --fix changed it, so
        that such runs are never drawn or listed as the real variant."""
        return f"{self.name}[fixed: {', '.join(self.fixed) or 'none'}]" if self.custom_fix else self.name


# Variants that share their algorithmic seeds run for run and differ only in the determinism
# mode: run i of one and run i of the other are the same training up to implementation noise.
PARTNERS = {"algo+impl": "algo", "algo": "algo+impl", "impl": "control", "control": "impl"}


VARIANTS = {
    "algo+impl": Variant("algo+impl", "default", (), "nothing controlled"),
    "algo": Variant("algo", "deterministic", (), "implementation noise removed, algorithmic seeds vary"),
    "impl": Variant("impl", "default", SOURCES, "every algorithmic seed fixed, default mode"),
    "control": Variant("control", "deterministic", SOURCES, "both controlled"),
    # The data-order experiment (paper Figures 7 and 8): only the shuffling order changes between
    # runs. At full batch the model sees the same data each step and only the summation order moves.
    "order-only": Variant("order-only", "deterministic", ("init", "augment", "dropout"),
                          "only the data order varies, deterministic mode"),
}


class VariantError(DetprofError, ValueError):
    """An unknown variant or noise source."""


def resolve_variant(name: str, fix: Sequence[str] | None = None) -> Variant:
    """The named variant, with ``fix`` (the noise sources to hold fixed; empty for none) replacing
    its fixed set when given. Raises VariantError naming an unknown variant or source."""
    if name not in VARIANTS:
        raise VariantError(f"unknown variant {name!r}; accepted: {', '.join(VARIANTS)}")
    variant = VARIANTS[name]
    if fix is None:
        return variant
    if isinstance(fix, str):  # a string is a sequence of letters: the caller meant a list of sources
        raise VariantError(f"fix takes a list of noise sources, not the text {fix!r}; accepted: {', '.join(SOURCES)}")
    sources = tuple(fix)
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise VariantError(f"unknown noise source {unknown[0]!r} in --fix; accepted: {', '.join(SOURCES)}, or none")
    fixed = tuple(s for s in SOURCES if s in sources)
    return Variant(variant.name, variant.mode, fixed, f"{variant.description}; fixed: {', '.join(fixed) or 'none'}",
                   custom_fix=True)


def source_seeds(variant: Variant, run_index: int) -> dict[str, int]:
    """Seed of each source for one run: FIXED_SEED when fixed, else distinct per run and per source.

    The seeds depend on the run index and the source, not on the variant: by design, run i of
    ``algo`` and run i of ``algo+impl`` get the same seeds (as do ``impl`` and ``control``), so the
    two are a paired comparison in which only the determinism mode differs (PARTNERS)."""
    seeds = {}
    for source in SOURCES:
        if source in variant.fixed:
            seeds[source] = FIXED_SEED
        else:
            digest = hashlib.sha256(f"{source}:{run_index}".encode()).digest()
            seeds[source] = int.from_bytes(digest[:4], "little") + 1  # never equal to FIXED_SEED
    return seeds
