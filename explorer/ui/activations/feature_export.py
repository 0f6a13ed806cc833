"""A layer output as a PNG: the channel grid coloured like the window, bars for vectors, heatmaps for sequences.

pyqtgraph supplies the colour maps (the same as on screen); Pillow writes the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from explorer.inputs import feature_maps as fm
from explorer.ui.activations.qtgraph import pyqtgraph

MIN_TILE_SIDE = 48  # small maps are enlarged (nearest neighbour) so every tile is readable
GAP_COLOUR = (20, 20, 20)
MIN_PICTURE_SIDE = 256


def output_image(array: np.ndarray, colour_map: str = "viridis", order: str = "index",
                 shared_scale: bool = False, symmetric: bool = False) -> Image.Image:
    """``symmetric``: a difference, scaled about zero (explorer.inputs.feature_maps.mosaic)."""
    values = np.asarray(array, dtype=np.float32)
    kind = fm.output_kind(values)
    if kind == fm.VOLUME:
        values, kind = fm.slice_to_spatial(values, (0,) * (values.ndim - 3)), fm.SPATIAL
    if kind == fm.SPATIAL:
        tiles = fm.mosaic(values, order, shared_scale, symmetric=symmetric)
        scale = max(1, -(-MIN_TILE_SIDE // max(tiles.tile_height, tiles.tile_width)))
        return _coloured(tiles.image, colour_map).resize(
            (tiles.image.shape[1] * scale, tiles.image.shape[0] * scale), Image.Resampling.NEAREST)
    if kind == fm.SEQUENCE:
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low if high > low else 1.0)
        picture = _coloured(scaled, colour_map)
        return picture.resize((max(values.shape[1], 256), max(values.shape[0], 64)), Image.Resampling.NEAREST)
    return _bars(values.reshape(-1))


def save_output_png(array: np.ndarray, path: str | Path, **options: str | bool) -> Path:
    target = Path(path)
    output_image(array, **options).save(target, format="PNG")
    return target


def _coloured(scaled: np.ndarray, colour_map: str) -> Image.Image:
    """[0, 1] values (NaN for gaps) through a colour map, as an RGB image."""
    table = pyqtgraph().colormap.get(colour_map).getLookupTable(0.0, 1.0, 256, alpha=False).astype(np.uint8)
    gaps = ~np.isfinite(scaled)
    indices = np.clip(np.nan_to_num(scaled) * 255, 0, 255).astype(np.uint8)
    rgb = table[indices]
    rgb[gaps] = GAP_COLOUR
    return Image.fromarray(rgb, "RGB")


def _bars(vector: np.ndarray, width: int = 800, height: int = 300) -> Image.Image:
    picture = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(picture)
    low, high = min(0.0, float(vector.min())), max(0.0, float(vector.max()))
    span = high - low if high > low else 1.0
    zero = height - 10 - (0 - low) / span * (height - 20)
    step = (width - 20) / max(len(vector), 1)
    for index, value in enumerate(vector):
        top = height - 10 - (float(value) - low) / span * (height - 20)
        left = 10 + index * step
        draw.rectangle([left, min(top, zero), left + max(step * 0.8, 1), max(top, zero)], fill=(74, 127, 181))
    draw.line([10, zero, width - 10, zero], fill=(80, 80, 80))
    return picture


def attribution_image(picture: np.ndarray | None, heatmap: np.ndarray, opacity: float = 0.5,
                      colour_map: str = "inferno", size: tuple[int, int] | None = None) -> Image.Image:
    """An attribution map scaled to [0, 1] over its range, coloured, enlarged to the picture (bilinear: a
    Grad-CAM map is coarse) and blended over it; the map alone without a picture."""
    values = np.asarray(heatmap, np.float32)
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    coloured = _coloured((values - low) / (high - low if high > low else 1.0), colour_map)
    if picture is None:
        return coloured.resize(size or (max(256, values.shape[1]), max(256, values.shape[0])),
                               Image.Resampling.NEAREST)
    base = Image.fromarray(picture[..., 0] if picture.shape[-1] == 1 else picture).convert("RGB")
    scale = max(1, -(-MIN_PICTURE_SIDE // max(base.size)))  # a 64-pixel input is too small to read
    base = base.resize((base.width * scale, base.height * scale), Image.Resampling.BILINEAR)
    return Image.blend(base, coloured.resize(base.size, Image.Resampling.BILINEAR), opacity)
