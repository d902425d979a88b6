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
#     pip download --no-deps -d .whl plotly narwhals      # here, once: pure-Python wheels
#     run(command="bash benchmarks/gpu_campaign.sh", carry=[".whl"], timeout_s=540)
#
# The default budget is 480 s, so a 540 s call holds the whole campaign with its 30 s reserve, and
# 15 minutes of device time leave room for a short second call after the machine's start-up.
exec python3 "$(dirname "$0")/gpu_campaign.py" "$@"
