"""How a layer output is shown: its kind, statistics, channel order and the tiled mosaic of channels.

Drawing thousands of channels as one image (instead of one widget per tile) is what keeps a
2048-channel grid fast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SPATIAL, VECTOR, SEQUENCE, SCALAR, VOLUME = "spatial", "vector", "sequence", "scalar", "volume"
ORDERS = ("index", "mean", "max", "magnitude")  # magnitude: mean |value| (of A-B: the largest difference first)


def output_kind(array: np.ndarray) -> str:
    """(H, W, C) -> spatial, (C,) -> vector, (T, C) -> sequence, () -> scalar, rank >= 4 -> volume."""
    return {0: SCALAR, 1: VECTOR, 2: SEQUENCE, 3: SPATIAL}.get(array.ndim, VOLUME)


@dataclass(frozen=True)
class Stats:
    minimum: float
    maximum: float
    mean: float
    dead_fraction: float  # channels that are zero everywhere (dead ReLUs)
    channels: int

    def text(self) -> str:
        return (f"min {self.minimum:.4g} · max {self.maximum:.4g} · mean {self.mean:.4g} · "
                f"dead channels {self.dead_fraction:.0%} of {self.channels}")


def statistics(array: np.ndarray) -> Stats:
    values = np.asarray(array, dtype=np.float32)
    if values.size == 0:
        return Stats(0.0, 0.0, 0.0, 0.0, 0)
    channels = values.reshape(-1, values.shape[-1]) if values.ndim >= 1 else values.reshape(1, 1)
    dead = float(np.mean(np.all(channels == 0, axis=0)))
    return Stats(float(values.min()), float(values.max()), float(values.mean()), dead, channels.shape[1])


def channel_order(maps: np.ndarray, order: str = "index") -> np.ndarray:
    """Channel indices of an (H, W, C) array: as stored, or by decreasing mean, max or mean |value|."""
    channels = maps.shape[-1]
    if order == "index":
        return np.arange(channels)
    flat = maps.reshape(-1, channels)
    if order == "mean":
        score = flat.mean(axis=0)
    elif order == "max":
        score = flat.max(axis=0)
    else:
        score = np.abs(flat).mean(axis=0)
    return np.argsort(-score, kind="stable")


@dataclass(frozen=True)
class ChannelDifference:
    """One channel of a layer output on two inputs (the last axis is the channel)."""

    channel: int
    difference: float  # mean |A - B| over its positions
    mean_a: float
    mean_b: float


def channel_differences(a: np.ndarray, b: np.ndarray) -> list[ChannelDifference]:
    """Every channel, the largest mean |A - B| first (a vector's units are its channels)."""
    if a.shape != b.shape or a.ndim == 0:
        return []
    flat_a = np.asarray(a, np.float64).reshape(-1, a.shape[-1])
    flat_b = np.asarray(b, np.float64).reshape(-1, b.shape[-1])
    difference = np.abs(flat_a - flat_b).mean(axis=0)
    mean_a, mean_b = flat_a.mean(axis=0), flat_b.mean(axis=0)
    return [ChannelDifference(int(c), float(difference[c]), float(mean_a[c]), float(mean_b[c]))
            for c in np.argsort(-difference, kind="stable")]


@dataclass(frozen=True)
class Mosaic:
    image: np.ndarray  # (rows * (h + gap), cols * (w + gap)) float32 in [0, 1], NaN in the gaps
    columns: int
    rows: int
    tile_height: int
    tile_width: int
    gap: int
    channels: np.ndarray  # channel shown in each tile, row-major

    def tile_at(self, x: float, y: float) -> int | None:
        """The channel under mosaic pixel (x, y), or None for a gap or outside."""
        column, row = int(x // (self.tile_width + self.gap)), int(y // (self.tile_height + self.gap))
        inside_x = x - column * (self.tile_width + self.gap) < self.tile_width
        inside_y = y - row * (self.tile_height + self.gap) < self.tile_height
        index = row * self.columns + column
        if x < 0 or y < 0 or column >= self.columns or not (inside_x and inside_y) or index >= len(self.channels):
            return None
        return int(self.channels[index])


MAX_MOSAIC_PIXELS = 2048 * 2048  # beyond screen resolution: larger maps are subsampled for the grid


def mosaic(maps: np.ndarray, order: str = "index", shared_scale: bool = False, gap: int = 1,
           max_pixels: int = MAX_MOSAIC_PIXELS, symmetric: bool = False) -> Mosaic:
    """Tile the channels of an (H, W, C) array into one image, each tile scaled to [0, 1].

    With ``shared_scale`` all tiles use the layer's global range (compare channels); otherwise each tile its
    own (see each channel's pattern). ``symmetric`` (a difference): the range is -m..m, m the largest |value|,
    so 0 is always 0.5 and the sign can be read off a diverging colour map. Tiles are subsampled (every n-th
    pixel) when the grid would exceed ``max_pixels``: a 300x300x192 map would otherwise make a 4214x4214 image
    nobody can see at once.
    """
    maps = np.asarray(maps, dtype=np.float32)
    height, width, channels = maps.shape
    chosen = channel_order(maps, order)  # on the full maps, so the order is exact
    step = max(1, math.ceil(math.sqrt(height * width * channels / max_pixels)))
    if step > 1:
        maps = maps[::step, ::step, :]
        height, width = maps.shape[:2]
    columns = max(1, math.ceil(math.sqrt(channels * height / max(width, 1))))
    rows = math.ceil(channels / columns)
    tiles = np.moveaxis(maps[:, :, chosen], -1, 0)  # (C, H, W)
    axes = None if shared_scale else (1, 2)
    if symmetric:
        extent = np.abs(tiles).max(axis=axes, keepdims=True)
        scaled = 0.5 + tiles / (2 * np.where(extent > 0, extent, 1.0))
    else:
        low = tiles.min(axis=axes, keepdims=True)
        span = tiles.max(axis=axes, keepdims=True) - low
        scaled = (tiles - low) / np.where(span > 0, span, 1.0)
    padded = np.full((rows * columns, height + gap, width + gap), np.nan, dtype=np.float32)
    padded[:channels, :height, :width] = scaled
    image = padded.reshape(rows, columns, height + gap, width + gap).transpose(0, 2, 1, 3)
    image = image.reshape(rows * (height + gap), columns * (width + gap))
    return Mosaic(image, columns, rows, height, width, gap, chosen)


def top_k(vector: np.ndarray, k: int = 5) -> list[tuple[int, float]]:
    values = np.asarray(vector, dtype=np.float64).ravel()
    best = np.argsort(-values, kind="stable")[:k]
    return [(int(i), float(values[i])) for i in best]


def looks_like_probabilities(vector: np.ndarray) -> bool:
    """A softmax output: non-negative values summing to one."""
    values = np.asarray(vector, dtype=np.float64).ravel()
    return values.size > 1 and bool(np.all(values >= 0)) and abs(float(values.sum()) - 1.0) < 1e-3


def slice_to_spatial(array: np.ndarray, indices: tuple[int, ...]) -> np.ndarray:
    """For rank >= 4 outputs (e.g. 3-D convolutions): fix the leading axes to get an (H, W, C) array."""
    leading = array.ndim - 3
    return array[tuple(indices[:leading])] if leading > 0 else array
