#!/usr/bin/env bash
# The first run of detprof on a GPU machine, as ONE command: everything a reviewer needs to trust
# the GPU path and the paper's overhead figures, in priority order, within a time budget, with no
# network and no install (detprof runs from the tree; a plotly wheel in .whl/ is used if present).
#
#     bash benchmarks/gpu_campaign.sh [--out DIR] [--budget SECONDS] [--dry-run]
#
# --out DIR      where everything goes (default: $OUT when set, else ./campaign-out); at most 8 files:
#                campaign.log, environment.txt, pytest_gpu.txt, results.tar.gz (one JSON per run,
#                kernel tables, the SQLite store), traces.tar.gz (the profiled passes), summary.md,
#                report.html
# --budget S     seconds for the whole campaign (default 540: 9 minutes, inside a 10-minute device call); a step
#                that would not fit in what is left is skipped and says so
# --dry-run      the same pipeline on the CPU at tiny sizes (under 5 minutes on 2 cores; CI runs it)
#
# Steps, in priority order: environment (nvidia-smi, versions, TF32); pytest -m gpu; the worker in
# both modes with the GPU monitor and its trace (fast scan vs full parse); A/A on resnet50 (goal
# within ±1%); default vs deterministic at the paper's setting (224x224, batch 64) for vgg19,
# resnet50, mobilenet-v2, densenet121 and medium-cnn at kernel sizes 1, 3, 5, 7, each with bitwise
# evidence per mode; the top-20 kernels of vgg19 in both modes; the four stability variants and the
# full-batch data-order experiment on digits on the GPU; MobileNet v1 (the paper's "nearly free"
# network); check in both modes (locating the first divergent op), audit, for vgg19, resnet50 and
# medium-cnn at kernel size 7, and advise for medium-cnn k=7; the summary and the HTML report.
# Fewer timed steps than the paper's 100 are used so that everything fits: the numbers say so.
set -uo pipefail
cd "$(dirname "$0")/.."

out="${OUT:-campaign-out}"
budget=540
dry_run=0
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        --budget) budget="$2"; shift 2 ;;
        --dry-run) dry_run=1; shift ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "gpu_campaign.sh: error: unknown argument '$1'; accepted: --out DIR, --budget SECONDS, --dry-run" >&2
           exit 2 ;;
    esac
done
case "$budget" in ''|*[!0-9]*) echo "gpu_campaign.sh: error: --budget '$budget' is not accepted; use whole seconds" >&2
                               exit 2 ;; esac

mkdir -p "$out"
work="$(mktemp -d)"
results="$work/results"
mkdir -p "$results"
db="$results/campaign.sqlite"
log="$out/campaign.log"
: > "$log"
started=$(date +%s)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python=python3
command -v "$python" >/dev/null || python=python

