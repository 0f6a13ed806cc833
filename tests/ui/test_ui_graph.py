"""The graph canvas: expanding and collapsing nested models, shared-layer badges, zoom and fit."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QWheelEvent

from explorer.ui.canvas.items import EdgeItem, FrameItem, LayerItem
from explorer.ui.canvas.view import MAX_ZOOM, MIN_ZOOM

BLOCK_CHILDREN = {"block/block_in", "block/inner_seq", "block/block_dense"}
INNER_CHILDREN = {"block/inner_seq/inner_in", "block/inner_seq/inner_dense", "block/inner_seq/inner_bn"}


def _frames(view) -> dict[str, FrameItem]:
    return {item.path: item for item in view.scene().items() if isinstance(item, FrameItem)}


def _boxes(view) -> set[str]:
    return {item.path for item in view.scene().items() if isinstance(item, LayerItem)}


def _double_click(qtbot, view, scene_point) -> None:
    view.centerOn(scene_point)
    point = view.mapFromScene(scene_point)
    assert view.viewport().rect().contains(point)
    qtbot.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=point)


def _frame_title_point(frame: FrameItem):
    """A point on the frame's title strip, above the boxes it holds."""
    rect = frame.sceneBoundingRect()
    return rect.topLeft() + QPoint(12, 8).toPointF()


def test_toggle_group_expands_and_collapses(window, wait_drawn, ui_model):
    view = window.graph_view
    assert set(ui_model.layer_paths) >= BLOCK_CHILDREN | INNER_CHILDREN
    assert set(ui_model.groups) == {"block", "block/inner_seq"}
    with wait_drawn(window):
        window.session.toggle_group("block")
    assert window.session.expanded == {"block"}
    assert _boxes(view) == (set(ui_model.top_level) - {"block"}) | BLOCK_CHILDREN
    assert set(_frames(view)) == {"block"}
    frame = _frames(view)["block"]
    for child in BLOCK_CHILDREN:
        assert frame.sceneBoundingRect().contains(view.items_by_path[child].sceneBoundingRect()), child

    with wait_drawn(window):
        window.session.toggle_group("block/inner_seq")
    assert set(_frames(view)) == {"block", "block/inner_seq"}
    assert _boxes(view) >= INNER_CHILDREN

    with wait_drawn(window):
        window.session.toggle_group("block")  # collapsing the outer model collapses what is inside it too
    assert window.session.expanded == set()
    assert _boxes(view) == set(ui_model.top_level)
    assert _frames(view) == {}


def test_double_click_expands_a_nested_model_and_its_frame_collapses_it(qtbot, window, wait_drawn, ui_model):
    view = window.graph_view
    block = view.items_by_path["block"]
    assert block.is_group and "double-click to expand" in block.lines[-1]
    with wait_drawn(window):
        _double_click(qtbot, view, block.sceneBoundingRect().center())
    assert "block" in window.session.expanded
    assert set(view.items_by_path) >= BLOCK_CHILDREN
    assert "block" not in view.items_by_path
    assert "block" in _frames(view)

    inner = view.items_by_path["block/inner_seq"]
    assert inner.is_group
    with wait_drawn(window):
        _double_click(qtbot, view, inner.sceneBoundingRect().center())
    assert window.session.expanded == {"block", "block/inner_seq"}
    assert set(view.items_by_path) >= INNER_CHILDREN
    assert set(_frames(view)) == {"block", "block/inner_seq"}

    with wait_drawn(window):
        _double_click(qtbot, view, _frame_title_point(_frames(view)["block/inner_seq"]))
    assert window.session.expanded == {"block"}
    assert not INNER_CHILDREN & set(view.items_by_path)
    assert set(_frames(view)) == {"block"}

    with wait_drawn(window):
        _double_click(qtbot, view, _frame_title_point(_frames(view)["block"]))
    assert window.session.expanded == set()
    assert set(view.items_by_path) == set(ui_model.top_level)
    assert _frames(view) == {}


def test_double_click_on_a_plain_layer_changes_nothing(qtbot, window, ui_model):
    view = window.graph_view
    item = view.items_by_path["merge"]
    _double_click(qtbot, view, item.sceneBoundingRect().center())
    qtbot.wait(200)
    assert window.session.expanded == set()
    assert set(view.items_by_path) == set(ui_model.top_level)
    assert view.selected_path() == "merge"


def test_expand_all_and_collapse_all_actions(window, wait_drawn, ui_model):
    view = window.graph_view
    with wait_drawn(window):
        window.actions_by_name["expand_all"].trigger()
    assert window.session.expanded == set(ui_model.groups)
    leaves = {p for p in ui_model.layer_paths if p not in ui_model.groups}
    assert set(view.items_by_path) == leaves
    assert set(_frames(view)) == set(ui_model.groups)
    assert window.actions_by_name["expand_all"].shortcut().toString() == "Ctrl+E"

    with wait_drawn(window):
        window.actions_by_name["collapse_all"].trigger()
    assert window.session.expanded == set()
    assert set(view.items_by_path) == set(ui_model.top_level)
    assert _frames(view) == {}


