"""Assemble the report: one self-contained HTML file (plotly.js inlined, no network), every name
escaped. The page records its own JavaScript errors and, once plotly has drawn, how many charts
rendered (``<body data-rendered="N" data-js-errors="M">``), so a headless browser can check it."""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from detprof.kernels import short_name
from detprof.report.collect import DIFF_ROWS, ReportData
from detprof.report.figures import (
    ablation_bars,
    framework_comparison,
    inference_cost,
    inference_grid,
    overhead_by_kernel_size,
    overhead_by_network,
    per_class_spread,
    sampler_trainer,
    stability_by_variant,
    subgroup_spread,
    top_kernels_cumulative,
)
from detprof.report.sections import TITLES
from detprof.stability.measures import MIN_RUNS_FOR_CI, format_small

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; padding: 0 1.5rem; max-width: 1200px; color: #222; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.frame { max-width: 100%; overflow-x: auto; } td.wrap { overflow-wrap: anywhere; word-break: break-word; }
td.wrap code { white-space: pre-wrap; } .note { color: #555; font-size: 0.85rem; }
.nodata { color: #777; font-style: italic; } .paper { color: #555; } code { font-size: 0.85rem; }
.caveat { background: #fff4e0; border-left: 4px solid #e69500; padding: 0.4rem 0.8rem; }
.pass { color: #1a7f37; font-weight: 600; } .fail { color: #cf222e; font-weight: 600; }
.skipped { border-left: 4px solid #d4a72c; padding-left: 0.75rem; }
"""

ERROR_HOOK = """
window.__detprofErrors = [];
function __detprofRecord(message) {
  window.__detprofErrors.push(String(message));
  document.documentElement.setAttribute("data-js-errors", String(window.__detprofErrors.length));
}
window.addEventListener("error", function (e) { __detprofRecord(e.message); });
var __consoleError = console.error;
console.error = function () {
  __detprofRecord(Array.prototype.join.call(arguments, " "));
  __consoleError.apply(console, arguments);
};
"""


def _escape(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _number(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "—"
    return f"{value:.{digits}f}"


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] | None = None,
           wide_columns: set[int] | None = None) -> str:
    """A table in a frame of the page's width: long cells (``wide_columns``: paths, command lines)
    break anywhere rather than push the table past the page, which scrolls sideways as a last resort."""
    numeric, wide = numeric or set(), wide_columns or set()

    def cell(index: int, content: str) -> str:
        kind = " ".join(k for k, on in (("num", index in numeric), ("wrap", index in wide)) if on)
        return f'<td class="{kind}">{content}</td>' if kind else f"<td>{content}</td>"

    head = "".join(f"<th>{_escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(cell(i, c) for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f'<div class="frame"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _figure(figure: go.Figure | None, element_id: str, no_data: str) -> tuple[str, str]:
    """(HTML for the section body, plotting script); a one-line notice when there is no figure."""
    if figure is None:
        return f'<p class="nodata">{_escape(no_data)}</p>', ""
    spec = figure.to_json().replace("</", "<\\/")  # the chart's data and layout, written once
    return (f'<div id="{element_id}" class="chart" style="height:480px"></div>',
            f'__plots.push(Plotly.newPlot("{element_id}", Object.assign({spec}, {{config: {{responsive: true}}}})));')


def _caveat(text: str | None) -> str:
    """A warning paragraph above a section whose figures do not mean what they seem ('' for None)."""
    return f'<p class="caveat">{_escape(text)}</p>' if text else ""


def _diff_section(data: ReportData) -> str:
    comparison = data.comparison
    if comparison is None:
        return '<p class="nodata">No run with kernels in two modes (and fewer than two imported traces): ' \
               "nothing to compare.</p>"
    a, b = comparison.labels
    diff = comparison.diff
    parts = [_caveat(comparison.caveat)]
    parts += [f"<p>{_escape(comparison.run_label)}: {_escape(b)} against {_escape(a)}. "
             f"{int((diff['status'] == 'added').sum())} kernels only in {_escape(b)}, "
             f"{int((diff['status'] == 'removed').sum())} only in {_escape(a)}, "
             f"{int((diff['status'] == 'changed').sum())} in both. Times in ms summed over the profiled steps.</p>"]
    for status, title in (("added", f"Only in {b}"), ("removed", f"Only in {a}"), ("changed", "Changed most")):
        rows = diff[diff["status"] == status].head(DIFF_ROWS)
        if rows.empty:
            parts.append(f"<h3>{_escape(title)}</h3><p class='nodata'>None.</p>")
            continue
        body = [[f"<code>{_escape(short_name(r.name, 110))}</code>", _escape(r.category), str(r.calls_a),
                 str(r.calls_b), _number(r.total_us_a / 1000), _number(r.total_us_b / 1000),
                 _number(r.delta_us / 1000)] for r in rows.itertuples(index=False)]
        parts.append(f"<h3>{_escape(title)}</h3>" + _table(
            ["kernel", "category", f"calls {a}", f"calls {b}", f"ms {a}", f"ms {b}", "Δ ms"], body, {2, 3, 4, 5, 6}))
    return "".join(parts)


def _paper_section(paper: dict[str, Any]) -> str:
    rows = [[_escape(i["gpu"].upper()), _escape(i["arch"]), _number(i["kernel_ratio"], 2)]
            for i in paper.get("network_overhead", [])]
    rows += [[_escape(i["gpu"].upper()), "across networks", f"{i['low']:.2f}–{i['high']:.2f}"]
             for i in paper.get("network_overhead_ranges", [])]
    rows += [[_escape(i["gpu"].upper()), "medium CNN, kernel size 1 to 7", f"{i['low']:.2f}–{i['high']:.2f}"]
             for i in paper.get("medium_cnn_kernel_size_ranges", [])]
    setting = paper.get("setting", {})
    return (f'<p class="paper">Published by the paper, not measured by detprof: {_escape(paper.get("source"))} '
            f'Setting: {_escape(setting.get("framework"))}, cuDNN {_escape(setting.get("cudnn"))}, batch '
            f'{_escape(setting.get("batch_size"))}, metric: {_escape(setting.get("metric"))}.</p>'
            + _table(["GPU", "network", "kernel-time ratio"], rows, {2}))


def _switches(toggles: dict[str, dict[str, Any] | None]) -> str:
    """Each mode's switches in a few words: the first mode's as torch sets them, each other mode's
    as what it turns on (+), off (−) or sets (=) against the first; the whole set in a tooltip."""
    modes = [(mode, t) for mode, t in toggles.items() if t]
    if not modes:
        return "—"
    base_mode, base = modes[0]
    lines = [f"{_escape(base_mode)}: as set by the framework"]
    for mode, switches in modes[1:]:
        changes = []
        for name in sorted(set(base) | set(switches)):
            was, now = base.get(name), switches.get(name)
            if was == now:
                continue
            changes.append(f"+{name}" if now is True else f"−{name}" if now is False else
                           f"{name}={now}" if now is not None else f"−{name}")
        lines.append(f"{_escape(mode)}: {_escape(', '.join(changes) or 'the same')}")
    whole = _escape(json.dumps(toggles, sort_keys=True))
    return f'<span title="{whole}">' + "<br>".join(lines) + "</span>"


def _environment_section(environments: list[dict[str, Any]]) -> str:
    if not environments:
        return '<p class="nodata">No overhead runs or imported traces in this report.</p>'
    rows = []
    for env in environments:
        versions = ", ".join(f"{k} {env[k]}" for k in ("torch", "tensorflow", "cuda", "cudnn") if env.get(k)) \
            or env.get("versions") or ("in its measured runs" if env["kind"] == "advise" else "not recorded")
        known = {m: v for m, v in env["throttled"].items() if v is not None}
        throttled = ", ".join(f"{_escape(m)}: {'yes' if v else 'no'}" for m, v in known.items()) or \
            ("not monitored (CPU)" if env["device"] == "cpu" else "not monitored")
        source = f"<br>trace: <code>{_escape(env['source_trace'])}</code>" if env.get("source_trace") else ""
        rows.append([str(env["run_id"]), _escape(env["kind"]), _escape(env["arch"]), _escape(env["device"]),
                     _escape(versions), _switches(env["toggles"]), throttled,
                     f"<code>{_escape(env['command'])}</code>{source}"])
    note = ('<p class="note">Switches: "+" turned on, "−" turned off, "=" set, against the first mode; hover for '
            "the whole set.</p>")
    return _table(["run", "kind", "arch", "device", "versions", "switches", "throttled", "command"], rows, {0},
                  wide_columns={2, 7}) + note


def _overhead_table(data: ReportData) -> str:
    if data.overhead.empty:
        return ""
    rows = [[str(r.run_id) + (" (partial)" if r.partial else ""),
             _escape(r.arch) + (f" (k={r.kernel_size})" if r.arch == "medium-cnn" else ""),
             _escape(r.series), _escape(r.comparison), _number(r.ratio),
             f"{_number(r.ci_low)}–{_number(r.ci_high)}", _kernel_cell(r), "yes" if r.noisy else "no",
             _escape(r.part_of if isinstance(r.part_of, str) else "overhead")]
            for r in data.overhead.itertuples(index=False)]
    return "<h3>All overhead runs</h3>" + _table(
        ["run", "network", "device", "comparison", "step-time ratio", "95% CI", "kernel-time ratio (95% CI)", "noisy",
         "measured by"],
        rows, {0, 4, 6})


def _kernel_cell(row: Any) -> str:
    """The kernel-time ratio as far as the run supports it: with its CI, or why it is not stated."""
    if row.kernel_ratio is None or row.kernel_ratio != row.kernel_ratio:
        return "—"
    if not row.kernel_reliable:
        return "not stated (kernel times unreliable)"
    ci = "" if row.kernel_ci_low is None or row.kernel_ci_low != row.kernel_ci_low else \
        f" ({_number(row.kernel_ci_low)}–{_number(row.kernel_ci_high)})"
    return _number(row.kernel_ratio) + ci


def _stability_table(data: ReportData) -> str:
    if not data.stability:
        return ""
    from detprof.stability.recipes import recipe_epochs

    rows = []
    for e in data.stability:
        m = e["measures"]
        epochs = e["recipe"].get("epochs")
        usual = recipe_epochs(e["task"])
        shown_epochs = "—" if epochs is None else str(epochs) + (
            f" (recipe: {usual})" if usual is not None and usual != epochs else "")
        churn_ci, l2_ci = m.get("churn_ci"), m.get("l2_ci")
        rows.append([_escape(e["label"]), _escape(e["variant"]), _escape(e["mode"]), _escape(", ".join(e["fixed"])
                     or "none"), str(e["runs"]), _escape(shown_epochs), f"{100 * m['accuracy_mean']:.2f}%",
                     f"{100 * (m['accuracy_std'] or 0):.3f}",
                     f"{100 * m['churn']:.2f}%" + (f" ({100 * churn_ci[0]:.2f}–{100 * churn_ci[1]:.2f})"
                                                   if churn_ci else " (no CI)"),
                     format_small(m["l2"]) + (f" ({format_small(l2_ci[0])}–{format_small(l2_ci[1])})" if l2_ci
                                              else " (no CI)"),
                     f"{100 * m['per_class_std_max']:.2f}"])
    note = (f'<p class="note">Churn and L2 come with their 95% bootstrap CIs over runs; an experiment of fewer '
            f"than {MIN_RUNS_FOR_CI} runs has one pair, and no CI. An epoch count that differs from the task's "
            "recipe was set with <code>--epochs</code>.</p>")
    return "<h3>Stability experiments</h3>" + _table(
        ["configuration", "variant", "mode", "fixed sources", "runs", "epochs", "accuracy", "std (pp)",
         "churn (95% CI)", "L2 (95% CI)", "max per-class std (pp)"], rows, {4, 6, 7, 8, 9, 10}) + note


def _reproducibility_section(verdicts: list[dict[str, Any]]) -> str:
    """The stored check, audit and advise verdicts: one row each, newest last, with what they found."""
    if not verdicts:
        return ('<p class="nodata">No check, audit or advise runs yet: run `detprof check`, `detprof audit` or '
                "`detprof advise` to fill this section.</p>")
    rows = [[str(v["run_id"]), _escape(v["kind"]), _escape(v["arch"]), _escape(v["device"]),
             _escape(", ".join(v["modes"])),
             ('<span class="pass">' if v["passed"] else '<span class="fail">') + _escape(v["verdict"]) + "</span>",
             "<br>".join(_escape(f) for f in v["findings"]) or "—"] for v in verdicts]
    return _table(["run", "kind", "network", "device", "modes", "verdict", "findings"], rows, {0}, wide_columns={2, 6})


def _skipped_section(skipped: list[str]) -> str:
    """What the report left out because it could not be read, named at the top of the page."""
    if not skipped:
        return ""
    items = "".join(f"<li>{_escape(sentence)}</li>" for sentence in skipped)
    return f'<div class="skipped"><p>Left out, as it could not be read:</p><ul>{items}</ul></div>'


def _chart(key: str, figure: go.Figure | None, no_data: str, sections: dict[str, str],
           scripts: list[str]) -> tuple[str, str]:
    """(body, script) of one chart section: its state recorded in ``sections`` ("drawn" or "no data")
    and its script appended to ``scripts``."""
    body, script = _figure(figure, key.replace("_", "-"), no_data)
    sections[key] = "drawn" if script else "no data"
    scripts.append(script)
    return body, script


def render(data: ReportData) -> tuple[str, dict[str, str]]:
    """The HTML page and, per section, ``drawn`` or ``no data``."""
    sections: dict[str, str] = {}
    scripts: list[str] = []
    bodies: list[str] = []
    for key, figure, no_data in (
        ("figure_9a", overhead_by_network(data.overhead, data.paper),
         "No overhead runs of networks yet: run `detprof overhead --arch vgg19` (and others) to fill this chart."),
        ("figure_9b", overhead_by_kernel_size(data.overhead, data.paper),
         "No medium-cnn runs yet: run `detprof overhead --arch medium-cnn --kernel-size K` for K = 1 to 7."),
        ("frameworks", framework_comparison(data.overhead),
         "No network measured in both frameworks on one device yet: run `detprof overhead --arch medium-cnn` and "
         "`detprof overhead --framework tf --arch medium-cnn`."),
        ("ablation", ablation_bars(data.overhead),
         "No ablation yet: run `detprof overhead --ablate` (on a GPU, every switch is measured)."),
        ("figure_8", top_kernels_cumulative(data.comparison),
         "No run with kernels in two modes, and fewer than two imported traces: nothing to compare."),
        ("stability", stability_by_variant(data.stability),
         "No stability experiments with two or more runs yet: run `detprof stability --runs 10`."),
        ("subgroups", subgroup_spread(data.stability),
         "No CelebA stability experiment yet: run `detprof stability --task celeba --data-dir DIR`."),
        ("per_class", per_class_spread(data.stability),
         "No stability experiment with a nonzero accuracy spread to break down by class."),
    ):
        body, script = _chart(key, figure, no_data, sections, scripts)
        caveat = _caveat(data.comparison.caveat) if key == "figure_8" and data.comparison and script else ""
        bodies.append(f"<h2>{_escape(TITLES[key])}</h2>{caveat}{body}")
        if key == "figure_9b":
            bodies.append(_overhead_table(data))
        if key == "stability":
            bodies.append(_stability_table(data))
    sections["kernel_diff"] = "drawn" if data.comparison is not None else "no data"
    bodies.append(f"<h2>{TITLES['kernel_diff']}</h2>{_diff_section(data)}")
    sections["reproducibility"] = "drawn" if data.verdicts else "no data"
    bodies.append(f"<h2>{TITLES['reproducibility']}</h2>{_reproducibility_section(data.verdicts)}")
    for key, figure, no_data in (
        ("inference_grid", inference_grid(data.inference),
         "No inference grid yet: run `detprof infer` (and `--mode batch-invariant`) to fill this chart."),
        ("inference_cost", inference_cost(data.inference),
         "No inference cost yet: run `detprof infer --cost`."),
        ("sampler_trainer", sampler_trainer(data.inference),
         "No sampler-against-trainer comparison yet: run `detprof infer --compare sampler,trainer`."),
    ):
        body, _ = _chart(key, figure, no_data, sections, scripts)
        bodies.append(f"<h2>{_escape(TITLES[key])}</h2>{body}")
    bodies.append(f"<h2>{_escape(TITLES['paper'])}</h2>{_paper_section(data.paper)}")
    bodies.append(f"<h2>{TITLES['environment']}</h2>{_environment_section(data.environments)}")
    sections["paper"] = sections["environment"] = "drawn"
    created = datetime.now(UTC).isoformat(timespec="seconds")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>detprof report</title>
<style>{STYLE}</style><script>{ERROR_HOOK}</script>
<script>{get_plotlyjs()}</script></head>
<body data-expected-charts="{sum(1 for s in scripts if s)}">
<h1>detprof report</h1>
<p>What deterministic training costs and buys, from {len(data.run_ids)} stored run(s) and
{len(data.stability)} stability experiment(s). Generated {created}.
Ratios are deterministic / default unless the table says otherwise; error bars are 95% CIs
(Student-t over pairs of fresh processes).</p>
{_skipped_section(data.skipped)}{''.join(bodies)}
<script>
var __plots = [];
{chr(10).join(s for s in scripts if s)}
Promise.all(__plots).then(function () {{
  // A chart counts as drawn when plotly put at least one trace (a heatmap: its image) into its SVG.
  var drawn = Array.prototype.filter.call(document.querySelectorAll(".chart"), function (c) {{
    return c.querySelector(".main-svg .trace, .main-svg .hm") !== null; }}).length;
  document.body.setAttribute("data-rendered", String(drawn));
}}).catch(function (e) {{ __detprofRecord(e); }});
</script>
</body></html>
"""
    return page, sections
