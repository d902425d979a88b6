"""Plotly figures of the report, one function per paper figure. Each returns a Figure, or None
when there is no data for it (the page then says so in one line)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.colors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from detprof.kernels import short_name
from detprof.modes import ABLATION
from detprof.report.collect import MAIN_COMPARISON, TOP_KERNELS, KernelComparison

PAPER_COLOR = "#888888"


def newest_per(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The newest run of each ``keys`` group, a plain comparison over a step of another command
    (an advise candidate, an ablation switch) when the group has one."""
    ranked = rows.assign(plain=rows["part_of"].isna()).sort_values(["plain", "run_id"])
    return ranked.groupby(keys, as_index=False).last()


def _target_line(figure: go.Figure, target: float, label: str) -> None:
    """A dashed horizontal target line named in the legend, where no bar or error bar can cover it."""
    figure.add_hline(y=target, line_dash="dash", line_color="#b44")
    figure.add_scatter(x=[None], y=[None], mode="lines", line={"dash": "dash", "color": "#b44"}, name=label,
                       hoverinfo="skip")


def _error_bars(frame: pd.DataFrame) -> dict[str, Any]:
    return {"type": "data", "symmetric": False, "array": (frame["ci_high"] - frame["ratio"]).tolist(),
            "arrayminus": (frame["ratio"] - frame["ci_low"]).tolist()}


def overhead_by_network(overhead: pd.DataFrame, paper: dict[str, Any]) -> go.Figure | None:
    """Figure 9a, two panels: the deterministic/default step-time ratio per network (what a user
    pays) and its kernel-time ratio (the paper's measure, beside the paper's diamonds), one bar per
    device, 95% CI bars. A run whose kernel times do not stand for its timed steps has no kernel bar."""
    rows = overhead[(overhead["arch"] != "medium-cnn") & (overhead["comparison"] == MAIN_COMPARISON)
                    & overhead["ratio"].notna()]
    if rows.empty:
        return None
    latest = newest_per(rows, ["arch", "series"])
    measured_on = "CPU op time here" if set(latest["device_kind"]) == {"cpu"} else "GPU kernel time"
    figure = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.06,
                           subplot_titles=("step time (what training pays)",
                                           f"kernel time ({measured_on}; the paper measured GPU kernels)"))
    colors = plotly.colors.qualitative.Plotly
    for index, (device, group) in enumerate(latest.groupby("series", sort=True)):
        color = colors[index % len(colors)]
        labels = [("partial " if p else "") + ("noisy" if n else "") for n, p in zip(group["noisy"], group["partial"],
                                                                                      strict=True)]
        # The labels sit inside the bars, at their foot: outside, the error bars ran through them.
        figure.add_bar(name=str(device), x=group["arch"], y=group["ratio"], error_y=_error_bars(group), text=labels,
                       textposition="inside", insidetextanchor="start", textangle=0, marker_color=color,
                       legendgroup=str(device),
                       customdata=np.stack([group["run_id"]], axis=1),
                       hovertemplate="%{x}: x%{y:.3f} step time<br>run %{customdata[0]}"
                                     "<extra>%{fullData.name}</extra>", row=1, col=1)
        kernel = group[group["kernel_reliable"] & group["kernel_ratio"].notna()]
        kernel_ci = kernel.assign(ratio=kernel["kernel_ratio"],  # no CI (too few profiled pairs): no bar
                                  ci_high=kernel["kernel_ci_high"].fillna(kernel["kernel_ratio"]),
                                  ci_low=kernel["kernel_ci_low"].fillna(kernel["kernel_ratio"]))
        figure.add_bar(name=str(device), x=kernel["arch"], y=kernel["kernel_ratio"], error_y=_error_bars(kernel_ci),
                       marker_color=color, legendgroup=str(device), showlegend=False,
                       customdata=np.stack([kernel["run_id"]], axis=1) if len(kernel) else None,
                       hovertemplate="%{x}: x%{y:.3f} kernel time<br>run %{customdata[0]}"
                                     "<extra>%{fullData.name}</extra>", row=1, col=2)
        missing = group[~(group["kernel_reliable"] & group["kernel_ratio"].notna())]
        if len(missing):
            notes = ["kernel times<br>unreliable" if r is not None else "not profiled" for r in missing["kernel_ratio"]]
            figure.add_scatter(x=missing["arch"], y=[0.5] * len(missing), mode="text", text=notes, cliponaxis=False,
                               textposition="middle center", showlegend=False, hoverinfo="skip", row=1, col=2)
    for index, item in enumerate(paper.get("network_overhead", [])):
        figure.add_scatter(x=[item["arch"]], y=[item["kernel_ratio"]], mode="markers",
                           marker={"symbol": "diamond", "size": 11, "color": PAPER_COLOR},
                           name=f"paper: {item['gpu'].upper()} kernel time", legendgroup="paper",
                           showlegend=index == 0, row=1, col=2)
    figure.add_hline(y=1.0, line_dash="dot", line_color="#444")
    # The measured networks in the step-time panel; the kernel panel adds those only the paper has,
    # after them, rather than leaving empty step-time columns for them.
    measured = sorted(latest["arch"].unique())
    paper_only = [a for a in dict.fromkeys(i["arch"] for i in paper.get("network_overhead", []))
                  if a not in set(measured)]
    figure.update_xaxes(categoryorder="array", categoryarray=measured, row=1, col=1)
    figure.update_xaxes(categoryorder="array", categoryarray=measured + paper_only, row=1, col=2)
    figure.update_layout(barmode="group", title="Overhead of deterministic training per network (deterministic / "
                         "default, 95% CI)", yaxis_title="ratio")
    return figure


