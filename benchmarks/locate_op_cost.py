"""What ``detprof check --locate-op`` costs against a plain check, and what hashing a tensor costs.

    python benchmarks/locate_op_cost.py [--arch resnet18] [--trials 5] [--device cpu] [--options "..."]
    python benchmarks/locate_op_cost.py --arch gpt2-small --options "--seq-len 16 --batch-size 2 --steps 2"

1. End to end: ``detprof check --threads 1,2`` (two trainings that differ from step 1 on a CPU, so
   that op location has something to find) with and without ``--locate-op``, alternated, each a
   fresh command; wall time of each, and the ratio of medians.
2. The digest itself: ``device_digest`` (computed where the tensor lives; 16 bytes cross to the
   host) against the byte copy plus BLAKE2b that detprof used before, on a 64 MiB float32 tensor.

Output goes to stdout as a table; docs/benchmarks.md quotes it with the command and the date.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def check_seconds(arch: str, device: str, locate: bool, options: list[str]) -> tuple[float, dict[str, object]]:
    """Wall seconds of one ``detprof check`` command, and its --json document."""
    argv = [sys.executable, "-m", "detprof.cli", "check", "--arch", arch, "--gpu", device, "--json", *options]
    argv += ["--threads", "1,2"] if device == "cpu" else ["--mode", "default"]
    argv += ["--locate-op"] if locate else []
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"check failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    return elapsed, json.loads(done.stdout)


def digest_seconds(device: str, repeats: int = 5) -> tuple[float, float]:
    """(device digest, host copy + BLAKE2b) in seconds per 64 MiB tensor, best of ``repeats``."""
    import torch

    from detprof.backends.torch.digests import tensor_digest

    target = "cuda" if device != "cpu" else "cpu"
    tensor = torch.randn(16 * 1024 * 1024, device=target)

    def old(t: torch.Tensor) -> str:
        digest = hashlib.blake2b(f"{t.dtype}|{tuple(t.shape)}|".encode(), digest_size=16)
        digest.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    results = []
    for function in (tensor_digest, old):
        best = float("inf")
        for _ in range(repeats):
            if target == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            function(tensor)
            if target == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - started)
        results.append(best)
    return results[0], results[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="cpu, or a GPU as detprof's --gpu takes it")
    parser.add_argument("--options", default="", help="more options for every check, e.g. \"--seq-len 16\"")
    args = parser.parse_args()
    options = shlex.split(args.options)
    plain, located, ratios = [], [], []
    found = None
    for trial in range(args.trials):
        order = (False, True) if trial % 2 == 0 else (True, False)  # alternated: drift favours neither
        seconds = {}
        for locate in order:
            seconds[locate], document = check_seconds(args.arch, args.device, locate, options)
            (located if locate else plain).append(seconds[locate])
            if locate and document.get("first_divergence"):
                found = document["first_divergence"]
        ratios.append(seconds[True] / seconds[False])  # side by side: the pair shares the machine's load
    print(f"detprof check --arch {args.arch} {' '.join(options)} ({args.device}), {args.trials} trials each, "
          "alternated, wall seconds")
    print(f"  plain check:      median {statistics.median(plain):6.1f}  range {min(plain):.1f}-{max(plain):.1f}")
    print(f"  with --locate-op: median {statistics.median(located):6.1f}  range {min(located):.1f}-{max(located):.1f}")
    print(f"  ratio of medians: x{statistics.median(located) / statistics.median(plain):.2f}; per pair: median "
          f"x{statistics.median(ratios):.2f}, range x{min(ratios):.2f}-x{max(ratios):.2f}")
    if found and isinstance(found, dict) and found.get("op"):
        op = found["op"]
        print(f"  first divergent op: {op.get('op')} in {op.get('module')} ({op.get('phase')}), op "
              f"{op.get('index', '?')} of {found.get('ops_recorded')} recorded, step {found.get('step')}")
    else:
        print("  the two runs did not differ: there was no op to locate")
    new, old = digest_seconds(args.device)
    print(f"digest of a 64 MiB float32 tensor ({args.device}), best of 5: on the device {1000 * new:.1f} ms; "
          f"host copy + BLAKE2b {1000 * old:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
