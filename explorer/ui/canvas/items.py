"""Graphics items of the layer graph: layer boxes, nested-model frames, edges with shape labels."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPathItem,
    QGraphicsRectItem,
    QLabel,
    QStyleOptionGraphicsItem,
    QWidget,
)

from explorer.layout.graphviz import EdgeRoute
from explorer.ui.canvas.number_colours import NEUTRAL, NEUTRAL_HATCH, text_colour
from explorer.ui.text import tooltip as plain_tooltip
from explorer.ui.theme import canvas_colours, frame_colours

CATEGORY_COLOURS = {
    "input": "#9ad0f5", "convolution": "#f7b267", "pooling": "#a0d995", "normalization": "#c9b6e4",
    "activation": "#f4e285", "merge": "#f79d84", "dense": "#f5a3c7", "reshape": "#c5d0d8",
    "attention": "#ffc2a8", "recurrent": "#b8e0d2", "regularization": "#e0e0e0", "preprocessing": "#d7e3a5",
    "nested": "#8fb8de", "output": "#7fd1b9", "other": "#dddddd",
}
LABEL_ZOOM = 0.9  # edge shape labels appear from this zoom level on
PADDING = 8.0
PROBLEM_COLOUR = "#c62828"  # layers Keras would refuse
TITLE_HEIGHT = 26.0  # the frame's title strip: double-clicking it collapses the nested model
# What a box paints beyond its rectangle (left, top, right, bottom): half the selection outline, the problem
# mark at the top left and the badge at the top right.
BOX_MARGINS = (9.5, 10.5, 5.5, 2.0)


def box_fonts() -> tuple[QFont, QFont]:
    title = QFont()
    title.setPointSizeF(9.5)
    title.setBold(True)
    detail = QFont()
    detail.setPointSizeF(8.0)
    return title, detail


def box_size(lines: list[str]) -> tuple[float, float]:
    """The size a box needs for its label lines (first line in the title font), in scene units."""
    title, detail = box_fonts()
    title_metrics, detail_metrics = QFontMetricsF(title), QFontMetricsF(detail)
    width = max([title_metrics.horizontalAdvance(lines[0])] + [detail_metrics.horizontalAdvance(t) for t in lines[1:]])
    height = title_metrics.height() + detail_metrics.height() * (len(lines) - 1)
    return max(110.0, width + 2 * PADDING), height + 2 * PADDING - 4


class LayerItem(QGraphicsRectItem):
    """One layer (or a collapsed nested model): coloured by category, or by a per-layer number, with name, class
    and output shape."""

    def __init__(self, path: str, rect: tuple[float, float, float, float], lines: list[str], category: str,
                 badge: str = "", tooltip: str = "", problem: bool = False) -> None:
        super().__init__(QRectF(*rect))
        self.path = path
        self.problem = problem  # something here Keras would refuse: a red outline and a "!" mark
        self.lines = lines
        self.badge = badge
        self.colour = QColor(CATEGORY_COLOURS.get(category, CATEGORY_COLOURS["other"]))
        self.fill: QColor | None = self.colour  # what the box is filled with; None: a number it does not have
        self.is_group = category == "nested"
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsFocusable)
        self.setAcceptHoverEvents(True)
        self.tooltip = tooltip
        self.setToolTip(plain_tooltip(tooltip))
        self.setZValue(2)
        self._hover = False

    def boundingRect(self) -> QRectF:
        left, top, right, bottom = BOX_MARGINS
        return self.rect().adjusted(-left, -top, right, bottom)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        rect = self.rect()
        selected = self.isSelected()
        border = QColor("#1f6fd1") if selected else QColor("#555555") if self._hover else QColor("#777777")
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if self.problem and not selected:
            border = QColor(PROBLEM_COLOUR)
        painter.setPen(QPen(border, 3.0 if selected or self.problem else 1.0))
        painter.setBrush(QBrush(self.fill if self.fill is not None else NEUTRAL))
        painter.drawRoundedRect(rect, 6, 6)
        if self.fill is None:
            painter.setBrush(QBrush(NEUTRAL_HATCH, Qt.BrushStyle.BDiagPattern))
            painter.drawRoundedRect(rect, 6, 6)
        if self.is_group:  # a second outline marks a collapsed nested model
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(QPen(QColor("#345"), 1.0, Qt.PenStyle.DashLine))
            painter.drawRoundedRect(rect.adjusted(3, 3, -3, -3), 4, 4)
        if painter.worldTransform().m11() < 0.25:
            return  # too small to read: colour only
        title, detail = box_fonts()
        painter.setPen(text_colour(self.fill if self.fill is not None else NEUTRAL))
        y = rect.top() + PADDING - 2
        for index, text in enumerate(self.lines):
            font = title if index == 0 else detail
            painter.setFont(font)
            line_height = QFontMetricsF(font).height()
            painter.drawText(QRectF(rect.left(), y, rect.width(), line_height), Qt.AlignmentFlag.AlignCenter, text)
            y += line_height
        if self.problem:
            painter.setFont(title)
            mark = QRectF(rect.left() - 8, rect.top() - 9, 18, 18)
            painter.setBrush(QColor(PROBLEM_COLOUR))
            painter.setPen(Qt.PenStyle.NoPen)
            painter.drawEllipse(mark)
            painter.setPen(QColor("white"))
            painter.drawText(mark, Qt.AlignmentFlag.AlignCenter, "!")
        if self.badge:
            painter.setFont(detail)
            badge_rect = QRectF(rect.right() - 30, rect.top() - 9, 34, 16)
            painter.setBrush(QColor("#333333"))
            painter.setPen(Qt.PenStyle.NoPen)
            painter.drawRoundedRect(badge_rect, 8, 8)
            painter.setPen(QColor("white"))
            painter.drawText(badge_rect, Qt.AlignmentFlag.AlignCenter, self.badge)

    def show_number(self, fill: QColor | None, note: str) -> None:
        """Fill with a number's colour (None: the layer has no number, drawn neutral), said in the tooltip."""
        self._fill(fill, f"{self.tooltip}\n{note}")

    def show_category(self) -> None:
        self._fill(self.colour, self.tooltip)

    def _fill(self, fill: QColor | None, tooltip: str) -> None:
        self.fill = fill
        self.setToolTip(plain_tooltip(tooltip))
        self.update()

    def hoverEnterEvent(self, event) -> None:
        self._hover = True
        self.update()
        super().hoverEnterEvent(event)

    def hoverLeaveEvent(self, event) -> None:
        self._hover = False
        self.update()
        super().hoverLeaveEvent(event)