def overhead_by_kernel_size(overhead: pd.DataFrame, paper: dict[str, Any]) -> go.Figure | None:
    """Figure 9b: medium CNN ratio against convolution kernel size, one line per device."""
    rows = overhead[(overhead["arch"] == "medium-cnn") & (overhead["comparison"] == MAIN_COMPARISON)
                    & overhead["ratio"].notna()]
    if rows.empty:
        return None
    latest = newest_per(rows, ["kernel_size", "series"])
    figure = go.Figure()
    for device, group in latest.groupby("series", sort=True):
        group = group.sort_values("kernel_size")
        figure.add_scatter(x=group["kernel_size"], y=group["ratio"], error_y=_error_bars(group),
                           mode="lines+markers", name=str(device))
    for item in paper.get("medium_cnn_kernel_size_ranges", []):
        figure.add_scatter(x=item["kernel_sizes"], y=[item["low"], item["high"]], mode="lines+markers",
                           line={"dash": "dot", "color": PAPER_COLOR}, name=f"paper: {item['gpu'].upper()} (k=1, k=7)")
    figure.add_hline(y=1.0, line_dash="dot", line_color="#444")
    figure.update_layout(title="Medium CNN: overhead against kernel size (step time, deterministic / default)",
                         xaxis={"title": "kernel size", "dtick": 1}, yaxis_title="ratio")
    return figure


def framework_comparison(overhead: pd.DataFrame) -> go.Figure | None:
    """PyTorch against TensorFlow: the deterministic/default step-time ratio of each network (and
    medium-cnn kernel size) measured in both frameworks on the same device, newest run of each,
    95% CI bars; one bar series per framework and device."""
    rows = overhead[(overhead["comparison"] == MAIN_COMPARISON) & overhead["ratio"].notna()]
    if rows.empty:
        return None
    rows = rows.assign(network=[f"{a} (k={k})" if a == "medium-cnn" else a
                                for a, k in zip(rows["arch"], rows["kernel_size"], strict=True)])
    both = rows.groupby(["network", "device"])["framework"].nunique()
    keys = set(both[both >= 2].index)
    rows = rows[[(n, d) in keys for n, d in zip(rows["network"], rows["device"], strict=True)]]
    if rows.empty:
        return None
    latest = newest_per(rows, ["network", "device", "framework"])
    figure = go.Figure()
    for (framework, device), group in latest.groupby(["framework", "device"], sort=True):
        figure.add_bar(name=f"{framework} on {device}", x=group["network"], y=group["ratio"],
                       error_y=_error_bars(group),
                       customdata=np.stack([group["run_id"], group["kernel_ratio"]], axis=1),
                       hovertemplate="%{x}: x%{y:.3f} step time<br>kernel time x%{customdata[1]:.3f}"
                                     "<br>run %{customdata[0]}<extra>%{fullData.name}</extra>")
    figure.add_hline(y=1.0, line_dash="dot", line_color="#444")
    figure.update_layout(barmode="group", title="PyTorch against TensorFlow: step time, deterministic / default "
                         "(95% CI), same network and device", yaxis_title="ratio", xaxis_title="network")
    return figure


