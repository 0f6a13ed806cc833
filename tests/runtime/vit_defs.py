"""A tiny vision transformer with its own registered layers, as the Keras ViT example writes them.

Both imported by tests/runtime/test_custom_code.py (to build and save the model) and handed to the explorer as
the ``--custom-objects`` file, so it stays self-contained. The classes are registered, so a process that ran
this file can load the model; a process that did not cannot (what an export's verification process was).
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras

PACKAGE = "explorer_vit"
IMAGE, PATCH, DIM = 8, 4, 8  # an 8x8 RGB image cut into four 4x4 patches, each projected to 8 values


@keras.saving.register_keras_serializable(package=PACKAGE)
class Patches(keras.layers.Layer):
    def __init__(self, patch_size: int, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = patch_size

    def call(self, images):
        patches = keras.ops.image.extract_patches(images, size=self.patch_size)
        _, rows, columns, values = patches.shape  # known: the image size is fixed
        return keras.ops.reshape(patches, (-1, rows * columns, values))

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size}


@keras.saving.register_keras_serializable(package=PACKAGE)
class PatchEncoder(keras.layers.Layer):
    """A linear projection of each patch plus a learned position embedding."""

    def __init__(self, num_patches: int, projection_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.num_patches, self.projection_dim = num_patches, projection_dim
        self.projection = keras.layers.Dense(projection_dim)
        self.position_embedding = keras.layers.Embedding(num_patches, projection_dim)

    def build(self, input_shape):
        self.projection.build(input_shape)
        self.position_embedding.build((None, self.num_patches))

    def call(self, patches):
        positions = keras.ops.expand_dims(keras.ops.arange(0, self.num_patches), axis=0)
        return self.projection(patches) + self.position_embedding(positions)

    def get_config(self):
        return {**super().get_config(), "num_patches": self.num_patches, "projection_dim": self.projection_dim}


def build_vit(classes: int = 3) -> keras.Model:
    """One transformer block after the custom layers; ``encoder_norm`` and ``attention`` come after them."""
    inputs = keras.Input((IMAGE, IMAGE, 3), name="image")
    patches = Patches(PATCH, name="patches")(inputs)
    encoded = PatchEncoder((IMAGE // PATCH) ** 2, DIM, name="patch_encoder")(patches)
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="encoder_norm")(encoded)
    attended = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="attention")(x, x)
    x = keras.layers.Add(name="residual")([attended, encoded])
    x = keras.layers.Dense(DIM, activation="gelu", name="mlp")(x)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(classes, name="head")(x), name="tiny_vit")
