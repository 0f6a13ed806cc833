"""``keras-explorer explain``: why the model scores a class: Grad-CAM (++) on a layer, or gradients to the input."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from explorer.cli.common import (
    CommandError,
    add_trust_options,
    chosen_preprocessing,
    open_live,
    read_loadable,
    resolve_targets,
)
from explorer.inputs.images import PRESETS, load_image
from explorer.inputs.sources import BASELINES, IMAGE, InputSource, baseline_input, load_npy, prepare_input
from explorer.model.classes import class_names
from explorer.runtime.attribution import GRADCAM, LAYER_METHODS, METHODS, Scorer, Settings, explain

NAME = "explain"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        NAME, help="attribution map of a class: Grad-CAM, Grad-CAM++, saliency, SmoothGrad, Integrated Gradients",
        description="Grad-CAM and Grad-CAM++ weigh a layer's maps (default: the last layer with a spatial output; "
                    "any layer, also inside nested models); saliency, SmoothGrad and Integrated Gradients "
                    "attribute to the input pixels. The class score is the logit when the model ends in a softmax.")
    parser.add_argument("model")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", help="image file, fitted to the model input")
    source.add_argument("--input", metavar="[NAME=]X.npy", help="array fed as is (with or without the batch axis)")
    parser.add_argument("--preprocess", choices=PRESETS[:-1], help="preset for --image (default: suggested)")
    parser.add_argument("--class", dest="class_", metavar="K|NAME",
                        help="class index or name (names from MODEL_classes.json beside the model); default top-1")
    parser.add_argument("--layer", help="Grad-CAM's layer path (default: the last one with a spatial output)")
    parser.add_argument("--call", type=int, default=0, help="0-based call site of a shared layer")
    parser.add_argument("--method", choices=METHODS, default=GRADCAM)
    parser.add_argument("--steps", type=int, default=64, help="Integrated Gradients: steps from the baseline")
    parser.add_argument("--baseline", choices=BASELINES, default="black", help="Integrated Gradients' baseline")
    parser.add_argument("--samples", type=int, default=25, help="SmoothGrad: noisy copies averaged")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("-o", "--output", help="OUT.png: the map over the input image")
    target.add_argument("--npy", help="OUT.npy: the raw map (at the layer's resolution for Grad-CAM)")
    add_trust_options(parser)


def run(options: argparse.Namespace) -> int:
    graph = read_loadable(options)
    if len(graph.inputs) != 1:
        raise CommandError("explain needs a model with one input")
    layer = None
    if options.method in LAYER_METHODS and options.layer:
        layer = resolve_targets(graph, [options.layer], [options.call])[0]
    elif options.layer:
        raise CommandError(f"--layer is for {' and '.join(LAYER_METHODS)}; {options.method} attributes to the input")
    names = class_names(Path(options.model))
    class_index = _class_index(options.class_, names)
    live = open_live(options, graph)
    (spec,) = live.specs
    prepared = None
    if options.image:
        preprocessing = chosen_preprocessing(graph, options.preprocess)
        prepared = prepare_input(spec, InputSource(IMAGE), load_image(options.image), preprocessing)
        x = prepared.array
        baseline = baseline_input(spec, prepared, preprocessing, options.baseline)
    else:
        name, _, path = options.input.rpartition("=") if not Path(options.input).exists() else ("", "", options.input)
        if name and name != spec.name:
            raise CommandError(f"the model's input is '{spec.name}', not '{name}'")
        x = load_npy(path, spec)
        baseline = np.zeros_like(x)
    model = live.keras3_graph()
    if model is None:
        raise CommandError("this subclassed model could not be traced: there is no graph to take gradients through")
    scorer = Scorer(model, *((layer.layer, layer.call_site) if layer else _default_layer(options.method, model)))
    result = explain(scorer, x, options.method, class_index, baseline,
                     Settings(steps=options.steps, samples=options.samples))
    shown = names[result.class_index] if result.class_index < len(names) else str(result.class_index)
    where = f" on {scorer.layer}" if scorer.layer else ""
    print(f"{options.method}{where}: class {shown} (score {result.score:.4g})", file=sys.stderr)
    if result.baseline_score is not None:
        print(f"integrated gradients: attributions sum {float(result.map.sum()):.4g}, score difference "
              f"{result.score - result.baseline_score:.4g}", file=sys.stderr)
    if options.npy:
        np.save(options.npy, result.map)
        print(options.npy)
    else:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        from explorer.ui.activations.feature_export import attribution_image

        attribution_image(prepared.picture if prepared else None, result.map).save(options.output, format="PNG")
        print(options.output)
    return 0


def _class_index(value: str | None, names: list[str]) -> int | None:
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    if value in names:
        return names.index(value)
    raise CommandError(f"no class named {value!r}" + (f" (the classes: {', '.join(names[:10])}…)" if names else
                                                      ": the model has no MODEL_classes.json; give an index"))


def _default_layer(method: str, model: object) -> tuple[str | None, tuple[int, ...] | None]:
    if method not in LAYER_METHODS:
        return None, None
    from explorer.runtime.attribution import last_spatial_layer

    return last_spatial_layer(model)