def ablation_bars(overhead: pd.DataFrame) -> go.Figure | None:
    """``overhead --ablate``: each switch's step-time ratio against default, 95% CI bars, one series
    per network and device (its newest run of each switch)."""
    order = [step.mode for step in ABLATION]
    rows = overhead[(overhead["part_of"] == "ablation") & (overhead["baseline"] == "default")
                    & overhead["treatment"].isin(order) & overhead["ratio"].notna()]
    if rows.empty or rows["treatment"].nunique() < 2:
        return None
    rows = rows.assign(network=[f"{a} (k={k})" if a == "medium-cnn" else a
                                for a, k in zip(rows["arch"], rows["kernel_size"], strict=True)])
    latest = rows.sort_values("run_id").groupby(["network", "device", "treatment"], as_index=False).last()
    figure = go.Figure()
    for (network, device), group in latest.groupby(["network", "device"], sort=True):
        group = group.assign(rank=group["treatment"].map(order.index)).sort_values("rank")
        ci = group[["ci_low", "ci_high"]].notna().all(axis=1)
        bars = group.assign(ci_low=group["ci_low"].where(ci, group["ratio"]),
                            ci_high=group["ci_high"].where(ci, group["ratio"]))
        figure.add_bar(name=f"{network} on {device}", x=group["treatment"], y=group["ratio"],
                       error_y=_error_bars(bars),
                       customdata=np.stack([group["run_id"], group["kernel_ratio"], group["memory_ratio"]], axis=1),
                       hovertemplate="%{x}: x%{y:.3f} step time<br>kernel time x%{customdata[1]:.3f}<br>peak memory "
                                     "x%{customdata[2]:.3f}<br>run %{customdata[0]}<extra>%{fullData.name}</extra>")
    figure.add_hline(y=1.0, line_dash="dot", line_color="#444")
    _target_line(figure, 1.1, "Megatron-LM's target: under 10% overhead")
    present = [mode for mode in order if mode in set(latest["treatment"])]
    figure.update_layout(barmode="group", title="Which switch carries the cost: each against default (step time, "
                         "95% CI)", yaxis_title="ratio to default",
                         xaxis={"title": "switch", "categoryorder": "array", "categoryarray": present})
    return figure


def top_kernels_cumulative(comparison: KernelComparison | None) -> go.Figure | None:
    """Figure 8: cumulative time of the Top-20 kernels of each side, log axis."""
    if comparison is None:
        return None
    figure = go.Figure()
    for label, table in zip(comparison.labels, comparison.tables, strict=True):
        top = table.head(TOP_KERNELS)
        if top.empty:
            continue
        cumulative_ms = top["total_us"].cumsum() / 1000.0
        figure.add_scatter(x=list(range(1, len(top) + 1)), y=cumulative_ms, mode="lines+markers", name=label,
                           text=[short_name(n, 90) for n in top["name"]],
                           hovertemplate="#%{x} %{text}<br>cumulative %{y:.3f} ms<extra>%{fullData.name}</extra>")
    figure.update_layout(title=f"Top-{TOP_KERNELS} kernels, cumulative time: {comparison.run_label}",
                         xaxis={"title": "kernel rank", "dtick": 1}, yaxis={"title": "cumulative time (ms)",
                                                                             "type": "log"})
    return figure


