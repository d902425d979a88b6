"""Wall time of the README's main job: `detprof overhead` with every default, on this machine's CPU.

Runs the real command line (fresh worker processes, profiler, store) several times into a
throw-away database and reports each wall time, the median, and the measured ratio. Goal on
the 2-core CPU machine: under 60 s.

    python benchmarks/main_job.py [--trials 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    walls = []
    with tempfile.TemporaryDirectory() as scratch:
        for trial in range(args.trials):
            db = Path(scratch, f"trial{trial}.sqlite")
            started = time.perf_counter()
            process = subprocess.run([sys.executable, "-m", "detprof.cli", "overhead", "--db", str(db), "--json"],
                                     capture_output=True, text=True, check=True)
            walls.append(time.perf_counter() - started)
            doc = json.loads(process.stdout)
            print(json.dumps({"trial": trial, "wall_s": round(walls[-1], 1), "arch": doc["arch"],
                              "ratio": round(doc["ratio"], 4),
                              "ratio_ci": doc["ratio_ci"] and [round(x, 4) for x in doc["ratio_ci"]],
                              "pairs": doc["ratio_pairs"], "stopped_by": doc["precision"]["stopped_by"],
                              "kernel_ratio": doc["kernel_ratio"] and round(doc["kernel_ratio"], 4),
                              "step_ms": [round(m["step_ms"], 1) for m in doc["modes"]],
                              "verdict": doc["verdict"]}))
    print(f"main job wall time: median {statistics.median(walls):.1f} s, max {max(walls):.1f} s "
          f"over {len(walls)} trials (goal < 60 s)")


if __name__ == "__main__":
    main()
