"""Shows one layer output: a channel grid, one channel large, a bar plot, a heatmap or a value."""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from explorer.inputs import feature_maps as fm
from explorer.ui.activations.qtgraph import pyqtgraph
from explorer.ui.text import escape

if TYPE_CHECKING:
    import pyqtgraph as pg

COLOUR_MAPS = ("viridis", "inferno", "magma", "CET-L1", "turbo")  # CET-L1 is grey
COLOUR_MAP_LABELS = {"CET-L1": "grey"}
DIFFERENCE_MAP = "CET-D1"  # A-B: blue below zero, white at zero, red above
MESSAGE, GRID, CHANNEL, PLOT = range(4)  # the pages; all but the message are built with the first output


class FeatureView(QWidget):
    channel_opened = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.array: np.ndarray | None = None
        self.spatial: np.ndarray | None = None  # the (H, W, C) array the grid shows
        self.input_image: np.ndarray | None = None
        self.class_names: list[str] = []
        self.current_mosaic: fm.Mosaic | None = None
        self.channel: int | None = None
        self.difference = False  # the array is A-B: a scale symmetric about zero, a diverging colour map

        self.order = _combo(fm.ORDERS, "Tile order: as stored, or by decreasing mean / max / mean |value| (A-B: "
                                       "the largest difference first)")
        self.scale = _combo(("per tile", "shared"), "Colour scale: each tile its own range, or one range for all")
        self.colours = _combo([COLOUR_MAP_LABELS.get(c, c) for c in COLOUR_MAPS], "Colour map")
        self.slices = QHBoxLayout()
        self.stats = QLabel()
        self.stats.setTextFormat(Qt.TextFormat.PlainText)
        self.stats.setObjectName("activationStats")
        self.stats.setWordWrap(True)  # a long layer path must not widen the dock past the screen
        self.stats.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        controls = QHBoxLayout()
        for label, widget in (("Order", self.order), ("Scale", self.scale), ("Colours", self.colours)):
            controls.addWidget(QLabel(label))
            controls.addWidget(widget)
        controls.addLayout(self.slices)
        controls.addStretch(1)

        self.message = QLabel("Click a layer to see what it computes on the input image.")
        self.message.setTextFormat(Qt.TextFormat.PlainText)
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.pages = QStackedWidget()
        self.pages.addWidget(self.message)
        # The plain widgets of the pages that wait for pyqtgraph (see prepare).
        self.overlay = QCheckBox("Overlay on input image")
        self.overlay.toggled.connect(self._reopen_channel)
        self.channel_title = QLabel()
        self.channel_title.setTextFormat(Qt.TextFormat.PlainText)
        self.pixel_value = QLabel()
        self.pixel_value.setObjectName("pixelValue")
        self.top_classes = QLabel()
        self.top_classes.setObjectName("topClasses")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(controls)
        layout.addWidget(self.pages, 1)
        layout.addWidget(self.stats)
        for combo in (self.order, self.scale, self.colours):
            combo.currentIndexChanged.connect(self._redraw)

    # -- pages
    def prepare(self) -> None:
        """Build the pyqtgraph pages now (the window shows without them: only the message page is on screen)."""
        if self.pages.count() > 1:
            return
        pg = pyqtgraph()
        for page in (self._grid_page(pg), self._channel_page(pg), self._plot_page(pg)):
            self.pages.addWidget(page)

    def _grid_page(self, pg: ModuleType) -> QWidget:
        self.grid_widget = pg.GraphicsLayoutWidget()
        self.grid_box = self.grid_widget.addViewBox(lockAspect=True, invertY=True)
        self.grid_image = pg.ImageItem(axisOrder="row-major")
        self.grid_image.mouseClickEvent = self._grid_clicked
        self.grid_box.addItem(self.grid_image)
        self.grid_widget.setToolTip("Click a tile to open the channel large")
        return self.grid_widget

    def _channel_page(self, pg: ModuleType) -> QWidget:
        page = QWidget()
        back = QPushButton("◀ All channels")
        back.clicked.connect(lambda: self.pages.setCurrentIndex(GRID))
        self.channel_view = pg.ImageView()
        self.channel_view.ui.roiBtn.hide()
        self.channel_view.ui.menuBtn.hide()
        self.underlay = pg.ImageItem(axisOrder="row-major")
        self.channel_view.getView().addItem(self.underlay)
        self.underlay.setZValue(-1)
        self.channel_view.getView().scene().sigMouseMoved.connect(self._show_pixel)
        top = QHBoxLayout()
        for widget in (back, self.channel_title, self.overlay):
            top.addWidget(widget)
        top.addStretch(1)
        top.addWidget(self.pixel_value)
        column = QVBoxLayout(page)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(top)
        column.addWidget(self.channel_view, 1)
        return page

    def _plot_page(self, pg: ModuleType) -> QWidget:
        page = QWidget()
        self.plot = pg.PlotWidget()
        self._style_plot()
        column = QVBoxLayout(page)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.plot, 1)
        column.addWidget(self.top_classes)
        return page

    # -- showing outputs
    def restyle(self) -> None:
        """The plot follows the theme (the grid and channel images keep their colour maps)."""
        if self.pages.count() > 1:
            self._style_plot()

    def _style_plot(self) -> None:
        self.plot.setBackground(self.palette().color(QPalette.ColorRole.Base))

    def show_message(self, text: str) -> None:
        """A message instead of an output: nothing is on screen, so nothing can be exported either."""
        self.array = None
        self.message.setText(text)
        self.pages.setCurrentIndex(MESSAGE)
        self.stats.clear()

    def show_output(self, title: str, array: np.ndarray, input_image: np.ndarray | None = None,
                    class_names: list[str] | None = None, difference: bool = False) -> None:
        """``difference``: the array is A-B (drawn about zero, in a diverging colour map)."""
        self.prepare()
        self.difference = difference
        self.colours.setEnabled(not difference)
        self.colours.setToolTip("A-B: blue below zero, white at zero, red above" if difference else "Colour map")
        self.array = np.asarray(array)
        self.input_image = input_image
        self.class_names = class_names or []
        self.title = title
        self._build_slice_controls()
        self.stats.setText(f"{title} · shape {tuple(self.array.shape)} · {fm.statistics(self.array).text()}")
        self._redraw()

    def _build_slice_controls(self) -> None:
        while self.slices.count():
            widget = self.slices.takeAt(0).widget()
            if widget:
                widget.deleteLater()
        self.slice_boxes: list[QSpinBox] = []
        if self.array is None or fm.output_kind(self.array) != fm.VOLUME:
            return
        for axis in range(self.array.ndim - 3):
            box = QSpinBox()
            box.setRange(0, self.array.shape[axis] - 1)
            box.setPrefix(f"axis {axis}: ")
            box.valueChanged.connect(self._redraw)
            self.slices.addWidget(box)
            self.slice_boxes.append(box)

    def _redraw(self) -> None:
        if self.array is None:
            return
        kind = fm.output_kind(self.array)
        if kind in (fm.SPATIAL, fm.VOLUME):
            indices = tuple(box.value() for box in self.slice_boxes)
            self._draw_grid(fm.slice_to_spatial(self.array, indices))
        elif kind == fm.VECTOR:
            self._draw_vector(self.array)
        elif kind == fm.SEQUENCE:
            self._draw_heatmap(self.array)
        else:
            self.show_message(f"{self.title}: {float(self.array):.6g}")

    def colour_map_name(self) -> str:
        return DIFFERENCE_MAP if self.difference else COLOUR_MAPS[self.colours.currentIndex()]

    def order_name(self) -> str:
        return fm.ORDERS[self.order.currentIndex()]

    def shared_scale(self) -> bool:
        return self.scale.currentIndex() == 1

    def _colour_map(self) -> pg.ColorMap:
        return pyqtgraph().colormap.get(self.colour_map_name())

    def _draw_grid(self, spatial: np.ndarray) -> None:
        self.spatial = spatial
        self.current_mosaic = fm.mosaic(spatial, self.order_name(), shared_scale=self.shared_scale(),
                                        symmetric=self.difference)
        self.grid_image.setImage(self.current_mosaic.image, levels=(0.0, 1.0))
        self.grid_image.setColorMap(self._colour_map())
        self.grid_box.autoRange(padding=0.01)
        self.pages.setCurrentIndex(GRID)

    def _draw_vector(self, vector: np.ndarray) -> None:
        self.plot.clear()
        values = vector.astype(np.float32)
        bars = pyqtgraph().BarGraphItem(x=np.arange(len(values)), height=values, width=0.8, brush="#4a7fb5")
        self.plot.addItem(bars)
        self.plot.setLabel("bottom", "unit")
        self.plot.setLabel("left", "activation")
        if fm.looks_like_probabilities(values):
            names = self.class_names
            best = fm.top_k(values, min(5, len(values)))
            self.top_classes.setText("Top classes: " + " · ".join(
                f"<b>{escape(names[i]) if i < len(names) else f'class {i}'}</b> {score:.3f}" for i, score in best))
        else:
            self.top_classes.setText("")
        self.pages.setCurrentIndex(PLOT)

    def _draw_heatmap(self, sequence: np.ndarray) -> None:
        self.plot.clear()
        heat = pyqtgraph().ImageItem(sequence.astype(np.float32), axisOrder="row-major")
        if self.difference:
            heat.setLevels(_about_zero(sequence))
        heat.setColorMap(self._colour_map())
        self.plot.addItem(heat)
        self.plot.setLabel("bottom", "channel")
        self.plot.setLabel("left", "step")
        self.plot.getViewBox().invertY(True)
        self.top_classes.setText(f"{sequence.shape[0]} steps × {sequence.shape[1]} channels")
        self.pages.setCurrentIndex(PLOT)

    # -- one channel large
    def _grid_clicked(self, event) -> None:
        if self.current_mosaic is None:
            return
        position = event.pos()
        channel = self.current_mosaic.tile_at(position.x(), position.y())
        if channel is not None:
            event.accept()
            self.open_channel(channel)

    def open_channel(self, channel: int) -> None:
        if self.spatial is None:
            return
        self.channel = channel
        data = self.spatial[:, :, channel].astype(np.float32)
        self.channel_title.setText(f"{self.title} · channel {channel}")
        if self.difference:
            self.channel_view.setImage(data.T, autoLevels=False, levels=_about_zero(data))
        else:
            self.channel_view.setImage(data.T, autoLevels=True)
        self.channel_view.setColorMap(self._colour_map())
        self.underlay.clear()
        overlay = self.overlay.isChecked() and self.input_image is not None
        self.channel_view.getImageItem().setOpacity(0.55 if overlay else 1.0)
        if overlay:  # the channel stretched over the image it was computed from
            self.underlay.setImage(self.input_image, levels=(0, 255))
            self.underlay.setRect(0, 0, data.shape[1], data.shape[0])
        self.pages.setCurrentIndex(CHANNEL)
        self.channel_opened.emit(channel)

    def _reopen_channel(self) -> None:
        if self.channel is not None:
            self.open_channel(self.channel)

    def _show_pixel(self, scene_position) -> None:
        if self.spatial is None or self.channel is None:
            return
        point = self.channel_view.getView().mapSceneToView(scene_position)
        x, y = int(point.x()), int(point.y())
        height, width = self.spatial.shape[:2]
        if 0 <= x < width and 0 <= y < height:
            self.pixel_value.setText(f"x {x}, y {y}: {float(self.spatial[y, x, self.channel]):.5g}")

    @property
    def tile_count(self) -> int:
        return len(self.current_mosaic.channels) if self.current_mosaic is not None else 0


def _about_zero(values: np.ndarray) -> tuple[float, float]:
    """Levels -m..m (m the largest |value|): zero in the middle of a diverging colour map."""
    extent = float(np.abs(values).max()) if values.size else 0.0
    return (-extent, extent) if extent > 0 else (-1.0, 1.0)


def _combo(items, tooltip: str) -> QComboBox:
    combo = QComboBox()
    combo.addItems(list(items))
    combo.setToolTip(tooltip)
    return combo