VARIANT_ORDER = ["algo+impl", "algo", "impl", "control", "order-only"]


def variant_order(experiment: dict[str, Any]) -> tuple[int, str]:
    """Sort key: the paper's variant order, a --fix run (``algo+impl[fixed: init]``) after its variant."""
    base = experiment["variant"].split("[", 1)[0]
    return (VARIANT_ORDER.index(base) if base in VARIANT_ORDER else len(VARIANT_ORDER), experiment["variant"])


def stability_by_variant(stability: list[dict[str, Any]]) -> go.Figure | None:
    """Figures 2 and 3: accuracy std, churn and L2 per noise variant, one series per configuration
    (task, network, with or without BatchNorm)."""
    if not stability:
        return None
    figure = make_subplots(rows=1, cols=3, subplot_titles=("accuracy std (pp)", "churn (%)", "L2 of unit weights"))
    palette = plotly.colors.qualitative.Plotly
    for index, label in enumerate(sorted({e["label"] for e in stability})):
        color = palette[index % len(palette)]  # one colour per configuration in all three panels
        rows = sorted((e for e in stability if e["label"] == label), key=variant_order)
        variants = [e["variant"] for e in rows]
        values = [[100 * (e["measures"]["accuracy_std"] or 0) for e in rows],
                  [100 * e["measures"]["churn"] for e in rows], [e["measures"]["l2"] for e in rows]]
        # churn and L2 carry their bootstrap CIs (from 3 runs on); the std of accuracy has none
        bars = [None, _measure_ci(rows, "churn", 100.0), _measure_ci(rows, "l2", 1.0)]
        for column, series in enumerate(values, start=1):
            figure.add_bar(x=variants, y=series, name=label, legendgroup=label, showlegend=column == 1,
                           marker_color=color, error_y=bars[column - 1],
                           customdata=[e["runs"] for e in rows],
                           hovertemplate="%{x}: %{y:.4g} (%{customdata} runs)<extra>" + label + "</extra>",
                           row=1, col=column)
    figure.update_layout(barmode="group", title="Run-to-run differences by noise variant (paper Figures 2 and 3)")
    return figure


def _measure_ci(rows: list[dict[str, Any]], measure: str, scale: float) -> dict[str, Any] | None:
    """Error bars of a stability measure from each experiment's 95% CI (none where an experiment
    has no CI: too few runs); None when no experiment has one."""
    values = [e["measures"].get(measure) for e in rows]
    cis = [e["measures"].get(f"{measure}_ci") for e in rows]
    if not any(cis):
        return None
    return {"type": "data", "symmetric": False, "width": 4 if all(cis) else 0,  # no cap where there is no bar
            # null where an experiment has no CI; plotly still draws a cap there unless the width is 0
            "array": [scale * (ci[1] - v) if ci and v is not None else None for ci, v in zip(cis, values, strict=True)],
            "arrayminus": [scale * (v - ci[0]) if ci and v is not None else None
                           for ci, v in zip(cis, values, strict=True)]}


def per_class_spread(stability: list[dict[str, Any]]) -> go.Figure | None:
    """Figure 5: per-class accuracy std relative to the overall accuracy std, per experiment."""
    rows = [e for e in stability if (e["measures"].get("accuracy_std") or 0) > 0]
    if not rows:
        return None
    figure = go.Figure()
    for e in rows:
        per_class = np.array(e["measures"]["per_class_std"], dtype=float) / e["measures"]["accuracy_std"]
        figure.add_bar(x=list(range(len(per_class))), y=per_class, name=f"{e['label']}, {e['variant']}")
    figure.add_hline(y=1.0, line_dash="dot", line_color="#444")
    figure.update_layout(barmode="group", title="Per-class accuracy std / overall accuracy std (paper Figure 5)",
                         xaxis_title="class (attribute, for multi-label tasks such as CelebA)", yaxis_title="ratio")
    return figure


