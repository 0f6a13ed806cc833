"""'Copy as Python': plain Keras code that rebuilds a feature extractor from the original file (tf-keras code
for a file Keras 2 wrote, which Keras 3 cannot load)."""

from __future__ import annotations

from pathlib import Path

from explorer.model.graph import LayerGraph, Target
from explorer.model.model_file import is_architecture_json
from explorer.runtime.keras2 import calls_from_end, is_keras2

NESTED_NOTE = (
    "# Layers inside nested models: keras.Model(model.input, inner_layer.output) fails (\"not connected to\n"
    "# inputs\", keras#16123), so each nested model is cut at its own input and applied to the tensors that\n"
    "# feed it in the enclosing model. _inbound_nodes[k] is the k-th call of a layer (shared layers)."
)


KERAS2_NOTE = (
    "# A file Keras 2 wrote: tf-keras loads it. A nested model may have a node of its own before its calls in\n"
    "# the enclosing model, so its calls are counted from the end of inbound_nodes."
)


def python_snippet(model_path: str | Path, targets: list[Target], graph: LayerGraph) -> str:
    """Runnable code for ``targets`` of the model ``graph`` describes."""
    keras2 = is_keras2(graph)
    source = str(Path(model_path).resolve())
    lines = ["import tf_keras as keras" if keras2 else "import keras", ""]
    if is_architecture_json(graph):  # the architecture, and the weights it was opened with
        lines.append(f"model = keras.models.model_from_json(open({source!r}).read())")
        if graph.weights_file is not None:
            lines.append(f"model.load_weights({str(Path(graph.weights_file).resolve())!r})")
    elif keras2:
        lines.append(f"model = keras.models.load_model({source!r}, compile=False)")
    else:
        lines.append(f"model = keras.saving.load_model({source!r}, compile=False)")
    if keras2:
        lines.append(KERAS2_NOTE)
    nested_models = set(graph.groups)
    # A loaded Sequential's .input is undefined ("never been called"); .inputs is its graph's input.
    lines.append("inputs = model.inputs[0] if isinstance(model, keras.Sequential) else model.input")
    if any("/" in t.layer or any(t.call_site) or t.layer in nested_models for t in targets):
        lines.append(NESTED_NOTE)
    defined: dict[str, str] = {}  # layer path -> variable holding the layer object
    outputs = []
    for index, target in enumerate(targets):
        lines += _target_lines(target, f"output_{index}", defined, graph, keras2)
        outputs.append((target.output_name, f"output_{index}"))
    if len(outputs) == 1:
        lines.append(f"extractor = keras.Model(inputs, {outputs[0][1]})")
    else:
        mapping = ", ".join(f"{name!r}: {variable}" for name, variable in outputs)
        lines.append(f"extractor = keras.Model(inputs, {{{mapping}}})")
    lines.append("features = extractor(images, training=False)  # images: a batch shaped like model.input")
    return "\n".join(lines) + "\n"


def _target_lines(target: Target, output: str, defined: dict[str, str], graph: LayerGraph,
                  keras2: bool) -> list[str]:
    """Walk from the model down to the layer, then apply each nested model on the way back up."""
    parts = target.layer.split("/")
    calls = target.call_site or (0,) * len(parts)
    lines, variables, parent = [], [], "model"
    for depth in range(len(parts)):
        path = "/".join(parts[: depth + 1])
        if path not in defined:
            defined[path] = _identifier(parts[depth], set(defined.values()))
            lines.append(f"{defined[path]} = {parent}.get_layer({graph.node(path).name!r})")
        parent = defined[path]
        variables.append(parent)

    def node(depth: int, side: str) -> str:
        """The inputs or outputs of the layer's call ``calls[depth]`` in the model enclosing it."""
        layer, call = variables[depth], calls[depth]
        if not keras2:
            return f"{layer}._inbound_nodes[{call}].{side}_tensors" + ("[0]" if side == "output" else "")
        from_end = calls_from_end(graph, "/".join(parts[: depth + 1]), call)
        index = str(call) if from_end is None else f"len({layer}.inbound_nodes) - {from_end}"
        return f"{layer}.get_{side}_at({index})"

    layer = variables[-1]
    if calls[-1] == 0 and target.layer not in graph.groups:
        tensor = f"{layer}.output"
    else:  # a nested model's .output is its own inner tensor; its call in the outer graph is a node
        tensor = node(len(parts) - 1, "output")
    for depth in range(len(parts) - 2, -1, -1):  # re-apply each enclosing nested model, innermost first
        nested = variables[depth]
        # .inputs, not .input: a nested Sequential's .input is the tensor it was called on outside
        tensor = f"keras.Model({nested}.inputs, {tensor})({node(depth, 'input')})"
    lines.append(f"{output} = {tensor}")
    return lines


def _identifier(name: str, taken: set[str]) -> str:
    base = "".join(c if c.isalnum() else "_" for c in name)
    base = base if base and not base[0].isdigit() and base not in ("model", "keras") else f"layer_{base}"
    candidate, number = base, 1
    while candidate in taken:
        number += 1
        candidate = f"{base}_{number}"
    return candidate
