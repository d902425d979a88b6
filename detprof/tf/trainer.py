"""What ``check --framework tf`` runs in a new interpreter (never beside torch):

    python -m detprof.tf.trainer SPEC.json RESULT.json --parent PID

Trains the spec's Keras model ``steps`` steps from its seed (``keras.utils.set_random_seed``; op
determinism in the deterministic mode) and records, per step, the loss's exact bits and a SHA-256
of every weight; the final weights are saved beside the result (``RESULT.json.npz``) so that the
parent can compute the largest difference. The spec has the keys of detprof.check.run's sides:
workload, mode, device, threads, seed, steps.
"""

from __future__ import annotations

import hashlib
import json
import sys
import traceback
from pathlib import Path
from typing import Any

from detprof.runner.processes import die_with
from detprof.tf.zoo import build_keras_model

LEARNING_RATE = 0.01
MOMENTUM = 0.9


def _digest(value: Any) -> str:
    return hashlib.sha256(value.tobytes()).hexdigest()[:16]


def train_and_record(spec: dict[str, Any], out_path: str) -> None:
    """Train and write the result document (steps, parameters, device, threads) and the weights."""
    import numpy as np
    import tensorflow as tf

    on_gpu = spec["device"].startswith("cuda")
    if spec.get("threads"):
        tf.config.threading.set_intra_op_parallelism_threads(int(spec["threads"]))
        tf.config.threading.set_inter_op_parallelism_threads(int(spec["threads"]))
    import keras

    keras.utils.set_random_seed(spec["seed"])
    if spec["mode"] == "deterministic":
        tf.config.experimental.enable_op_determinism()
    workload = spec["workload"]
    # Weights and the batch are made on the CPU, so both runs start from the same bits on any device.
    with tf.device("/CPU:0"):
        model = build_keras_model(workload["arch"], workload["num_classes"], workload["image_size"],
                                  workload.get("kernel_size", 3), workload.get("batch_norm", False))
        side, batch = workload["image_size"], workload["batch_size"]
        inputs = tf.random.stateless_normal((batch, side, side, 3), seed=(spec["seed"], 0))
        targets = tf.random.stateless_uniform((batch,), seed=(spec["seed"], 1), maxval=workload["num_classes"],
                                              dtype=tf.int32)
    optimizer = keras.optimizers.SGD(learning_rate=LEARNING_RATE, momentum=MOMENTUM)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step() -> Any:
        with tf.GradientTape() as tape:
            loss = loss_fn(targets, model(inputs, training=True))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss

    names = [getattr(w, "path", w.name) for w in model.trainable_weights]
    steps = []
    with tf.device("/GPU:0" if on_gpu else "/CPU:0"):
        for _ in range(int(spec["steps"])):
            loss = step()
            steps.append({"loss": float(loss.numpy()).hex(), "params": [_digest(w.numpy()) for w in
                                                                        model.trainable_weights]})
    state = {getattr(w, "path", w.name): w.numpy() for w in model.weights}
    np.savez(out_path + ".npz", **{f"w{index}": value for index, value in enumerate(state.values())})
    device_name = "cpu"
    if on_gpu:
        details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
        device_name = details.get("device_name") or "GPU"
    _write(out_path, {"steps": steps, "parameters": names, "state_names": list(state), "device": device_name,
                      "threads": spec.get("threads"), "nondeterministic_ops": [], "framework": "tensorflow",
                      "torch_loaded": "torch" in sys.modules})


def _write(out_path: str, document: dict[str, Any]) -> None:
    partial = Path(out_path + ".partial")
    partial.write_text(json.dumps(document))
    partial.replace(out_path)


def main(argv: list[str]) -> int:
    if "--parent" in argv:
        at = argv.index("--parent")
        die_with(int(argv[at + 1]))
        argv = argv[:at] + argv[at + 2:]
    spec_path, out_path = argv
    try:
        train_and_record(json.loads(Path(spec_path).read_text()), out_path)
        return 0
    except Exception as error:  # the parent reports it in one line
        _write(out_path, {"error": f"{type(error).__name__}: {error}"[:2000],
                          "traceback": traceback.format_exc()[-4000:]})
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
