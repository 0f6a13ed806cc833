"""Three subclassed Keras models for tests/runtime/test_subclassed.py.

This file is both imported by the tests (to build and save the models) and handed to the explorer as the
``--custom-objects`` file (run with runpy in the worker or CLI process), so it must stay self-contained:
nothing here may import from the test suite. Each class is registered under the ``explorer_subclassed``
package so that a saved file names it ``explorer_subclassed>Plain`` etc.

- ``Plain``: conv -> pool -> a list of residual Dense blocks (``keras.ops.relu``, add) -> head. Only Keras
  layers and ``keras.ops``: ``model.call`` on a symbolic input yields the real graph.
- ``Branchy``: a Python ``if`` over a tensor value; a KerasTensor has no truth value, so symbolic tracing
  fails and the explorer falls back to recording one eager forward pass.
- ``RawTF``: raw TensorFlow ops (``tf.nn.relu``, ``tf.reduce_mean``) on the outputs of sublayers; Keras 3
  KerasTensors cannot enter TensorFlow functions, so symbolic tracing fails here too.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import tensorflow as tf

PACKAGE = "explorer_subclassed"
INPUT_SHAPE = (8, 8, 3)  # one example, without the batch axis


@keras.saving.register_keras_serializable(package=PACKAGE)
class Plain(keras.Model):
    def __init__(self, filters: int = 6, depth: int = 2, classes: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.depth, self.classes = filters, depth, classes
        self.conv = keras.layers.Conv2D(filters, 3, padding="same", name="conv")
        self.pool = keras.layers.GlobalAveragePooling2D(name="pool")
        self.blocks = [keras.layers.Dense(filters, name=f"block_{i}") for i in range(depth)]
        self.head = keras.layers.Dense(classes, name="head")

    def call(self, inputs):
        x = self.pool(keras.ops.relu(self.conv(inputs)))
        for block in self.blocks:
            x = keras.ops.add(x, keras.ops.relu(block(x)))
        return self.head(x)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "depth": self.depth, "classes": self.classes}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Branchy(keras.Model):
    """``if mean(x) >= 0`` takes ``positive`` (zeros, and the tests' inputs, take this branch)."""

    def __init__(self, units: int = 5, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.flatten = keras.layers.Flatten(name="flatten")
        self.stem = keras.layers.Dense(units, name="stem")
        self.positive = keras.layers.Dense(units, activation="relu", name="positive")
        self.negative = keras.layers.Dense(units, activation="tanh", name="negative")
        self.head = keras.layers.Dense(2, name="head")

    def build(self, input_shape):
        # Explicit: the default build would run ``call`` symbolically, which the branch below cannot do.
        flat = (input_shape[0], int(keras.ops.prod(input_shape[1:])))
        self.stem.build(flat)
        for layer in (self.positive, self.negative, self.head):
            layer.build((input_shape[0], self.units))
        self.built = True

    def call(self, inputs):
        x = self.stem(self.flatten(inputs))
        if keras.ops.mean(inputs) >= 0:  # noqa: SIM108 (a Python bool from a tensor: concrete values only)
            x = self.positive(x)
        else:
            x = self.negative(x)
        return self.head(x)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package=PACKAGE)
class RawTF(keras.Model):
    def __init__(self, units: int = 7, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.conv = keras.layers.Conv2D(4, 3, name="conv")
        self.dense = keras.layers.Dense(units, name="dense")
        self.head = keras.layers.Dense(3, name="head")

    def call(self, inputs):
        x = tf.nn.relu(self.conv(inputs))
        x = tf.reduce_mean(x, axis=[1, 2])
        x = tf.nn.relu(self.dense(x))
        return self.head(x)

    def get_config(self):
        return {**super().get_config(), "units": self.units}
