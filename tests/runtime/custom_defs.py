"""Unregistered custom code, as a training script usually holds it, for tests/runtime/test_custom_code.py.

Nothing here is registered with Keras: a saved file names the classes and the function only by their names,
and only ``custom_objects={...}`` (what the explorer collects from this file) lets Keras find them. The tests
run this file with runpy (never import it), so the saved classes live in a module Keras cannot import.

- ``Scale`` (a layer) and ``shifted_relu`` (an activation function) in the Functional ``small_functional``;
- ``Net``: a subclassed model written properly (``**kwargs``, ``get_config``);
- ``Rigid``: a subclassed model whose ``__init__`` takes no ``**kwargs``: Keras saves it, but cannot rebuild
  it from the file (``unexpected keyword argument 'trainable'``); only building it from code works;
- ``TinyConv``: an image model like ``Rigid``, whose weights-only file gets built from code with a given shape.
"""

import keras

INPUT_SHAPE = (6,)


def shifted_relu(x):
    return keras.ops.relu(x - 0.1)


class Scale(keras.layers.Layer):
    def __init__(self, factor: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def build(self, input_shape):
        self.offset = self.add_weight(shape=(input_shape[-1],), initializer="random_normal", name="offset")

    def call(self, inputs):
        return inputs * self.factor + self.offset

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def small_functional(units: int = 4) -> keras.Model:
    inputs = keras.Input(INPUT_SHAPE, name="values")
    x = keras.layers.Dense(units, activation=shifted_relu, name="dense")(inputs)
    x = Scale(1.5, name="scale")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(x), name="small_functional")


class Net(keras.Model):
    def __init__(self, units: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense = keras.layers.Dense(units, name="dense")
        self.scale = Scale(0.5, name="scale")
        self.head = keras.layers.Dense(2, name="head")

    def call(self, inputs):
        return self.head(keras.ops.relu(self.scale(self.dense(inputs))))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class Rigid(keras.Model):
    def __init__(self, units: int = 4):
        super().__init__(name="rigid")
        self.dense = keras.layers.Dense(units, name="dense")
        self.head = keras.layers.Dense(2, name="head")

    def call(self, inputs):
        return self.head(keras.ops.relu(self.dense(inputs)))


class TinyConv(keras.Model):
    """An image model in the same style (no ``**kwargs``); its tests load a ``save_weights`` file into it, which
    records no input shape."""

    def __init__(self, filters: int = 4):
        super().__init__(name="tiny_conv")
        self.conv = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name="conv")
        self.pool = keras.layers.GlobalAveragePooling2D(name="pool")
        self.head = keras.layers.Dense(2, name="head")

    def call(self, inputs):
        return self.head(self.pool(self.conv(inputs)))
