"""Helpers of benchmarks/gpu_campaign.sh: the environment record, the fast-scan check on a trace the
machine's own profiler wrote, and the Markdown summary of a campaign's results beside the paper's.

    python benchmarks/campaign_checks.py environment
    python benchmarks/campaign_checks.py scan-check RESULT.json
    python benchmarks/campaign_checks.py vgg19-kernels DB RESULTS_DIR
    python benchmarks/campaign_checks.py summary RESULTS_DIR [--out summary.md] [--calibration JSON]

The summary reads the ``detprof overhead --json`` documents of a campaign (one file per run) and
the paper's published figures (kernels_db/paper_reference.json); it never invents a number: a run
that is missing or failed shows as such.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "kernels_db" / "paper_reference.json"
KERNEL_SIZES = [1, 3, 5, 7]


def environment() -> int:
    """Print Python, package, CUDA, cuDNN and TF32 facts of this machine."""
    print("python", sys.version.split()[0], platform.platform())
    for name in ("torch", "numpy", "scipy", "pandas", "rich", "typer", "click", "pynvml", "plotly", "orjson", "isal",
                 "sklearn"):
        try:
            module = importlib.import_module(name)
            print(f"{name:8s} {getattr(module, '__version__', 'present')}")
        except ImportError:
            print(f"{name:8s} absent")
    import torch

    print("cuda", torch.version.cuda, "available", torch.cuda.is_available(), "cudnn",
          torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None)
    print("tf32: cudnn.allow_tf32", torch.backends.cudnn.allow_tf32, "matmul.allow_tf32",
          torch.backends.cuda.matmul.allow_tf32, "float32_matmul_precision", torch.get_float32_matmul_precision())
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        print("device", props.name, "SMs", props.multi_processor_count, "memory", props.total_memory, "uuid",
              getattr(props, "uuid", None))
    return 0


def scan_check(result_json: str) -> int:
    """The fast Kineto scan must give exactly the full parse's events on the run's own traces."""
    from detprof.kernels.trace import activities_from_document, load_trace, read_trace_json

    document = json.loads(Path(result_json).read_text())
    traces = sorted(Path(document["trace_dir"]).glob("*.json.gz"))
    if not traces:
        print(f"no trace kept by {result_json}")
        return 1
    failures = 0
    for trace in traces:
        for scope in ("steps", "all"):
            fast = load_trace(trace, scope)
            full = activities_from_document(read_trace_json(trace), str(trace), scope)
            same = fast.events.equals(full.events)
            failures += not same
            print(f"{trace.name} scope={scope}: kind={fast.kind} parser={fast.parser} events={len(fast.events)} "
                  f"equal_to_full_parse={same}")
    return 1 if failures else 0


CHECKED = ("vgg19",)  # what the campaign checks and audits
# The campaign's checks of each: result file key -> what the row says (the mode, and the gate).
CHECK_ROWS = {"default": "default", "world-size-1": "deterministic, DDP over 1 process (NCCL), run to run",
              "restart": "deterministic, straight vs restarted from a checkpoint"}


def synthetic_scan_check(folder: Path) -> int:
    """The fast scan against the full parse on a GPU trace in torch 2.11's one-line layout (written
    by the tests' generator), so that a dry run on a CPU, whose own traces hold no GPU work, still
    takes the fast path."""
    sys.path.insert(0, str(REPO))
    from detprof.kernels.trace import activities_from_document, load_trace, read_trace_json
    from tests.kineto_traces import write_kineto_trace

    trace = write_kineto_trace(folder / "synthetic-compact.json", [("sm90_xmma_gemm_f32f32", 40.0),
                                                                   ("nvjet_tst_128x64", 25.0)] * 50, "compact")
    failures = 0
    for scope in ("steps", "all"):
        fast = load_trace(trace, scope)
        full = activities_from_document(read_trace_json(trace), str(trace), scope)
        same = fast.events.equals(full.events)
        failures += not same or fast.parser == "json"
        print(f"synthetic compact trace scope={scope}: kind={fast.kind} parser={fast.parser} "
              f"events={len(fast.events)} equal_to_full_parse={same}")
    trace.unlink()
    return 1 if failures else 0


def vgg19_kernels(db: str, results_dir: str) -> int:
    """The fast scan against the full parse on vgg19's own traces, then its top-20 kernels per mode
    (``vgg19-top20-MODE.json`` in the results, and the table in the log)."""
    import os
    import subprocess

    results = Path(results_dir)
    failed = scan_check(str(results / "vgg19.json")) | synthetic_scan_check(results)
    try:
        run_id = json.loads((results / "vgg19.json").read_text())["run_id"]
    except (OSError, ValueError, KeyError):
        print("vgg19 was not stored: no top-20 kernels")
        return 1
    for mode in ("default", "deterministic"):
        base = [sys.executable, "-m", "detprof.cli", "kernels", "--run", str(run_id), "--mode", mode, "--top", "20",
                "--db", db]
        document = subprocess.run([*base, "--json"], capture_output=True, text=True)
        (results / f"vgg19-top20-{mode}.json").write_text(document.stdout)
        table = subprocess.run(base, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
        print(table.stdout + table.stderr)
        failed |= document.returncode != 0
    return 1 if failed else 0


def _load(results: Path, name: str) -> dict[str, Any] | None:
    """The step's result document, or None where the step measured nothing: no file, an empty or cut
    file, or the error document that ``--json`` prints when a command fails (a step cut at the budget
    before its first pair); the Steps section says what happened to it."""
    path = results / f"{name}.json"
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) and "error" not in document else None


def _interval(value: float | None, ci: list[float] | None, reason: str | None) -> str:
    if value is None:
        return "not measured"
    return f"{value:.3f} ({ci[0]:.3f}-{ci[1]:.3f})" if ci else f"{value:.3f} ({reason or 'no CI'})"


def _ratio(doc: dict[str, Any] | None) -> str:
    """The step-time ratio with its 95% CI, marked when the run was cut short."""
    if not doc or doc.get("ratio") is None:
        return "not measured"
    text = _interval(doc["ratio"], doc.get("ratio_ci"), doc.get("ratio_ci_reason"))
    return text + (f" [partial: {doc.get('ratio_pairs')} pairs]" if doc.get("partial") else "")


def _kernel(doc: dict[str, Any] | None) -> str:
    """The kernel-time ratio with its paired CI, or why it is not stated."""
    if not doc or doc.get("kernel_ratio") is None:
        return "not measured"
    if doc.get("kernel_times_reliable") is False:  # the note in the run's JSON says why
        coverage = ", ".join(f"{100 * m['kernel_coverage']:.0f}%" for m in doc["modes"] if m.get("kernel_coverage"))
        return f"not stated: kernel times unreliable (coverage {coverage}, outside 90-110%)"
    return _interval(doc["kernel_ratio"], doc.get("kernel_ratio_ci"), doc.get("kernel_ratio_ci_reason"))


def _number(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _coverage(doc: dict[str, Any] | None) -> str:
    if not doc:
        return "—"
    return " / ".join(_number(None if m.get("kernel_coverage") is None else 100 * m["kernel_coverage"], 0) + "%"
                      for m in doc["modes"])


def _bitwise(doc: dict[str, Any] | None) -> str:
    """Per mode: were the repeats' final weights bit-identical, e.g. "default: 3 distinct of 3"."""
    if not doc:
        return "—"
    parts = []
    for mode in doc["modes"]:
        same, distinct, runs = (mode.get("bitwise_identical_across_repeats"), mode.get("distinct_state_hashes"),
                                mode["repeats_ok"])
        state = f"identical ({runs})" if same else f"{distinct} distinct of {runs}" if same is False else "n/a"
        parts.append(f"{mode['mode']}: {state}")
    return "; ".join(parts)


