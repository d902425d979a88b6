"""The kernel catalog: kernel-name patterns -> category and whether the algorithm is nondeterministic.

The data lives in ``kernels_db/kernel_catalog.csv`` (shipped inside the package as well, so an
installed detprof finds it); this module only reads it.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from detprof.errors import DetprofError
from detprof.kernels.names import signature

CATEGORIES = ("conv forward", "conv data-grad", "conv weight-grad", "conv backward", "gemm", "elementwise",
              "reduction", "normalization", "pooling", "memory copy/set", "fill", "optimizer", "attention", "embedding",
              "other")


class CatalogError(DetprofError, ValueError):
    """A kernel catalog row that cannot be read."""


@dataclass(frozen=True)
class CatalogEntry:
    pattern: re.Pattern[str]
    category: str
    nondeterministic: bool | None
    note: str
    # Matched against the lowercased signature instead of with re.IGNORECASE: the same answer for
    # patterns without escapes or inline flags, and about five times faster, because sre's fast
    # literal and first-character searches do not work under IGNORECASE.
    on_lowercase: bool = False


def compile_case_insensitive(pattern: str) -> tuple[re.Pattern[str], bool]:
    """Compile a catalog pattern to match regardless of case: (compiled, match it on lowercased text).

    Lowercasing the pattern would change escapes such as ``\\S`` or inline flags, so those keep
    re.IGNORECASE and are matched on the original text."""
    if "\\" in pattern or "(?" in pattern:
        return re.compile(pattern, re.IGNORECASE), False
    return re.compile(pattern.lower()), True


class KernelCatalog:
    """Classifies kernel names; first matching entry wins, unmatched names are ``other``."""

    def __init__(self, entries: list[CatalogEntry]) -> None:
        self.entries = entries
        self._cache: dict[str, tuple[str, bool | None]] = {}

    def classify(self, name: str) -> tuple[str, bool | None]:
        """Return (category, nondeterministic) for a kernel or op name; None means unknown.

        Patterns are matched against the signature (no ``void``, no parameter list), which keeps
        parameter types from deciding the category and halves the text searched."""
        hit = self._cache.get(name)
        if hit is None:
            hit = ("other", None)
            text = signature(name)
            lowered = text.lower()
            for entry in self.entries:
                if entry.pattern.search(lowered if entry.on_lowercase else text):
                    hit = (entry.category, entry.nondeterministic)
                    break
            self._cache[name] = hit
        return hit


def parse_catalog(text: str) -> KernelCatalog:
    """Parse catalog CSV text (``#`` lines are comments). Raises CatalogError on a bad row."""
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    entries = []
    for number, row in enumerate(csv.DictReader(io.StringIO("\n".join(lines))), start=2):
        category = row["category"].strip()
        if category not in CATEGORIES:
            raise CatalogError(f"catalog row {number}: category {category!r} is not one of {', '.join(CATEGORIES)}")
        flag = (row.get("nondeterministic") or "").strip().lower()
        if flag not in ("yes", "no", ""):
            raise CatalogError(f"catalog row {number}: nondeterministic must be yes, no or blank, got {flag!r}")
        pattern, on_lowercase = compile_case_insensitive(row["pattern"])
        entries.append(CatalogEntry(pattern, category, None if flag == "" else flag == "yes",
                                    (row.get("note") or "").strip(), on_lowercase))
    return KernelCatalog(entries)


def catalog_path() -> Path:
    """Path of the catalog CSV: the repository's ``kernels_db/`` or the copy packaged with detprof."""
    repo_copy = Path(__file__).resolve().parents[2] / "kernels_db" / "kernel_catalog.csv"
    if repo_copy.exists():
        return repo_copy
    return Path(str(resources.files("detprof") / "data" / "kernel_catalog.csv"))


@lru_cache(maxsize=4)
def load_catalog(path: str | None = None) -> KernelCatalog:
    """Load (and cache) the kernel catalog from ``path`` or the default location."""
    return parse_catalog(Path(path or catalog_path()).read_text())
