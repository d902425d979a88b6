#!/usr/bin/env bash
# The first run of detprof on a GPU machine, as ONE device call (see benchmarks/gpu_campaign.py for
# the order of the steps, the budget and what comes back):
#
#     bash benchmarks/gpu_campaign.sh --plan          # the steps, their estimates, the cumulative time
#     bash benchmarks/gpu_campaign.sh --dry-run       # the same pipeline on this CPU at tiny sizes
#
# On the device (the device tool's `run`; plotly's wheel travels in the ignored .whl/ folder, so it
# must be named in carry, or the report is not written):
#
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl plotly==7.1.0 narwhals
#     run(command="bash benchmarks/gpu_campaign.sh", carry=[".whl"], timeout_s=570)
#
# The default budget is 540 s (30 s of it kept for the summary and the report), so a 570 s call holds
# the whole campaign, and 15 minutes of device time leave the machine's start-up and a short second call.
exec python3 "$(dirname "$0")/gpu_campaign.py" "$@"