def _tf32(doc: dict[str, Any] | None) -> str:
    """TF32 as the default mode's jobs recorded it (convolutions / matmuls)."""
    tf32 = ((doc or {}).get("environment") or {}).get("tf32") or {}
    if not tf32:
        return "not recorded"
    return (f"convolutions {'on' if tf32.get('cudnn_allow_tf32') else 'off'}, matmuls "
            f"{'on' if tf32.get('cuda_matmul_allow_tf32') else 'off'}")


def _paper(arch: str, paper: dict[str, Any]) -> str:
    """The paper's figure for this network where it published one (MobileNet is v1 there), and its ranges."""
    exact = [f"{r['gpu'].upper()} {r['kernel_ratio']:.2f}" for r in paper["network_overhead"] if r["arch"] == arch]
    ranges = [f"{r['gpu'].upper()} {r['low']:.2f}-{r['high']:.2f} (all networks)" for r in
              paper["network_overhead_ranges"]]
    return "; ".join(exact + ranges)


NETWORK_ROWS = [("vgg19", "vgg19", "deterministic"), ("vgg19-nofill", "vgg19", "deterministic-nofill"),
                ("vgg19-tf32-off", "vgg19", "deterministic-tf32-off (TF32 off on both sides, one pair)"),
                ("mobilenet", "mobilenet", "deterministic"), ("mobilenet-nofill", "mobilenet", "deterministic-nofill"),
                ("resnet50", "resnet50", "deterministic"), ("densenet121", "densenet121", "deterministic"),
                ("gpt2-small", "gpt2-small", "deterministic"), ("vit-b16", "vit-b16", "deterministic")]
# Networks the paper did not measure: their rows say so instead of the paper's ranges.
NOT_IN_PAPER = ("gpt2-small", "vit-b16")


