"""Helpers of benchmarks/gpu_campaign.sh: the environment record, the fast-scan check on a trace the
machine's own profiler wrote, and the Markdown summary of a campaign's results beside the paper's.

    python benchmarks/campaign_checks.py environment
    python benchmarks/campaign_checks.py scan-check RESULT.json
    python benchmarks/campaign_checks.py summary RESULTS_DIR [--out summary.md]

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
NETWORKS = ["vgg19", "resnet50", "mobilenet-v2", "densenet121", "mobilenet"]
KERNEL_SIZES = [1, 3, 5, 7]


def environment() -> int:
    """Print Python, package, CUDA, cuDNN and TF32 facts of this machine."""
    print("python", sys.version.split()[0], platform.platform())
    for name in ("torch", "numpy", "scipy", "pandas", "rich", "typer", "pynvml", "plotly", "orjson", "isal",
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


CHECKED = ("vgg19", "resnet50", "medium-cnn-k7")  # what the campaign checks, audits (and advises on)


def _load(results: Path, name: str) -> dict[str, Any] | None:
    path = results / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _ratio(doc: dict[str, Any] | None) -> str:
    if not doc or doc.get("ratio") is None:
        return "not measured"
    ci = doc.get("ratio_ci")
    interval = f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else f" ({doc.get('ratio_ci_reason')})"
    return f"{doc['ratio']:.3f}{interval}"


def _number(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


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


def _paper(arch: str, paper: dict[str, Any]) -> str:
    """The paper's figure for this network where it published one (MobileNet is v1 there), and its ranges."""
    exact = [f"{r['gpu'].upper()} {r['kernel_ratio']:.2f}" for r in paper["network_overhead"] if r["arch"] == arch]
    ranges = [f"{r['gpu'].upper()} {r['low']:.2f}-{r['high']:.2f} (all networks)" for r in
              paper["network_overhead_ranges"]]
    return "; ".join(exact + ranges)


