"""The Keras training step every TensorFlow job runs (``overhead`` and ``check`` alike): the
model, one synthetic batch drawn from the seed, SGD with momentum (detprof.workload.RECIPE, as in
the PyTorch jobs), and a ``tf.function`` step that returns the loss. Imports TensorFlow: job processes only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from detprof.backends.tf.zoo import build_keras_model
from detprof.workload.recipe import RECIPE


@dataclass
class KerasTraining:
    """A model and its training step; ``step()`` runs one SGD step and returns the loss tensor."""

    model: Any
    step: Any


def keras_training(tf: Any, keras: Any, workload: dict[str, Any], seed: int, build_device: str) -> KerasTraining:
    """The workload's model and batch, made on ``build_device`` (``/CPU:0`` gives the same bits on
    any device the steps later run on), and its ``tf.function`` training step."""
    with tf.device(build_device):
        model = build_keras_model(workload["arch"], workload["num_classes"], workload["image_size"],
                                  workload.get("kernel_size", 3), workload.get("batch_norm", False))
        side, batch = workload["image_size"], workload["batch_size"]
        inputs = tf.random.stateless_normal((batch, side, side, 3), seed=(seed, 0))
        targets = tf.random.stateless_uniform((batch,), seed=(seed, 1), maxval=workload["num_classes"], dtype=tf.int32)
    optimizer = keras.optimizers.SGD(learning_rate=RECIPE.learning_rate, momentum=RECIPE.momentum)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step() -> Any:
        with tf.GradientTape() as tape:
            loss = loss_fn(targets, model(inputs, training=True))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss

    return KerasTraining(model, step)
