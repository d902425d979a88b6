#!/usr/bin/env bash
# The issue's GPU measurements: vgg19, resnet50 and medium-cnn at kernel sizes 1, 3 and 7, default
# vs deterministic, with the paper's setting (224x224, batch 64, 100 timed steps), each written as
# JSON to kernels_db/measured/<gpu>/. Run it on a machine with a CUDA GPU:
#     bash benchmarks/gpu_reference_runs.sh h100 [OUTDIR]
set -euo pipefail
gpu="${1:?usage: gpu_reference_runs.sh GPU_ALIAS [OUTDIR]}"
outdir="${2:-kernels_db/measured/$gpu}"
mkdir -p "$outdir"
db="$outdir/results.sqlite"
run() {
    local name="$1"; shift
    echo "== $name" >&2
    python -m detprof.cli overhead --gpu "$gpu" --db "$db" --json "$@" > "$outdir/$name.json"
}
run vgg19 --arch vgg19
run resnet50 --arch resnet50
for k in 1 3 7; do
    run "medium-cnn-k$k" --arch medium-cnn --kernel-size "$k"
done
python - "$outdir" <<'PY'
import json, pathlib, sys
for f in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    d = json.loads(f.read_text())
    print(f"{f.stem:16s} step x{d['ratio']:.3f} CI {d['ratio_ci'][0]:.3f}-{d['ratio_ci'][1]:.3f}  "
          f"kernel x{d['kernel_ratio']:.3f}  noisy={d['noisy']}")
PY
