"""What ``check --framework tf`` runs in a new interpreter (never beside torch):

    python -m detprof.backends.tf.trainer SPEC.json RESULT.json --parent PID

Trains the spec's Keras model ``steps`` steps from its seed (``keras.utils.set_random_seed``; op
determinism in the deterministic mode) and records, per step, the loss's exact bits and a SHA-256
of every weight; the final weights are saved beside the result (``RESULT.json.npz``) so that the
parent can compute the largest difference. The spec is a CheckSideSpec (detprof.check.spec) as JSON:
workload, mode, device, threads, seed, steps.
"""

from __future__ import annotations

import hashlib
import json
import sys
import traceback
from pathlib import Path
from typing import Any

from detprof.backends.tf.training import keras_training
from detprof.check.spec import CheckSideSpec
from detprof.documents import write_result
from detprof.process.processes import die_with_parent_in


def _digest(value: Any) -> str:
    return hashlib.sha256(value.tobytes()).hexdigest()[:16]


def train_and_record(raw: dict[str, Any], out_path: str) -> None:
    """Train and write the result document (steps, parameters, device, threads) and the weights;
    ``raw`` is a CheckSideSpec as JSON, read back (a field it does not know fails here)."""
    import numpy as np
    import tensorflow as tf

    spec = CheckSideSpec.from_json(raw)
    on_gpu = spec.device.startswith("cuda")
    if spec.threads:
        tf.config.threading.set_intra_op_parallelism_threads(int(spec.threads))
        tf.config.threading.set_inter_op_parallelism_threads(int(spec.threads))
    import keras

    keras.utils.set_random_seed(spec.seed)
    if spec.mode == "deterministic":
        tf.config.experimental.enable_op_determinism()
    # Weights and the batch are made on the CPU, so both runs start from the same bits on any device.
    training = keras_training(tf, keras, spec.workload.as_dict(), spec.seed, "/CPU:0")
    model, step = training.model, training.step
    names = [getattr(w, "path", w.name) for w in model.trainable_weights]
    steps = []
    control = None
    with tf.device("/GPU:0" if on_gpu else "/CPU:0"):
        for _ in range(spec.steps):
            loss = step()
            weights = [w.numpy() for w in model.trainable_weights]
            steps.append({"loss": float(loss.numpy()).hex(), "params": [_digest(w) for w in weights]})
            if control is None and weights:
                # the sensitivity control: the first weight's first element moved by one ulp, hashed alike
                nudged = weights[0].copy()
                nudged.flat[0] = np.nextafter(nudged.flat[0], np.inf)
                control = {"parameter": names[0], "params": [_digest(nudged), *(_digest(w) for w in weights[1:])]}
    state = {getattr(w, "path", w.name): w.numpy() for w in model.weights}
    np.savez(out_path + ".npz", **{f"w{index}": value for index, value in enumerate(state.values())})
    device_name = "cpu"
    if on_gpu:
        details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
        device_name = details.get("device_name") or "GPU"
    write_result(out_path, {"steps": steps, "parameters": names, "state_names": list(state), "device": device_name,
                            "threads": spec.threads, "nondeterministic_ops": [], "framework": "tensorflow",
                            "version": f"tensorflow {tf.__version__}",
                            "ulp_control": control,
                            "torch_loaded": "torch" in sys.modules})


def main(argv: list[str]) -> int:
    spec_path, out_path = die_with_parent_in(argv)
    try:
        train_and_record(json.loads(Path(spec_path).read_text()), out_path)
        return 0
    except Exception as error:  # the parent reports it in one line
        write_result(out_path, {"error": f"{type(error).__name__}: {error}"[:2000],
                                "traceback": traceback.format_exc()[-4000:]})
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
