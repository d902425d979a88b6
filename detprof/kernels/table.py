"""Per-kernel tables: aggregate activities by name, Top-N with an "others" row, and diffs between modes.

All times in these tables are microseconds (columns end in ``_us``); ``share`` is a fraction of
the table's total (0..1).

The aggregation itself is plain Python over lists (``kernel_records``, ``top_records``,
``category_records``), so that reading a trace from the command line never imports pandas or
numpy, which cost more start-up time than the work itself; ``kernel_table``, ``top_kernels`` and
``category_table`` give the same rows as DataFrames for the Python API and the store.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from detprof.kernels.catalog import KernelCatalog, load_catalog

if TYPE_CHECKING:
    import pandas as pd

KERNEL_COLUMNS = ["name", "category", "nondeterministic", "calls", "total_us", "share", "mean_us",
                  "median_us", "min_us", "max_us", "std_us"]
CATEGORY_COLUMNS = ["category", "calls", "total_us", "share"]
OTHERS = "(others)"
KernelRecord = dict[str, Any]


def kernel_records(names: Iterable[str], durations: Iterable[float],
                   catalog: KernelCatalog | None = None) -> list[KernelRecord]:
    """One record per kernel name (keys as KERNEL_COLUMNS), largest total time (µs) first, ties by name.

    ``total_us`` is the correctly rounded sum of the durations (math.fsum), ``median_us`` the mean
    of the two middle values for an even count, ``std_us`` the population standard deviation (0
    for a kernel called once).
    """
    catalog = catalog or load_catalog()
    groups: dict[str, list[float]] = {}
    for name, duration in zip(names, durations, strict=True):
        group = groups.get(name)
        if group is None:
            groups[name] = [float(duration)]
        else:
            group.append(float(duration))
    records: list[KernelRecord] = []
    for name, values in groups.items():
        values.sort()
        calls = len(values)
        total = math.fsum(values)
        mean = total / calls
        category, nondeterministic = catalog.classify(name)
        records.append({
            "name": name, "category": category, "nondeterministic": nondeterministic, "calls": calls,
            "total_us": total, "share": 0.0, "mean_us": mean,
            "median_us": (values[(calls - 1) // 2] + values[calls // 2]) / 2, "min_us": values[0],
            "max_us": values[-1], "std_us": math.sqrt(math.fsum((v - mean) ** 2 for v in values) / calls),
        })
    grand_total = math.fsum(r["total_us"] for r in records)
    for record in records:
        record["share"] = record["total_us"] / grand_total if grand_total > 0 else 0.0
    records.sort(key=lambda r: (-r["total_us"], r["name"]))
    return records


def top_records(records: Sequence[KernelRecord], top: int) -> list[KernelRecord]:
    """The ``top`` records by total time plus one ``(others)`` record for the rest (when there is one).

    The others record sums calls, total and share; its mean is total/calls, its min/max span the
    rest, and median/std are None (they do not combine).
    """
    if top <= 0 or len(records) <= top:
        return list(records)
    rest = records[top:]
    calls = sum(int(r["calls"]) for r in rest)
    total = math.fsum(float(r["total_us"]) for r in rest)
    others = {"name": OTHERS, "category": "", "nondeterministic": None, "calls": calls, "total_us": total,
              "share": math.fsum(float(r["share"]) for r in rest), "mean_us": total / calls if calls else 0.0,
              "median_us": None, "min_us": min(float(r["min_us"]) for r in rest),
              "max_us": max(float(r["max_us"]) for r in rest), "std_us": None}
    return [*records[:top], others]


def category_records(records: Sequence[KernelRecord]) -> list[KernelRecord]:
    """Total time (µs), calls and share per category, largest total first."""
    sums: dict[str, KernelRecord] = {}
    for r in records:
        entry = sums.setdefault(r["category"], {"category": r["category"], "calls": 0, "total_us": [], "share": []})
        entry["calls"] += int(r["calls"])
        entry["total_us"].append(float(r["total_us"]))
        entry["share"].append(float(r["share"]))
    rows = [{**e, "total_us": math.fsum(e["total_us"]), "share": math.fsum(e["share"])} for e in sums.values()]
    return sorted(rows, key=lambda r: -r["total_us"])


def kernel_table(events: pd.DataFrame, catalog: KernelCatalog | None = None) -> pd.DataFrame:
    """``kernel_records`` of an events frame (columns ``name`` and ``dur_us``) as a DataFrame."""
    import pandas as pd

    if events.empty:
        return pd.DataFrame(columns=KERNEL_COLUMNS)
    return pd.DataFrame(kernel_records(events["name"].tolist(), events["dur_us"].tolist(), catalog),
                        columns=KERNEL_COLUMNS)


def top_kernels(table: pd.DataFrame, top: int) -> pd.DataFrame:
    """``top_records`` of a kernel table, as a DataFrame (median/std of the others row are NaN)."""
    import pandas as pd

    rows = top_records(table.to_dict(orient="records"), top)
    return pd.DataFrame(rows, columns=KERNEL_COLUMNS).astype({"median_us": float, "std_us": float})


def category_table(table: pd.DataFrame) -> pd.DataFrame:
    """``category_records`` of a kernel table, as a DataFrame."""
    import pandas as pd

    return pd.DataFrame(category_records(table.to_dict(orient="records")), columns=CATEGORY_COLUMNS)


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