# Pure-Python wheels carried to a machine without network (plotly for the report).
if ls .whl/*.whl >/dev/null 2>&1; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --target "$work/site" .whl/*.whl >>"$log" 2>&1 \
        && export PYTHONPATH="$PYTHONPATH:$work/site"
fi

say() { echo "[$(( $(date +%s) - started ))s] $*" | tee -a "$log" >&2; }
left() { echo $(( budget - ($(date +%s) - started) )); }

pack() {  # after every step, so that a run cut short still returns what it measured (traces apart: size)
    tar -czf "$out/results.tar.gz.tmp" -C "$work" --exclude=results/traces results \
        && mv "$out/results.tar.gz.tmp" "$out/results.tar.gz"
}

pack_traces() {  # the profiled passes' Chrome traces; only vgg19's if all of them pass 15 MiB
    [ -d "$results/traces" ] || return 0
    tar -czf "$out/traces.tar.gz" -C "$work" results/traces
    if [ "$(stat -c %s "$out/traces.tar.gz")" -gt $((15 * 1024 * 1024)) ]; then
        local vgg_dir
        vgg_dir=$("$python" -c "import json,sys,os; print(os.path.relpath(json.load(open(sys.argv[1]))['trace_dir'], \
                  sys.argv[2]))" "$results/vgg19.json" "$work" 2>/dev/null) || vgg_dir=""
        if [ -n "$vgg_dir" ]; then tar -czf "$out/traces.tar.gz" -C "$work" "$vgg_dir"; else rm -f "$out/traces.tar.gz"; fi
        say "traces.tar.gz holds vgg19's traces only (all of them exceed 15 MiB)"
    fi
}

# step NAME ESTIMATE_S TIMEOUT_S OUTFILE COMMAND...: run COMMAND (stdout to OUTFILE, or the log for
# "-") if ESTIMATE_S fits in what is left of the budget; record its exit code and time either way.
step() {
    local name="$1" estimate="$2" limit="$3" target="$4"; shift 4
    if [ "$(left)" -lt "$estimate" ]; then
        say "SKIPPED $name: needs about ${estimate}s, $(left)s left"
        echo "$name: skipped (budget)" >> "$results/steps.txt"
        return 0
    fi
    # Never past the budget by more than the step's own estimate: the device call has a hard limit.
    local cap t0 rc
    cap=$(left)
    [ "$cap" -gt "$limit" ] && cap=$limit
    [ "$cap" -lt "$estimate" ] && cap=$estimate
    say "START $name (limit ${cap}s)"
    t0=$(date +%s)
    if [ "$target" = "-" ]; then
        timeout "$cap" "$@" >>"$log" 2>&1
    else
        timeout "$cap" "$@" >"$target" 2>>"$log"
    fi
    rc=$?
    say "END $name: exit $rc in $(( $(date +%s) - t0 ))s"
    echo "$name: exit $rc in $(( $(date +%s) - t0 ))s" >> "$results/steps.txt"
    pack
}

detprof=("$python" -m detprof.cli)
if [ "$dry_run" = 1 ]; then
    device=(--gpu cpu)
    paper=(--batch-size 2 --image-size 64 --warmup 1 --steps 2 --profile-steps 1 --repeats 3)
    aa=(--arch resnet50 --batch-size 2 --image-size 32 --warmup 1 --steps 3 --profile-steps 0
        --precision 0.5 --max-time 20)
    stability=(--epochs 1)
    check_size=(--batch-size 2 --image-size 64)
    check_steps=2
    advise_time=3
    est_run=25; est_aa=30; est_stability=20; est_check=10; est_advise=40
else
    device=(--gpu auto)
    # The paper's setting (224x224, batch 64) with 20 timed steps instead of 100, so that all nine
    # measurements fit; GPU steps are steady, and the paired CI says how precise each ratio is.
    paper=(--batch-size 64 --image-size 224 --warmup 5 --steps 20 --profile-steps 3 --repeats 3)
    aa=(--arch resnet50 --batch-size 64 --image-size 224 --warmup 5 --steps 20 --profile-steps 0
        --precision 0.01 --max-time 60)
    stability=()
    check_size=(--batch-size 64 --image-size 224)
    check_steps=10
    advise_time=30
    est_run=45; est_aa=75; est_stability=40; est_check=40; est_advise=200
fi
overhead=("${detprof[@]}" overhead "${device[@]}" --db "$db" --json)

say "detprof GPU campaign: out=$out budget=${budget}s dry_run=$dry_run"
{ echo "== date"; date -u; echo "== nvidia-smi"; timeout 30 nvidia-smi 2>&1 || echo "nvidia-smi not available"
  echo "== nvidia-smi -q (clocks, power, performance)"; timeout 30 nvidia-smi -q -d CLOCK,POWER,PERFORMANCE 2>&1 || true
  echo "== python, packages, CUDA, cuDNN, TF32"; timeout 120 "$python" benchmarks/campaign_checks.py environment 2>&1
  echo "== detprof gpus"; timeout 60 "${detprof[@]}" gpus 2>&1; } > "$out/environment.txt"
say "environment recorded"
step "pytest -m gpu" 90 240 "$out/pytest_gpu.txt" "$python" -m pytest -m gpu -q -p no:cacheprovider tests/test_gpu.py
step "vgg19" "$est_run" 300 "$results/vgg19.json" "${overhead[@]}" --arch vgg19 "${paper[@]}"
step "fast scan equals full parse" 10 120 - "$python" benchmarks/campaign_checks.py scan-check "$results/vgg19.json"
step "A/A resnet50" "$est_aa" 240 "$results/aa-resnet50.json" "${overhead[@]}" --modes default,default "${aa[@]}"
step "resnet50" "$est_run" 300 "$results/resnet50.json" "${overhead[@]}" --arch resnet50 "${paper[@]}"
step "mobilenet-v2" "$est_run" 300 "$results/mobilenet-v2.json" "${overhead[@]}" --arch mobilenet-v2 "${paper[@]}"
step "densenet121" "$est_run" 300 "$results/densenet121.json" "${overhead[@]}" --arch densenet121 "${paper[@]}"
for k in 1 3 5 7; do
    step "medium-cnn k=$k" "$est_run" 300 "$results/medium-cnn-k$k.json" \
        "${overhead[@]}" --arch medium-cnn --kernel-size "$k" "${paper[@]}"
done

vgg19_run=$("$python" -c "import json,sys; print(json.load(open(sys.argv[1]))['run_id'])" "$results/vgg19.json" \
            2>/dev/null || echo "")
if [ -n "$vgg19_run" ]; then
    for mode in default deterministic; do
        step "vgg19 top-20 $mode" 5 120 "$results/vgg19-top20-$mode.json" \
            "${detprof[@]}" kernels --run "$vgg19_run" --mode "$mode" --top 20 --db "$db" --json
        COLUMNS=200 timeout 60 "${detprof[@]}" kernels --run "$vgg19_run" --mode "$mode" --top 20 --db "$db" \
            >>"$log" 2>&1
    done
else
    say "SKIPPED vgg19 top-20: the vgg19 run was not stored"
fi
# The four noise variants and the full-batch data-order experiment on the GPU, where implementation
# noise lives (digits, small CNN; 3 runs each: enough for churn and L2, and for bit-identity).
for variant in algo+impl algo impl control; do
    step "stability $variant" "$est_stability" 300 "$results/stability-$variant.json" \
        "${detprof[@]}" stability --task digits --variant "$variant" --runs 3 "${stability[@]}" \
        "${device[@]}" --db "$db" --json
done
step "stability order-only full batch" "$est_stability" 300 "$results/stability-order-only.json" \
    "${detprof[@]}" stability --task digits --order-only --batch-size 1437 --runs 3 "${stability[@]}" \
    "${device[@]}" --db "$db" --json
# The paper's "nearly free" network is MobileNet v1 (Howard et al. 2017): measured last, if time is left.
step "mobilenet (v1)" "$est_run" 300 "$results/mobilenet.json" "${overhead[@]}" --arch mobilenet "${paper[@]}"
# Is training bitwise reproducible on this GPU, which op breaks it, and what does it need (issue 11):
# check in both modes (the default one locates the first divergent op), audit, then advise.
for net in vgg19 resnet50 medium-cnn-k7; do
    arch=(--arch "$net"); [ "$net" = medium-cnn-k7 ] && arch=(--arch medium-cnn --kernel-size 7)
    step "check $net default" "$est_check" 300 "$results/check-$net-default.json" \
        "${detprof[@]}" check "${arch[@]}" "${device[@]}" "${check_size[@]}" --steps "$check_steps" --mode default --locate-op --json
    step "check $net deterministic" "$est_check" 300 "$results/check-$net-deterministic.json" \
        "${detprof[@]}" check "${arch[@]}" "${device[@]}" "${check_size[@]}" --steps "$check_steps" --mode deterministic --json
    step "audit $net" "$est_check" 300 "$results/audit-$net.json" \
        "${detprof[@]}" audit "${arch[@]}" "${device[@]}" "${check_size[@]}" --json
done
step "advise medium-cnn k=7" "$est_advise" 420 "$results/advise-medium-cnn-k7.json" \
    "${detprof[@]}" advise --arch medium-cnn --kernel-size 7 "${device[@]}" "${check_size[@]}" --steps "$check_steps" \
    --max-time "$advise_time" --db "$db" --json
step "summary" 5 120 - "$python" benchmarks/campaign_checks.py summary "$results" --out "$out/summary.md"
step "report" 10 180 - "${detprof[@]}" report --db "$db" --out "$out/report.html"
pack
pack_traces
say "done in $(( $(date +%s) - started ))s; files in $out:"
ls -la "$out" | tee -a "$log" >&2
rm -rf "$work"