def subgroup_spread(stability: list[dict[str, Any]]) -> go.Figure | None:
    """Figure 4: std over runs of accuracy, FPR and FNR per subgroup, divided by the whole test set's."""
    rows = [e for e in stability if e["measures"].get("subgroups")]
    if not rows:
        return None
    metrics = (("accuracy", "accuracy"), ("fpr", "FPR"), ("fnr", "FNR = FN/(FN+TP)"))
    figure = make_subplots(rows=1, cols=3, subplot_titles=[f"std({title}) / std(all)" for _, title in metrics])
    palette = plotly.colors.qualitative.Plotly
    for index, e in enumerate(rows):
        groups = [g for g in e["measures"]["subgroups"] if g["group"] != "All"]
        name = f"{e['label']}, {e['variant']}"
        for column, (metric, _) in enumerate(metrics, start=1):
            figure.add_bar(x=[g["group"] for g in groups], y=[g[f"{metric}_std_ratio"] for g in groups], name=name,
                           legendgroup=name, showlegend=column == 1, marker_color=palette[index % len(palette)],
                           row=1, col=column)
    figure.add_hline(y=1.0, line_dash="dot", line_color="#444")
    figure.update_layout(barmode="group", title="Subgroup spread relative to the whole test set (paper Figure 4)")
    return figure


VERDICT_LEVELS = {"bitwise": 0, "logits differ": 1, "tokens differ": 2}


def _newest(inference: list[dict[str, Any]], kind: str, key: Any) -> list[dict[str, Any]]:
    """The newest run of ``kind`` per ``key(summary)``, oldest first."""
    newest: dict[Any, dict[str, Any]] = {}
    for run in inference:
        if run["kind"] == kind:
            newest[key(run["summary"])] = run
    return sorted(newest.values(), key=lambda run: run["run_id"])


def inference_grid(inference: list[dict[str, Any]]) -> go.Figure | None:
    """``detprof infer``: each configuration's verdict against its row's baseline (bitwise, logits
    differ, tokens differ), one line per model, mode and device (its newest grid)."""
    runs = _newest(inference, "inference", lambda s: (s["workload"].get("source"), s.get("mode"), s["device"]["name"]))
    if not runs:
        return None
    columns: list[str] = []
    for run in runs:
        for row in run["summary"]["rows"]:
            for cell in row["cells"]:
                label = f"{row['row']}: {cell['label']}"
                if label not in columns:
                    columns.append(label)
    lines, levels, words = [], [], []
    for run in runs:
        summary = run["summary"]
        cells = {f"{row['row']}: {cell['label']}": cell for row in summary["rows"] for cell in row["cells"]}
        lines.append(f"{summary['workload'].get('source')}, {summary.get('mode', 'default')} mode, "
                     f"{summary['device']['name']} (run {run['run_id']})")
        levels.append([VERDICT_LEVELS[cells[c]["verdict"]] if c in cells else None for c in columns])
        words.append([cells[c]["verdict"] if c in cells else "not run" for c in columns])
    figure = go.Figure(go.Heatmap(z=levels, x=columns, y=lines, text=words, zmin=0, zmax=2, showscale=False,
                                  colorscale=[[0, "#2e7d32"], [0.5, "#f9a825"], [1, "#c62828"]],
                                  hovertemplate="%{y}<br>%{x}: %{text}<extra></extra>", xgap=2, ygap=2))
    figure.update_layout(title="Greedy decoding: each configuration against its row's baseline (green bitwise, "
                               "amber logits differ, red tokens differ)", xaxis={"tickangle": -35},
                         height=220 + 40 * len(lines))
    return figure


