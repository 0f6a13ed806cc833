"""``keras-explorer compare``: two checkpoints of one architecture, layer by layer: how far the weights moved
and, on an image, how far the activations moved."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from explorer.cli.common import CommandError, add_trust_options, chosen_preprocessing, open_live, read_loadable
from explorer.inputs.images import PRESETS, load_image
from explorer.inputs.sources import IMAGE, InputSource, prepare_input
from explorer.model.compare import architecture_mismatches, refusal

NAME = "compare"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        NAME, help="compare two checkpoints of one architecture layer by layer (weights; activations on --image)",
        description="Layers are matched by path. Per layer: the relative weight change ||B - A|| / ||A|| and, "
                    "with --image, the relative change of its output on that image. Files of different "
                    "architectures are refused with their first differences (found without loading them).")
    parser.add_argument("model")
    parser.add_argument("other", help="the second checkpoint")
    parser.add_argument("--image", help="also compare every layer's output on this image")
    parser.add_argument("--preprocess", choices=PRESETS[:-1], help="preset for --image (default: suggested)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_trust_options(parser)


def run(options: argparse.Namespace) -> int:
    from explorer.runtime.compare import weight_change
    from explorer.runtime.layer_stats import activation_difference

    other = argparse.Namespace(**{**vars(options), "model": options.other, "weights": None})  # --weights: A's
    first = read_loadable(options)
    second = read_loadable(other)
    mismatches = architecture_mismatches(first, second)
    if mismatches:
        raise CommandError(refusal(first, second, mismatches))
    live_a = open_live(options, first)
    live_b = open_live(other, second)
    model_a, model_b = live_a.keras3_graph(), live_b.keras3_graph()
    if model_a is None or model_b is None:
        raise CommandError("compare needs models with a graph (this subclassed model could not be traced)")
    weights = weight_change(model_a, model_b)
    activations: dict[str, float] = {}
    if options.image:
        (spec, *_rest) = live_a.specs
        x = prepare_input(spec, InputSource(IMAGE), load_image(options.image),
                          chosen_preprocessing(first, options.preprocess)).array
        activations = {path if not any(site) else f"{path} (call {site})": value
                       for (path, site), value in activation_difference(model_a, model_b, x).items()}
    layers = list(dict.fromkeys([*weights, *activations]))
    if options.json:
        print(json.dumps({"a": str(Path(options.model).resolve()), "b": str(Path(options.other).resolve()),
                          "layers": [{"layer": layer, "weight_change": weights.get(layer),
                                      "activation_change": activations.get(layer)} for layer in layers]}))
        return 0
    width = max((len(layer) for layer in layers), default=5)
    print(f"{'Layer':{width}}  {'weights moved':>13}  {'output moved':>12}" if options.image else
          f"{'Layer':{width}}  {'weights moved':>13}")
    for layer in layers:
        moved = f"{weights[layer]:13.3%}" if layer in weights else f"{'':13}"
        output = f"  {activations[layer]:12.3%}" if layer in activations else ""
        print(f"{layer:{width}}  {moved}{output}".rstrip())
    if weights:
        most = max(weights, key=weights.get)
        print(f"largest weight change: {most} ({weights[most]:.3%})", file=sys.stderr)
    return 0
