"""The interactive graph canvas: zoom (wheel), pan (drag), fit, keyboard navigation, selection."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QKeyEvent, QMouseEvent, QPainter, QWheelEvent
from PySide6.QtWidgets import QGraphicsScene, QGraphicsView, QWidget

from explorer.layout.graphviz import Layout
from explorer.layout.view_graph import ViewGraph
from explorer.model.graph import LayerGraph
from explorer.ui.canvas.items import FrameItem, LayerItem
from explorer.ui.canvas.scene import populate_scene

MIN_ZOOM, MAX_ZOOM = 0.02, 6.0
READABLE_ZOOM = 0.85


class GraphView(QGraphicsView):
    layer_selected = Signal(str)
    selection_changed = Signal(list)  # every selected layer path (multi-selection with Ctrl+click)
    group_toggled = Signal(str)  # a nested model was asked to expand or collapse

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.items_by_path: dict[str, LayerItem] = {}
        self.view: ViewGraph | None = None
        self.scene().selectionChanged.connect(self._on_selection_changed)
        self._muted = False
        self._clicked: str | None = None

    @property
    def graph(self) -> LayerGraph | None:
        return self.view.graph if self.view else None

    def show_layout(self, view: ViewGraph, layout: Layout, keep_view: bool = False) -> None:
        selected = self.selected_path()
        center = self.mapToScene(self.viewport().rect().center())
        self._muted = True
        self.items_by_path = populate_scene(self.scene(), view, layout)
        self._muted = False
        self.view = view
        if keep_view:
            self.centerOn(center)
        else:
            self.show_start()
        if selected:
            self.select(selected, center=keep_view)

    def clear(self) -> None:
        self._muted = True
        self.scene().clear()
        self._muted = False
        self.items_by_path = {}
        self.view = None

    def selected_path(self) -> str | None:
        items = [i for i in self.scene().selectedItems() if isinstance(i, LayerItem)]
        return items[0].path if items else None

    def selected_paths(self) -> list[str]:
        """All selected boxes (Ctrl+click adds and removes), in graph order."""
        chosen = {i.path for i in self.scene().selectedItems() if isinstance(i, LayerItem)}
        return [path for path in self.items_by_path if path in chosen]

    def select_many(self, paths: list[str]) -> None:
        self._muted = True
        self.scene().clearSelection()
        for path in paths:
            item = self.items_by_path.get(self._drawn_ancestor(path))
            if item is not None:
                item.setSelected(True)
        self._muted = False

    def select(self, path: str, center: bool = True) -> bool:
        """Select the box of ``path`` (or of the collapsed group holding it); False if not drawn.

        A box already part of a multi-selection keeps the others selected."""
        item = self.items_by_path.get(self._drawn_ancestor(path))
        if item is not None and item.isSelected():
            if center:
                self.centerOn(item)
            return True
        self._muted = True
        self.scene().clearSelection()
        if item is not None:
            item.setSelected(True)
        self._muted = False
        frame = next((i for i in self.scene().items() if isinstance(i, FrameItem) and i.path == path), None)
        target = item or frame  # an expanded nested model is a frame, not a box
        if center and target is not None:
            self.centerOn(target)
        return item is not None

    def _drawn_ancestor(self, path: str) -> str:
        graph = self.graph
        while graph and path not in self.items_by_path and path in graph and graph.node(path).parent:
            path = graph.node(path).parent
        return path

    def fit(self) -> None:
        """The whole graph in the window (small models stay at natural size rather than blown up)."""
        rect = self.scene().sceneRect()
        if rect.isEmpty():
            return
        self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
        if self.zoom() > 1.0:
            self.set_zoom(1.0)

    def show_start(self) -> None:
        """First view of a model: all of it if it is readable that way, else readable boxes from the inputs."""
        self.fit()
        if self.zoom() < READABLE_ZOOM:
            self.set_zoom(READABLE_ZOOM)
            rect = self.scene().sceneRect()
            drawn_inputs = [self.items_by_path[p.layer] for p in self.graph.inputs if p.layer in self.items_by_path]
            first_input = drawn_inputs[0] if drawn_inputs else None
            x = first_input.rect().center().x() if first_input else rect.center().x()
            self.centerOn(x, rect.top() + self.visible_scene_rect().height() / 2)

    def zoom(self) -> float:
        return self.transform().m11()

    def set_zoom(self, factor: float) -> None:
        factor = max(MIN_ZOOM, min(MAX_ZOOM, factor))
        self.scale(factor / self.zoom(), factor / self.zoom())

    def zoom_by(self, step: float) -> None:
        self.set_zoom(self.zoom() * step)

    def wheelEvent(self, event: QWheelEvent) -> None:
        self.zoom_by(1.0015 ** event.angleDelta().y())

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        for item in self.items(event.position().toPoint()):
            if isinstance(item, LayerItem) and item.is_group:
                self.group_toggled.emit(item.path)
                return
            if isinstance(item, FrameItem) and item.title_contains(self.mapToScene(event.position().toPoint())):
                self.group_toggled.emit(item.path)
                return
        super().mouseDoubleClickEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        current = self.selected_path()
        if key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom_by(1.25)
        elif key == Qt.Key.Key_Minus:
            self.zoom_by(0.8)
        elif key == Qt.Key.Key_0:
            self.fit()
        elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and current and self.items_by_path[current].is_group:
            self.group_toggled.emit(current)
        elif key in (Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_Left, Qt.Key.Key_Right):
            target = self._neighbour(current, key)
            if target:
                self.select(target)
                self.layer_selected.emit(target)
        else:
            super().keyPressEvent(event)

    def _neighbour(self, current: str | None, key: Qt.Key) -> str | None:
        """Down/Up follow the data flow; Left/Right move to the nearest box on the same row."""
        if self.view is None or not self.items_by_path:
            return None
        if current is None:
            return next(iter(self.items_by_path))
        if key in (Qt.Key.Key_Down, Qt.Key.Key_Up):
            ends = [(e.target if key == Qt.Key.Key_Down else e.source) for e in self.view.edges
                    if (e.source if key == Qt.Key.Key_Down else e.target) == current]
            ends = [p for p in ends if p != current]
            return min(ends, key=lambda p: self.items_by_path[p].rect().x(), default=None)
        here = self.items_by_path[current].rect()
        direction = -1 if key == Qt.Key.Key_Left else 1
        row = [(item.rect().center().x() - here.center().x(), path) for path, item in self.items_by_path.items()
               if abs(item.rect().center().y() - here.center().y()) < here.height() / 2
               and (item.rect().center().x() - here.center().x()) * direction > 0]
        return min(row, key=lambda d: abs(d[0]))[1] if row else None

    def mousePressEvent(self, event: QMouseEvent) -> None:
        item = next((i for i in self.items(event.position().toPoint()) if isinstance(i, LayerItem)), None)
        self._clicked = item.path if item else None
        super().mousePressEvent(event)

    def _on_selection_changed(self) -> None:
        if self._muted:
            return
        paths = self.selected_paths()
        self.selection_changed.emit(paths)
        current = self._clicked if self._clicked in paths else (paths[0] if paths else None)
        if current:
            self.layer_selected.emit(current)

    def visible_scene_rect(self) -> QRectF:
        return self.mapToScene(self.viewport().rect()).boundingRect()