def summary(results_dir: str, out: str | None) -> int:
    """Write the campaign's Markdown summary (per-network table, kernel-size curve, A/A, bitwise)."""
    results = Path(results_dir)
    paper = json.loads(PAPER.read_text())
    lines = ["# detprof GPU campaign: summary", ""]
    any_doc = next((d for d in (_load(results, n) for n in [*NETWORKS, "aa-resnet50"]) if d), None)
    if any_doc:
        env = any_doc.get("environment", {})
        lines += [f"Device: {any_doc['device']['name']}; torch {env.get('torch')}, CUDA {env.get('cuda')}, cuDNN "
                  f"{env.get('cudnn')}; TF32 {env.get('tf32')}.",
                  f"Protocol: {json.dumps(any_doc.get('protocol'))}.", ""]
    aa = _load(results, "aa-resnet50")
    lines += ["## A/A (resnet50, default vs default; goal within ±1%)", "",
              f"ratio {_ratio(aa)}; {aa['verdict'] if aa else ''}", ""]
    header = ("| network | step time ratio (95% CI) | kernel ratio | memory ratio | coverage default / det. | "
              "final weights across repeats | paper (TF 2.4, kernel ratio) |")
    workload = (any_doc or {}).get("workload") or {}
    setting = f"{workload.get('image_size')}x{workload.get('image_size')}, batch {workload.get('batch_size')}"
    lines += [f"## Default vs deterministic, per network ({setting})", "", header, "|" + "---|" * 7]
    for arch in NETWORKS:
        doc = _load(results, arch)
        coverage = "—" if not doc else " / ".join(
            _number(None if m.get("kernel_coverage") is None else 100 * m["kernel_coverage"], 0) + "%"
            for m in doc["modes"])
        lines.append(f"| {arch} | {_ratio(doc)} | {_number(doc and doc.get('kernel_ratio'))} | "
                     f"{_number(doc and doc.get('memory_ratio'))} | {coverage} | {_bitwise(doc)} | "
                     f"{_paper(arch, paper)} |")
    lines += ["", "## Medium CNN, kernel sizes 1-7", "",
              "| kernel size | step time ratio (95% CI) | kernel ratio | memory ratio | final weights |",
              "|---|---|---|---|---|"]
    for k in KERNEL_SIZES:
        doc = _load(results, f"medium-cnn-k{k}")
        lines.append(f"| {k} | {_ratio(doc)} | {_number(doc and doc.get('kernel_ratio'))} | "
                     f"{_number(doc and doc.get('memory_ratio'))} | {_bitwise(doc)} |")
    ranges = "; ".join(f"{r['gpu'].upper()} {r['low']:.2f}-{r['high']:.2f}" for r in
                       paper["medium_cnn_kernel_size_ranges"])
    lines += ["", f"Paper, kernel sizes 1 to 7 (kernel time ratio): {ranges}; larger kernels always costlier.", "",
              f"Source of the paper's figures: {paper['source']}"]
    lines += ["", "## Stability on this device (digits, small CNN)", "",
              "| variant | mode | runs | accuracy mean | churn | L2 of unit weights | "
              "paired with (same seeds, other mode) |",
              "|---|---|---|---|---|---|---|"]
    for variant in ("algo+impl", "algo", "impl", "control", "order-only"):
        doc = _load(results, f"stability-{variant}")
        if not doc or doc.get("churn") is None:
            lines.append(f"| {variant} | — | — | not measured | — | — | — |")
            continue
        paired = doc.get("paired_with")
        partner = ("—" if not paired else f"{paired['variant']}: churn {100 * paired['churn']:.2f}%, "
                   f"{paired['bitwise_identical_pairs']} of {paired['pairs']} bit-identical")
        batch = f" (batch {doc['recipe']['batch_size']})" if variant == "order-only" else ""
        lines.append(f"| {variant}{batch} | {doc['mode']} | {doc['runs']} | {100 * doc['accuracy_mean']:.2f}% | "
                     f"{100 * doc['churn']:.2f}% | {doc['l2']:.3g} | {partner} |")
    lines += ["", "## Bitwise checks (two trainings in fresh processes), audit and advice", "",
              "| network | mode | bitwise identical | max weight difference | first divergence |",
              "|---|---|---|---|---|"]
    for net in CHECKED:
        for mode in ("default", "deterministic"):
            doc = _load(results, f"check-{net}-{mode}")
            if not doc:
                lines.append(f"| {net} | {mode} | not measured | — | — |")
                continue
            div = doc.get("first_divergence")
            op = (div or {}).get("op") or {}
            where = "—" if not div else (f"step {div['step']}, {div['parameter']}"
                                         + (f"; {op['op']} in {op['module']} ({op['phase']}, {op['kind']})"
                                            if op else ""))
            lines.append(f"| {net} | {mode} | {'yes' if doc['bitwise_identical'] else 'no'} | "
                         f"{doc['max_abs_diff']:.3g} | {where} |")
    for net in CHECKED:
        doc = _load(results, f"audit-{net}")
        if doc:
            ops = ", ".join(f"{o['op']} ({', '.join(o['modules'])})" for o in doc["nondeterministic_ops"]) or "none"
            lines.append(f"\naudit {net}: fully deterministic {doc['fully_deterministic']}; ops without a "
                         f"deterministic implementation: {ops}; {len(doc['swapped_kernels'])} kernels swapped")
    advice = _load(results, "advise-medium-cnn-k7")
    if advice:
        best = advice.get("recommendation")
        lines.append("\nadvise medium-cnn k=7: " + ("no candidate bitwise identical" if not best else
                     f"{best['mode']}, step time ratio {_number(best['ratio'])} (95% CI {best['ratio_ci']}), "
                     f"Megatron-LM 10% target: {best['megatron_target']}"))
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
    report = commands.add_parser("summary")
    report.add_argument("results_dir")
    report.add_argument("--out")
    args = parser.parse_args()
    if args.command == "environment":
        return environment()
    if args.command == "scan-check":
        return scan_check(args.result_json)
    return summary(args.results_dir, args.out)


if __name__ == "__main__":
    sys.exit(main())