class FrameItem(QGraphicsRectItem):
    """An expanded nested model: a labelled frame around its layers (double-click collapses it)."""

    def __init__(self, path: str, rect: tuple[float, float, float, float], label: str) -> None:
        super().__init__(QRectF(*rect))
        self.path = path
        self.label = label
        self.setZValue(0)
        self.setToolTip(plain_tooltip(f"{label} (nested model, expanded): double-click the frame title to collapse"))

    def title_contains(self, point: QPointF) -> bool:
        rect = self.rect()
        return rect.contains(point) and point.y() - rect.top() <= TITLE_HEIGHT

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        border, title_colour = frame_colours()
        painter.setPen(QPen(border, 1.2, Qt.PenStyle.DashLine))
        painter.setBrush(QColor(143, 184, 222, 40))
        painter.drawRoundedRect(self.rect(), 8, 8)
        title, _ = box_fonts()
        painter.setFont(title)
        painter.setPen(title_colour)
        painter.drawText(self.rect().adjusted(8, 4, -8, 0), Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft,
                         f"▾ {self.label}")


class EdgeItem(QGraphicsPathItem):
    """A tensor between two layers; its shape is written along it when zoomed in far enough to read."""

    def __init__(self, route: EdgeRoute, label: str, colour: QColor) -> None:
        super().__init__()
        self.route = route
        self.label = label
        path = QPainterPath()
        points = [QPointF(*p) for p in route.points]
        if points:
            path.moveTo(points[0])
            for i in range(1, len(points) - 2, 3):
                path.cubicTo(points[i], points[i + 1], points[i + 2])
            if route.arrow_tip:
                path.lineTo(QPointF(*route.arrow_tip))
        self.setPath(path)
        self.setPen(QPen(colour, 1.2))
        self.setZValue(1)
        self._arrow = self._arrow_head(points[-1] if points else QPointF(), route.arrow_tip)
        self._label_at = path.pointAtPercent(0.5) if points else QPointF()

    @staticmethod
    def _arrow_head(base: QPointF, tip: tuple[float, float] | None) -> QPolygonF:
        if tip is None:
            return QPolygonF()
        end = QPointF(*tip)
        direction = end - base
        length = max((direction.x() ** 2 + direction.y() ** 2) ** 0.5, 1e-6)
        ux, uy = direction.x() / length, direction.y() / length
        back = QPointF(end.x() - ux * 8, end.y() - uy * 8)
        left = QPointF(back.x() - uy * 4, back.y() + ux * 4)
        right = QPointF(back.x() + uy * 4, back.y() - ux * 4)
        return QPolygonF([end, left, right])

    def boundingRect(self) -> QRectF:
        return super().boundingRect().united(self._arrow.boundingRect()).adjusted(-4, -10, 120, 10)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(self.pen())
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(self.path())
        painter.setBrush(self.pen().color())
        painter.drawPolygon(self._arrow)
        if self.label and painter.worldTransform().m11() >= LABEL_ZOOM:
            _, detail = box_fonts()
            painter.setFont(detail)
            painter.setPen(canvas_colours()[2])
            painter.drawText(self._label_at + QPointF(5, 4), self.label)


def category_legend() -> QLabel:
    """Colour key for the layer categories, small enough for the toolbar."""
    swatches = " ".join(
        f'<span style="background:{colour}; color:#111;">&nbsp;{name}&nbsp;</span>'
        for name, colour in CATEGORY_COLOURS.items() if name not in ("other", "regularization", "preprocessing")
    )
    legend = QLabel(swatches)
    legend.setObjectName("categoryLegend")
    legend.setToolTip("Box colours: layer categories")
    return legend