def test_expanded_edges_connect_into_the_nested_layers(window, wait_drawn):
    with wait_drawn(window):
        window.session.set_all_expanded(True)
    view = window.graph_view
    edges = {(e.source, e.target) for e in view.view.edges}
    assert ("shared_dense", "block/block_in") in edges
    assert ("block/block_dense", "merge") in edges
    assert ("block/inner_seq/inner_bn", "block/block_dense") in edges
    drawn = [i for i in view.scene().items() if isinstance(i, EdgeItem)]
    assert {(i.route.source, i.route.target) for i in drawn} == edges


def test_shared_layer_box_shows_its_call_count(window, ui_model):
    items = window.graph_view.items_by_path
    assert ui_model.calls["shared_dense"] == 2
    assert items["shared_dense"].badge == "\u00d72"
    assert "called 2 times" in items["shared_dense"].toolTip()
    assert {p for p, item in items.items() if item.badge} == {"shared_dense"}
    proxy = window.summary.proxy
    names = [proxy.index(r, 0).data() for r in range(proxy.rowCount())]
    assert "shared_dense  (\u00d72)" in names


def test_shared_layer_badge_is_drawn_when_only_its_strip_is_repainted(window):
    """The badge sits above the box: Qt repaints an item only where its bounding rect meets the exposed area,
    so the strip holding the badge must belong to the box (scrolling exposes such strips)."""
    box = window.graph_view.items_by_path["shared_dense"]
    rect = box.mapRectToScene(box.rect())
    strip = QRectF(rect.right() - 36, rect.top() - 9, 40, 8)  # the badge's part above the box
    image = QImage(40, 8, QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    window.graph_view.scene().render(painter, QRectF(0, 0, 40, 8), strip)
    painter.end()
    darkest = min(QColor(image.pixel(x, y)).value() for x in range(40) for y in range(8))
    assert darkest < 100  # the badge's dark pill, not only the white background


def test_selection_survives_expand_and_collapse(window, wait_drawn):
    view = window.graph_view
    window.session.select("merge")
    with wait_drawn(window):
        window.session.set_all_expanded(True)
    assert view.selected_path() == "merge"
    window.session.select("block/inner_seq/inner_dense")
    with wait_drawn(window):
        window.session.set_all_expanded(False)
    # The layer is hidden again: its collapsed nested model stands in for it.
    assert view.selected_path() == "block"


# --------------------------------------------------------------------------- zoom


def test_zoom_actions_and_fit(window):
    view = window.graph_view
    actions = window.actions_by_name
    actions["fit"].trigger()
    fitted = view.zoom()
    assert 0 < fitted <= 1.0
    assert view.visible_scene_rect().adjusted(-1, -1, 1, 1).contains(view.scene().sceneRect())

    actions["zoom_in"].trigger()
    assert abs(view.zoom() - fitted * 1.25) < 1e-6
    actions["zoom_out"].trigger()
    actions["zoom_out"].trigger()
    assert abs(view.zoom() - fitted * 0.8) < 1e-6

    for _ in range(40):
        actions["zoom_in"].trigger()
    assert abs(view.zoom() - MAX_ZOOM) < 1e-6
    for _ in range(60):
        actions["zoom_out"].trigger()
    assert abs(view.zoom() - MIN_ZOOM) < 1e-6

    actions["fit"].trigger()
    assert abs(view.zoom() - fitted) < 1e-6


def test_fit_shows_the_whole_graph(window):
    view = window.graph_view
    view.set_zoom(4.0)
    window.actions_by_name["fit"].trigger()
    visible = view.visible_scene_rect().adjusted(-2, -2, 2, 2)
    for path, item in view.items_by_path.items():
        assert visible.contains(item.sceneBoundingRect()), path


def test_zoom_keys_on_the_canvas(qtbot, window):
    view = window.graph_view
    view.set_zoom(1.0)
    qtbot.keyClick(view, Qt.Key.Key_Plus)
    assert abs(view.zoom() - 1.25) < 1e-6
    qtbot.keyClick(view, Qt.Key.Key_Minus)
    assert abs(view.zoom() - 1.0) < 1e-6
    view.set_zoom(3.0)
    qtbot.keyClick(view, Qt.Key.Key_0)
    assert view.zoom() <= 1.0


def test_wheel_zooms(window):
    view = window.graph_view
    view.set_zoom(1.0)
    centre = QPointF(view.viewport().rect().center())
    event = QWheelEvent(centre, view.viewport().mapToGlobal(centre), QPoint(0, 0), QPoint(0, 120),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    view.wheelEvent(event)
    assert abs(view.zoom() - 1.0015 ** 120) < 1e-6
    view.wheelEvent(QWheelEvent(centre, view.viewport().mapToGlobal(centre), QPoint(0, 0), QPoint(0, -240),
                                Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
                                False))
    assert abs(view.zoom() - 1.0015 ** -120) < 1e-6