def summary(results_dir: str, out: str | None, calibration: str | None = None) -> int:
    """Write the campaign's Markdown summary: the paper's comparison first, then every run."""
    results = Path(results_dir)
    paper = json.loads(PAPER.read_text())
    lines = ["# detprof GPU campaign: summary", ""]
    docs = {name: _load(results, name) for name, _, _ in NETWORK_ROWS}
    docs.update({f"medium-cnn-k{k}": _load(results, f"medium-cnn-k{k}") for k in KERNEL_SIZES})
    docs["aa-resnet50"] = _load(results, "aa-resnet50")
    any_doc = next((d for d in docs.values() if d), None)
    if any_doc:
        env = any_doc.get("environment", {})
        workload = any_doc.get("workload") or {}
        lines += [f"Device: {any_doc['device']['name']}; torch {env.get('torch')}, CUDA {env.get('cuda')}, cuDNN "
                  f"{env.get('cudnn')}; TF32 in the default mode: {_tf32(any_doc)}.",
                  f"Setting: {workload.get('image_size')}x{workload.get('image_size')}, batch "
                  f"{workload.get('batch_size')}; protocol {json.dumps(any_doc.get('protocol'))}.", ""]
    # Like with like: the paper measured GPU kernel time in TensorFlow 2.4 on V100/P100/T4, which had
    # neither TF32 nor a NaN fill of fresh memory.
    lines += ["## Beside the paper (kernel time, deterministic / default)", "",
              "The paper's figures are GPU kernel-time ratios from TensorFlow 2.4 on V100, P100 and T4: no TF32 "
              "(those GPUs have none) and no NaN fill of fresh memory. The comparison that stands beside them is "
              "therefore **default vs deterministic-nofill, kernel time** (the NaN fill is PyTorch's own addition); "
              "the vgg19 pair with TF32 off on both sides shows what TF32 changes. Step-time ratios are what a user "
              "pays and are shown beside.", "",
              "| network | comparison | kernel time ratio (95% CI) | step time ratio (95% CI) | paper (kernel time) |",
              "|---|---|---|---|---|"]
    for name, arch, treatment in NETWORK_ROWS:
        if arch in ("vgg19", "mobilenet"):
            doc = docs[name]
            lines.append(f"| {arch} | default vs {treatment} | {_kernel(doc)} | {_ratio(doc)} | "
                         f"{_paper(arch, paper)} |")
    lines += ["", "## Default vs deterministic, per network", "",
              "The transformers (gpt2-small, vit-b16; not in the paper) run at their own GPU defaults; the "
              "attention backend that ran in each mode is in their run documents.", "",
              "| network | comparison | step time ratio (95% CI) | kernel time ratio (95% CI) | memory ratio | "
              "coverage (kernel / step time) | final weights across repeats |", "|" + "---|" * 7]
    for name, arch, treatment in NETWORK_ROWS:
        doc = docs[name]
        label = f"{arch} (not in the paper)" if arch in NOT_IN_PAPER else arch
        lines.append(f"| {label} | default vs {treatment} | {_ratio(doc)} | {_kernel(doc)} | "
                     f"{_number(doc and doc.get('memory_ratio'))} | {_coverage(doc)} | {_bitwise(doc)} |")
    lines += ["", "## Medium CNN, kernel sizes 1-7 (Figure 9b)", "",
              "| kernel size | kernel time ratio (95% CI) | step time ratio (95% CI) | memory ratio | coverage | "
              "final weights |", "|---|---|---|---|---|---|"]
    for k in KERNEL_SIZES:
        doc = docs[f"medium-cnn-k{k}"]
        lines.append(f"| {k} | {_kernel(doc)} | {_ratio(doc)} | {_number(doc and doc.get('memory_ratio'))} | "
                     f"{_coverage(doc)} | {_bitwise(doc)} |")
    ranges = "; ".join(f"{r['gpu'].upper()} {r['low']:.2f}-{r['high']:.2f}" for r in
                       paper["medium_cnn_kernel_size_ranges"])
    lines += ["", f"Paper, kernel sizes 1 to 7 (kernel time ratio): {ranges}; larger kernels always costlier.", "",
              f"Source of the paper's figures: {paper['source']}"]
    aa = docs["aa-resnet50"]
    lines += ["", "## A/A (resnet50, default vs default; goal within ±1%)", "",
              f"ratio {_ratio(aa)}; {aa['verdict'] if aa else ''}"]
    lines += ["", "## Stability on this device (digits, small CNN)", "",
              "| variant | mode | runs | accuracy mean | churn | L2 of unit weights |", "|---|---|---|---|---|---|"]
    for variant in ("algo+impl",):
        doc = _load(results, f"stability-{variant}")
        if not doc or doc.get("churn") is None:
            lines.append(f"| {variant} | — | — | not measured | — | — |")
            continue
        lines.append(f"| {variant} | {doc['mode']} | {doc['runs']} | {100 * doc['accuracy_mean']:.2f}% | "
                     f"{100 * doc['churn']:.2f}% | {doc['l2']:.3g} |")
    lines += ["", "## Inference (greedy decoding; batch invariance and what detprof's batch-invariant mode costs)", ""]
    grid = _load(results, "infer-gpt2-small-batch")
    if grid:
        lines += [f"{grid['workload']['source']} on {grid['device']}, {grid['version']}: differing rows "
                  f"{', '.join(grid['differing_rows']) or 'none'}", "",
                  "| row | configuration | same tokens | bitwise logits | max abs logit diff "
                  "| first differing module |",
                  "|---|---|---|---|---|---|"]
        for row in grid["rows"]:
            for cell in row["cells"]:
                op = cell.get("op") or {}
                held = (op.get("arose_in") or {}).get("module")
                where = (f"{op['module']} ({op['module_type']}, {op['kind']}"
                         + (f"; arose in {held}'s own ops" if held else "") + ")") if op else "—"
                lines.append(f"| {row['row']} | {cell['label']} | {cell['identical_prompts']}/{cell['prompts']} | "
                             f"{cell['bitwise_prompts']}/{cell['prompts']} | {cell['max_abs_logit_diff']:.3g} | "
                             f"{where} |")
    else:
        lines.append("grid: not measured")
    priced = _load(results, "infer-gpt2-small-cost")
    for row in (priced or {}).get("rows", []):
        low, high = row["decode_ci"]
        interval = f" (95% CI {low:.3f}-{high:.3f})" if low is not None else " (no interval)"
        lines.append(f"\nbatch-invariant mode, batch {row['batch_size']}, {row['pairs']} pairs: decode step time "
                     f"x{row['decode_ratio']:.3f}{interval}, throughput lost "
                     f"{row['decode_throughput_cost_percent']:.1f}%, prefill x{row['prefill_ratio']:.3f}")
    if not priced:
        lines.append("\ncost: not measured")
    lines += ["", "## Bitwise checks (two trainings in fresh processes) and audit", "",
              "| network | mode | bitwise identical | max weight difference | first divergence |",
              "|---|---|---|---|---|"]
    for net in CHECKED:  # each check's result file is check-NET-KEY.json (CHECK_ROWS)
        for key, mode in CHECK_ROWS.items():
            doc = _load(results, f"check-{net}-{key}")
            if not doc:
                lines.append(f"| {net} | {mode} | not measured | — | — |")
                continue
            div = doc.get("first_divergence")
            op = (div or {}).get("op") or {}
            where = "—" if not div else (f"step {div['step']}, {div['parameter']}"
                                         + (f"; {op['op']} in {op['module']} ({op['phase']}, {op['kind']})"
                                            if op else ""))
            shown = (doc.get("workload") or {}).get("arch") or net  # the dry run checks small-cnn
            lines.append(f"| {shown} | {mode} | {'yes' if doc['bitwise_identical'] else 'no'} | "
                         f"{doc['max_abs_diff']:.3g} | {where} |")
        doc = _load(results, f"audit-{net}")
        if doc:
            ops = ", ".join(f"{o['op']} ({', '.join(o['modules'])})" for o in doc["nondeterministic_ops"]) or "none"
            audited = (doc.get("workload") or {}).get("arch") or net
            lines.append(f"\naudit {audited}: fully deterministic {doc['fully_deterministic']}; ops without a "
                         f"deterministic implementation: {ops}; {len(doc['swapped_kernels'])} kernels swapped")
    if calibration:
        factors = json.loads(calibration)
        if factors:
            lines += ["", "## Estimates against measured time", "",
                      ", ".join(f"{name} x{factor:.2f}" for name, factor in factors)]
    steps = results / "steps.txt"
    if steps.exists():
        lines += ["", "## Steps", "", "```", steps.read_text().strip(), "```"]
    text = "\n".join(lines) + "\n"
    if out:
        Path(out).write_text(text)
    print(text)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("environment")
    scan = commands.add_parser("scan-check")
    scan.add_argument("result_json")
    kernels = commands.add_parser("vgg19-kernels")
    kernels.add_argument("db")
    kernels.add_argument("results_dir")
    report = commands.add_parser("summary")
    report.add_argument("results_dir")
    report.add_argument("--out")
    report.add_argument("--calibration", help="JSON list of [step, measured/estimated] pairs")
    args = parser.parse_args()
    if args.command == "environment":
        return environment()
    if args.command == "scan-check":
        return scan_check(args.result_json)
    if args.command == "vgg19-kernels":
        return vgg19_kernels(args.db, args.results_dir)
    return summary(args.results_dir, args.out, args.calibration)


if __name__ == "__main__":
    sys.exit(main())
