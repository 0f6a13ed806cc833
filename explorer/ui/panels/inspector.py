"""The properties panel: everything the file says about the selected layer."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem, QWidget

from explorer.model.graph import LayerGraph
from explorer.model.origin import origin_text
from explorer.model.summary import format_shape
from explorer.ui.session import Session
from explorer.ui.text import tooltip

PATH_ROLE = 256  # Qt.UserRole: the layer path behind "feeds from / feeds into" rows


class Inspector(QTreeWidget):
    layer_requested = Signal(str)  # a connected layer was double-clicked

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setColumnCount(2)
        self.setHeaderLabels(["Property", "Value"])
        self.setAlternatingRowColors(True)
        self.setUniformRowHeights(True)
        self.itemDoubleClicked.connect(self._follow)
        self.current: str | None = None

    def follow(self, session: Session) -> None:
        session.graph_changed.connect(lambda: self.show_model(session.graph))
        session.selection_changed.connect(
            lambda: self.show_layer(session.graph, session.layer) if session.layer != self.current else None)
        self.layer_requested.connect(session.select)

    def show_model(self, graph: LayerGraph) -> None:
        """Shown while no layer is selected: what the model is, its ports and totals."""
        self.clear()
        self.current = None
        total, trainable, non_trainable = graph.totals
        model = self._section("Model", expanded=True)
        for key, value in (("name", graph.name), ("kind", graph.kind), ("layers", str(len(graph.nodes))),
                           ("file", graph.source or ""), ("saved", origin_text(graph).removeprefix("saved "))):
            self._row(model, key, value)
        if graph.provenance:
            origin = self._section("Exported by Keras Explorer", expanded=True)
            self._row(origin, "from", str(graph.provenance.get("source", "?")))
            self._row(origin, "date", str(graph.provenance.get("date", "?")))
            for entry in graph.provenance.get("layers", []):
                if isinstance(entry, dict):
                    site = entry.get("call_site")
                    self._row(origin, "layer", f"{entry.get('layer')} (call site {site})")
        params = self._section("Parameters", expanded=True)
        for key, value in (("total", total), ("trainable", trainable), ("non-trainable", non_trainable)):
            self._row(params, key, f"{value:,}")
        for title, ports in (("Inputs", graph.inputs), ("Outputs", graph.outputs)):
            section = self._section(f"{title} ({len(ports)})", expanded=True)
            for port in ports:
                self._row(section, port.name, format_shape(port.shape)).setData(0, PATH_ROLE, port.layer)
        if graph.kind in ("subclassed", "unknown"):
            constructor = self._section("Constructor config (from the file)", expanded=True)
            self._fill(constructor, dict(graph.model_config))
        hint = self._section("Click a layer to see its details", expanded=False)
        hint.setForeground(0, self.palette().placeholderText())
        self.resizeColumnToContents(0)

    def show_layer(self, graph: LayerGraph, path: str) -> None:
        self.clear()
        self.current = path
        node = graph.node(path)
        total, trainable = graph.params(path)
        layer = self._section("Layer", expanded=True)
        for key, value in (("name", node.name), ("path", node.path), ("class", node.class_name),
                           ("category", node.category), ("module", node.module or ""),
                           ("inside", node.parent or "(top level)"), ("calls", str(node.calls))):
            self._row(layer, key, value)
        params = self._section("Parameters", expanded=True)
        self._row(params, "total", f"{total:,}")
        self._row(params, "trainable", f"{trainable:,}")
        self._row(params, "non-trainable", f"{total - trainable:,}")
        shapes = self._section("Shapes", expanded=True)
        for call in range(node.calls):
            target = self._row(shapes, f"call {call}", "") if node.calls > 1 else shapes
            inputs = node.input_shapes[call] if call < len(node.input_shapes) else ()
            outputs = node.output_shapes[call] if call < len(node.output_shapes) else ()
            self._row(target, "input", ", ".join(format_shape(s) for s in inputs) or "—")
            self._row(target, "output", ", ".join(format_shape(s) for s in outputs) or "?")
            target.setExpanded(True)
        weights = self._section(f"Weights ({len(node.weights)})", expanded=True)
        for weight in node.weights:
            flag = "" if weight.trainable else "  (non-trainable)"
            self._row(weights, weight.name, f"{format_shape(weight.shape)} {weight.dtype}{flag}")
        for title, paths in (("Feeds from", graph.inbound(path)), ("Feeds into", graph.outbound(path))):
            section = self._section(f"{title} ({len(paths)})", expanded=True)
            for other in paths:
                self._row(section, graph.node(other).name, graph.node(other).class_name).setData(0, PATH_ROLE, other)
        if node.children:
            section = self._section(f"Layers inside ({len(node.children)})", expanded=False)
            for child in node.children:
                self._row(section, graph.node(child).name, graph.node(child).class_name).setData(0, PATH_ROLE, child)
        config = self._section("Config", expanded=True)
        self._fill(config, node.config)
        self.resizeColumnToContents(0)

    def _section(self, title: str, expanded: bool) -> QTreeWidgetItem:
        item = QTreeWidgetItem(self, [title])
        font = item.font(0)
        font.setBold(True)
        item.setFont(0, font)
        item.setExpanded(expanded)
        item.setFirstColumnSpanned(True)
        return item

    @staticmethod
    def _row(parent: QTreeWidgetItem, key: str, value: str) -> QTreeWidgetItem:
        item = QTreeWidgetItem(parent, [key, value])
        item.setToolTip(1, tooltip(value))
        return item

    def _fill(self, parent: QTreeWidgetItem, value: Any) -> None:
        entries = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in entries:
            if isinstance(child, dict | list) and child:
                item = self._row(parent, str(key), _brief(child))
                self._fill(item, child)
            else:
                self._row(parent, str(key), _scalar(child))
        parent.setExpanded(parent.parent() is None)

    def _follow(self, item: QTreeWidgetItem) -> None:
        path = item.data(0, PATH_ROLE)
        if path:
            self.layer_requested.emit(path)


def _scalar(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, dict | list):
        return "{}" if isinstance(value, dict) else "[]"
    return str(value)


def _brief(value: dict | list) -> str:
    if isinstance(value, dict):
        if "class_name" in value:
            return str(value["class_name"])
        return f"{{{len(value)} keys}}"
    if all(not isinstance(v, dict | list) for v in value) and len(value) <= 6:
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    return f"[{len(value)} items]"
