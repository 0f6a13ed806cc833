"""The session's model zoo (tests/support/zoo.py) and the known limitation its shape tests run into."""

from __future__ import annotations

import pytest

from tests.support.zoo import ModelZoo


@pytest.fixture(scope="session")
def zoo(keras_module, tmp_path_factory: pytest.TempPathFactory) -> ModelZoo:
    return ModelZoo(tmp_path_factory.mktemp("models"))


# Known limitation: a nested model call whose output no layer consumes records no shape, and the structure
# view falls back to the nested model's own (less specific) output shapes instead of re-inferring them
# through the inner graph for that call's input shapes.
_UNRECORDED_NESTED_CALL_SHAPES = {
    "test_output_shapes_per_call[nested_sequential_outputs]",
    "test_output_ports[nested_sequential_outputs]",
    "test_summary_model_matches_keras[nested_sequential_outputs]",
    "test_summary_layers_match_keras[nested_sequential_outputs]",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.name in _UNRECORDED_NESTED_CALL_SHAPES:
            item.add_marker(pytest.mark.xfail(strict=True, reason="shapes of unconsumed nested-model calls"))
