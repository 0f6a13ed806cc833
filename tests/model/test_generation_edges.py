"""The connections read from the files older Keras generations wrote are the ones the writing Keras reported.

tests/fixtures/make_generations.py records, for each model at each nesting level (keyed by its path, "" for the
outermost), the [from, to] layer paths of every inbound connection of every node of that model's own graph, as
Keras' runtime Node objects list them (Keras 2 ``node.inbound_layers``, Keras 3 ``node.parent_nodes``): its
InputLayers (a Sequential's too, though ``model.layers`` omits them) and its operations (TFOpLambda, Keras 3
``keras.ops``) included, a shared layer's calls merged into one pair. So the comparison is exact, with no node
left out on either side: the read edges of a level are those whose target sits directly in that model, compared as
(source, target) path pairs, ignoring call indices and argument positions, which the manifest does not record.
"""

from __future__ import annotations

import pytest

from explorer.model.files import load_graph
from tests.support.generations import GENERATIONS, MANIFEST

WITH_EDGES = sorted(name for name, facts in MANIFEST.items() if "edges" in facts)


def test_every_keras_file_of_the_generations_has_edges():
    keras_files = [name for name, facts in MANIFEST.items() if facts.get("keras_metadata", True)]
    assert [name for name in keras_files if name not in WITH_EDGES] == []
    assert "tf_keras_2.21/transfer.h5" in WITH_EDGES and "keras_3.0.5/sequential.keras" in WITH_EDGES


@pytest.mark.parametrize("name", WITH_EDGES)
def test_the_edges_are_those_keras_reported(name):
    reported = MANIFEST[name]["edges"]
    graph = load_graph(GENERATIONS / name)
    assert set(reported) == {""} | graph.groups, "one edge list per model, nested ones included"
    for model, pairs in reported.items():
        parent = model or None
        edges = {(edge.source, edge.target) for edge in graph.edges if graph.node(edge.target).parent == parent}
        expected = {tuple(pair) for pair in pairs}
        assert edges == expected, (model or name, sorted(edges - expected), sorted(expected - edges))
    # Every read edge belongs to some model's list: none joins two levels.
    assert all(graph.node(edge.source).parent == graph.node(edge.target).parent for edge in graph.edges)


@pytest.mark.parametrize("name", WITH_EDGES)
def test_inbound_follows_the_reported_edges(name):
    """LayerGraph.inbound lists each layer's sources once: those Keras reported for it."""
    graph = load_graph(GENERATIONS / name)
    for pairs in MANIFEST[name]["edges"].values():
        sources: dict[str, set[str]] = {}
        for source, target in pairs:
            sources.setdefault(target, set()).add(source)
        for target, expected in sources.items():
            inbound = graph.inbound(target)
            assert len(inbound) == len(set(inbound)) and set(inbound) == expected, (target, inbound, expected)