def inference_cost(inference: list[dict[str, Any]]) -> go.Figure | None:
    """``detprof infer --cost``: decode throughput lost to each mode timed (batch-invariant, and
    deterministic where timed) per batch size (95% CI from the paired interval of the step-time
    ratio), beside the published figures of serving
    systems on GPUs, which are theirs, not measured here."""
    runs = _newest(inference, "inference-cost", lambda s: (s["workload"].get("source"), s["device"]["name"]))
    if not runs:
        return None
    figure = go.Figure()
    timed = [(run, treatment) for run in runs for treatment in run["summary"]["modes"][1:]]
    for run, treatment in timed:
        summary = run["summary"]
        rows = [row for row in summary["rows"] if row.get("treatment", summary["modes"][1]) == treatment]
        lost = [100 * (1 - 1 / row["decode_ratio"]) for row in rows]
        high = [100 * (1 - 1 / row["decode_ci"][1]) if row["decode_ci"][1] else value for row, value in
                zip(rows, lost, strict=True)]
        low = [100 * (1 - 1 / row["decode_ci"][0]) if row["decode_ci"][0] else value for row, value in
               zip(rows, lost, strict=True)]
        figure.add_bar(name=f"{treatment}: {summary['workload'].get('source')} on {summary['device']['name']} "
                            f"(run {run['run_id']})",
                       x=[f"batch {row['batch_size']}" for row in rows], y=lost,
                       error_y={"type": "data", "symmetric": False, "array": [h - v for h, v in zip(high, lost,
                                                                                                   strict=True)],
                                "arrayminus": [v - lo for v, lo in zip(lost, low, strict=True)]},
                       hovertemplate="%{x}: %{y:.1f}% of decode throughput lost<extra>%{fullData.name}</extra>")
    for anchor in runs[-1]["summary"].get("anchors", []):
        if anchor.get("percent") is not None:
            _target_line(figure, float(anchor["percent"]), f"{anchor['system']} (GPU, published): {anchor['percent']}%")
        elif "throughput" in anchor.get("metric", ""):
            figure.add_hrect(y0=float(anchor["low"]), y1=float(anchor["high"]), fillcolor="#90a4ae", opacity=0.2,
                             line_width=0, annotation_text=f"{anchor['system']} (GPU, published) "
                                                           f"{anchor['low']}-{anchor['high']}%")
    figure.update_layout(barmode="group", title="What batch invariance (and determinism) costs: decode throughput "
                                                "lost (95% CI), beside other systems' published GPU figures",
                         yaxis_title="% of decode throughput lost")
    return figure


def sampler_trainer(inference: list[dict[str, Any]]) -> go.Figure | None:
    """``detprof infer --compare sampler,trainer``: the distribution of |Δ log-prob| over the sampler's
    tokens (median, p90, p99, p99.9, max) for each pair (the one given, then each remedy), one line
    each on a log axis; a bitwise-equal pair lies on the axis floor and says so. A run stored before
    the quantiles were kept shows its p99 and max."""
    runs = _newest(inference, "inference-mismatch", lambda s: (s["workload"].get("source"), s["device"]["name"]))
    if not runs:
        return None
    floor = 1e-12
    figure = go.Figure()
    for run in runs:
        summary = run["summary"]
        for pair in summary["pairs"]:
            quantiles = pair.get("abs_logprob_diff_quantiles") or {"p99": pair["p99_abs_logprob_diff"],
                                                                  "max": pair["max_abs_logprob_diff"]}
            label = "bitwise equal" if pair["bitwise_equal"] else f"max {pair['max_abs_logprob_diff']:.2g}"
            figure.add_scatter(name=f"{pair['remedy']} ({label}; run {run['run_id']})", mode="lines+markers",
                               x=list(quantiles), y=[max(value, floor) for value in quantiles.values()],
                               hovertemplate="%{x} of |Δ log-prob|: %{y:.3g}<extra>%{fullData.name}</extra>")
    figure.update_layout(title="Sampler against trainer: |Δ log-prob| over the sampler's tokens, as given and with "
                               "each remedy", xaxis_title="quantile over the tokens",
                         yaxis={"type": "log", "title": "|Δ log-prob| (log; bitwise at the floor)"})
    return figure
