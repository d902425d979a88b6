"""The defaults and limits of the checks, in a module that imports nothing, so that the command
line's help and its refusals need no framework."""

DEFAULT_STEPS = 10  # training steps of each run of a check
MAX_STEPS = 10_000
DEFAULT_AUDIT_STEPS = 3  # an op a step takes only from its second or third step on is still met
DEFAULT_BATCH_SIZES = (1, 8, 64)  # check --batch-invariance
MAX_LOADER_WORKERS = 64
MAX_WORLD_SIZE = 16
RUN_TIMEOUT_S = 1800.0  # seconds one run of a check may take before it is killed
MAX_BUCKET_CAP_MB = 1_048_576.0  # 1 TiB: no DDP gradient bucket is larger
