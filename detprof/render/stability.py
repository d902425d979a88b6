"""Stability documents for people: how much N trained models differ (churn, L2, per-class and
subgroup spread), with 95% CIs."""

from __future__ import annotations

from typing import Any, cast

from rich.console import Console

from detprof.documents import StabilityDocument
from detprof.render.console import out
from detprof.render.tables import grid
from detprof.stability.measures import MIN_RUNS_FOR_CI, format_small


def _epochs(s: StabilityDocument) -> str:
    """", 5 epochs (the recipe has 40)" when --epochs overrode the task's recipe; the epochs otherwise."""
    from detprof.stability.recipes import recipe_epochs

    epochs = (s.get("recipe") or {}).get("epochs")
    if epochs is None:
        return ""
    usual = recipe_epochs(s["task"])
    return f", {epochs} epochs" + (f" (the recipe has {usual})" if usual is not None and usual != epochs else "")


def _measures(s: StabilityDocument) -> list[list[str]]:
    by_name = cast(dict[str, Any], s)  # the CIs are read by the name of their measure

    def ci(key: str, scale: float = 1.0, digits: int = 2) -> str:
        low_high = by_name.get(f"{key}_ci")
        return "" if not low_high else f" ({low_high[0] * scale:.{digits}f}-{low_high[1] * scale:.{digits}f})"

    pct = 100.0
    rows = [["accuracy mean", f"{s['accuracy_mean'] * pct:.2f}%{ci('accuracy_mean', pct)}"]]
    churn = s.get("churn")
    if churn is not None:
        l2_ci = s.get("l2_ci")
        ratio = s["per_class_std_ratio_max"]
        rows += [["accuracy std (ddof=1)", f"{s['accuracy_std'] * pct:.3f} pp"],
                 ["churn (mean over pairs)", f"{churn * pct:.2f}%{ci('churn', pct)}"],
                 ["L2 of unit weights (mean over pairs)", format_small(s["l2"])
                  + (f" ({format_small(l2_ci[0])}-{format_small(l2_ci[1])})" if l2_ci else "")],
                 ["largest per-class accuracy std", f"{s['per_class_std_max'] * pct:.2f} pp"
                  + (f" ({ratio:.1f}x the overall std)" if ratio is not None else "")]]
    return rows


def stability(s: StabilityDocument, console: Console = out) -> None:
    """A stability document (``stability --json``)."""
    target = f", target {s['target']}" if s.get("target") else ""
    epochs = _epochs(s)
    console.print(grid(f"{s['task']}{target}, variant {s['variant']} ({s['description']}; mode {s['mode']}) on "
                       f"{s['device']}: {s['runs']} runs{epochs}, {s['test_examples']} test examples",
                       ["measure", "value (95% CI)"], _measures(s), text={0}, console=console))
    if s["runs"] < MIN_RUNS_FOR_CI:
        console.print(f"no CIs: {s['runs']} run(s) make at most one pair, which a bootstrap cannot resample into an "
                      f"interval; {MIN_RUNS_FOR_CI} or more runs give one", highlight=False)
    training_counts = s.get("training_counts")
    if training_counts:
        counts = [[row["group"], f"{row['positive']:,}", f"{row['negative']:,}",
                   "—" if row["positive_fraction"] is None else f"{100 * row['positive_fraction']:.1f}%"]
                  for row in training_counts]
        console.print(grid(f"training split, {s['target']} (paper Table 3)",
                           ["group", "positive", "negative", "positive share"], counts, console=console))
    if s.get("subgroups"):
        pooled = ", attributes pooled" if s.get("target") == "all" else ""
        groups = [[g["group"], str(g["examples"]), *(f"{100 * g[f'{m}_std']:.2f} pp ({g[f'{m}_std_ratio']:.2f}x)"
                                                      for m in ("accuracy", "fpr", "fnr"))] for g in s["subgroups"]]
        console.print(grid(f"subgroups: std over runs in pp (ratio to All){pooled}; FNR = FN/(FN+TP) (paper Table 5)",
                           ["group", "examples", "accuracy std", "FPR std", "FNR std"], groups, console=console))
    paired = s.get("paired_with")
    if paired:
        console.print(f"paired with {paired['variant']} (same seeds, the other mode), {paired['pairs']} pairs: churn "
                      f"{100 * paired['churn']:.2f}%, L2 {format_small(paired['l2'])}, bit-identical weights in "
                      f"{paired['bitwise_identical_pairs']} of {paired['pairs']}: what implementation noise alone "
                      "changed", highlight=False)
    for failure in s["failed"]:
        console.print(f"[yellow]run {failure['run']} failed[/] (exit {failure['exitcode']}): {failure['log_tail']}")
