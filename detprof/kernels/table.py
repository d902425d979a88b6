"""Per-kernel tables: aggregate activities by name, Top-N with an "others" row, and diffs between modes.

All times in these tables are microseconds (columns end in ``_us``); ``share`` is a fraction of
the table's total (0..1).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from detprof.kernels.catalog import KernelCatalog, load_catalog

KERNEL_COLUMNS = ["name", "category", "nondeterministic", "calls", "total_us", "share", "mean_us",
                  "median_us", "min_us", "max_us", "std_us"]
OTHERS = "(others)"
_BRACKETS = re.compile(r"[<>(]")
_ANONYMOUS = "(anonymous namespace)"


def kernel_table(events: pd.DataFrame, catalog: KernelCatalog | None = None) -> pd.DataFrame:
    """One row per kernel name, sorted by total time (µs) descending.

    ``events`` needs columns ``name`` and ``dur_us``. ``total_us`` is the correctly rounded sum of
    the durations (math.fsum), ``median_us`` the mean of the two middle values for an even count,
    ``std_us`` the population standard deviation (0 for a kernel called once).
    """
    catalog = catalog or load_catalog()
    if events.empty:
        return pd.DataFrame(columns=KERNEL_COLUMNS)
    # numpy per group instead of pandas groupby.agg, which costs about 1 ms per statistic even
    # on a 100-event trace and dominated the time of a small trace's breakdown.
    codes, uniques = pd.factorize(events["name"], sort=False)
    names = np.asarray(uniques, dtype=object)  # plain array: indexing a pandas Index per element is slow
    durations = events["dur_us"].to_numpy(dtype=float)
    calls = np.bincount(codes, minlength=len(names))
    order = np.lexsort((durations, codes))  # by kernel, then by duration within a kernel
    sorted_durations = durations[order]
    starts = np.concatenate(([0], np.cumsum(calls)[:-1]))
    ends = starts + calls
    total = np.array([math.fsum(sorted_durations[a:b].tolist()) for a, b in zip(starts, ends, strict=True)])
    mean = total / calls
    squares = np.bincount(codes, weights=(durations - mean[codes]) ** 2, minlength=len(names))
    grand_total = math.fsum(total.tolist())
    # Largest total first, ties by name; sorted here so that the frame is built once, in order.
    rows = np.array(sorted(range(len(names)), key=lambda i: (-total[i], names[i])), dtype=np.intp)
    classes = [catalog.classify(name) for name in names[rows]]
    return pd.DataFrame({
        "name": names[rows],
        "category": [c for c, _ in classes],
        "nondeterministic": [n for _, n in classes],
        "calls": calls[rows].astype(int),
        "total_us": total[rows],
        "share": total[rows] / grand_total if grand_total > 0 else 0.0,
        "mean_us": mean[rows],
        "median_us": ((sorted_durations[starts + (calls - 1) // 2] + sorted_durations[starts + calls // 2]) / 2)[rows],
        "min_us": sorted_durations[starts][rows],
        "max_us": sorted_durations[ends - 1][rows],
        "std_us": np.sqrt(squares / calls)[rows],
    }, columns=KERNEL_COLUMNS)


def top_kernels(table: pd.DataFrame, top: int) -> pd.DataFrame:
    """The ``top`` rows by total time plus one ``(others)`` row for the rest (when there is a rest).

    The others row sums calls, total and share; its mean is total/calls, its min/max span the
    rest, and median/std are NaN (they do not combine).
    """
    if top <= 0 or len(table) <= top:
        return table.reset_index(drop=True)
    head, rest = table.iloc[:top], table.iloc[top:]
    calls = int(rest["calls"].sum())
    others = {
        "name": OTHERS, "category": "", "nondeterministic": None, "calls": calls,
        "total_us": float(rest["total_us"].sum()), "share": float(rest["share"].sum()),
        "mean_us": float(rest["total_us"].sum()) / calls if calls else 0.0, "median_us": np.nan,
        "min_us": float(rest["min_us"].min()), "max_us": float(rest["max_us"].max()), "std_us": np.nan,
    }
    return pd.concat([head, pd.DataFrame([others])], ignore_index=True)[KERNEL_COLUMNS]


def category_table(table: pd.DataFrame) -> pd.DataFrame:
    """Total time (µs), calls and share per category, largest first."""
    if table.empty:
        return pd.DataFrame(columns=["category", "calls", "total_us", "share"])
    grouped = table.groupby("category", as_index=False)[["calls", "total_us", "share"]].sum()
    return grouped.sort_values("total_us", ascending=False).reset_index(drop=True)


def diff_tables(baseline: pd.DataFrame, treatment: pd.DataFrame) -> pd.DataFrame:
    """Compare two kernel tables: one row per kernel in either, sorted by |change in total µs|.

    ``status`` is ``added`` (only in treatment), ``removed`` (only in baseline) or ``changed``.
    ``delta_us`` = treatment total - baseline total; shares are fractions of each side's total.
    """
    left = baseline[["name", "category", "calls", "total_us", "share"]]
    right = treatment[["name", "category", "calls", "total_us", "share"]]
    merged = left.merge(right, on="name", how="outer", suffixes=("_a", "_b"), indicator=True)
    merged["category"] = merged["category_b"].fillna(merged["category_a"])
    merged["status"] = merged["_merge"].map({"left_only": "removed", "right_only": "added", "both": "changed"})
    for column in ("calls_a", "calls_b"):
        merged[column] = merged[column].fillna(0).astype(int)
    for column in ("total_us_a", "total_us_b", "share_a", "share_b"):
        merged[column] = merged[column].fillna(0.0).astype(float)
    merged["delta_us"] = merged["total_us_b"] - merged["total_us_a"]
    merged["status"] = merged["status"].astype(str)
    merged = merged.assign(order=merged["delta_us"].abs()).sort_values(["order", "name"], ascending=[False, True])
    return merged[["name", "category", "status", "calls_a", "calls_b", "total_us_a", "total_us_b", "delta_us",
                   "share_a", "share_b"]].reset_index(drop=True)


def signature(name: str) -> str:
    """A demangled kernel name without ``void`` and without its parameter list (which repeats the
    template types and is often half the name). ``(anonymous namespace)`` is part of the name, and
    so is a parenthesis after a space, as in ``Memcpy HtoD (Pinned -> Device)``."""
    text = name[5:] if name.startswith("void ") else name
    if "(" not in text:
        return text
    depth = 0
    # Visit only the characters that matter: names run to thousands of characters.
    for match in _BRACKETS.finditer(text):
        char, index = match.group(), match.start()
        if char == "<":
            depth += 1
        elif char == ">":
            depth = max(depth - 1, 0)
        elif depth == 0 and index > 0 and text[index - 1] != " " and not text.startswith(_ANONYMOUS, index):
            return text[:index]
    return text


def short_name(name: str, width: int = 80) -> str:
    """``signature(name)`` cut to ``width`` characters, for tables."""
    text = signature(name)
    return text if len(text) <= width else text[: width - 1] + "…"
