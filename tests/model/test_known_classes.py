"""A class some Keras release loads by name is no problem; one that no release has is what Keras refuses."""

from __future__ import annotations

import pytest

from explorer.model.graph import LayerNode
from explorer.model.known_classes import check_classes


def _node(class_name: str, module: str | None = None) -> LayerNode:
    return LayerNode(path="layer", name="layer", class_name=class_name, category="other", parent=None, module=module)


@pytest.mark.parametrize("class_name", [
    "Dense", "Functional", "Sequential",  # every generation
    "CuDNNLSTM",  # Keras 2.0-2.15, gone from Keras 3
    "LocallyConnected2D", "ThresholdedReLU", "DenseFeatures",  # Keras 2 layers Keras 3 removed
    "TFOpLambda", "SlicingOpLambda", "TensorFlowOpLayer",  # tf.keras op layers
    "EinsumDense", "RandAugment",  # Keras 3 only
])
def test_a_class_some_keras_release_has_is_no_problem(class_name):
    assert list(check_classes([_node(class_name)])) == []
    assert list(check_classes([_node(class_name, "keras.layers")])) == []


def test_a_class_no_keras_release_has_is_a_problem_that_only_code_can_fix():
    (problem,) = check_classes([_node("Dence", "keras.layers")])
    assert "'Dence' exists in no Keras version" in problem.what and not problem.blocking


def test_a_class_from_another_module_is_left_to_the_safety_check():
    assert list(check_classes([_node("MyLayer", "my_package.layers")])) == []
