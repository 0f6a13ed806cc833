"""Selection is shared by the graph, the summary table and the inspector; keyboard navigation; find bar."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTreeWidgetItem

from explorer.ui.panels.summary_table import PATH_ROLE


def _section(window, prefix: str) -> QTreeWidgetItem:
    inspector = window.inspector
    for index in range(inspector.topLevelItemCount()):
        item = inspector.topLevelItem(index)
        if item.text(0).startswith(prefix):
            return item
    raise AssertionError(f"no inspector section {prefix!r}: "
                         f"{[inspector.topLevelItem(i).text(0) for i in range(inspector.topLevelItemCount())]}")


def _rows(section: QTreeWidgetItem) -> dict[str, str]:
    return {section.child(i).text(0): section.child(i).text(1) for i in range(section.childCount())}


def _click_box(qtbot, view, path: str) -> None:
    item = view.items_by_path[path]
    view.centerOn(item)
    point = view.mapFromScene(item.sceneBoundingRect().center())
    assert view.viewport().rect().contains(point)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=point)


def test_clicking_a_box_selects_it_in_table_and_inspector(qtbot, window):
    _click_box(qtbot, window.graph_view, "shared_dense")
    assert window.graph_view.selected_path() == "shared_dense"
    assert window.summary.selected_path() == "shared_dense"
    assert window.summary.table.selectionModel().isRowSelected(
        window.summary.table.selectionModel().currentIndex().row())
    assert window.inspector.current == "shared_dense"
    layer = _rows(_section(window, "Layer"))
    assert layer["name"] == "shared_dense" and layer["class"] == "Dense" and layer["calls"] == "2"


def test_inspector_lists_weights_and_connections(window, ui_model):
    window.session.select("shared_dense")
    weights = _section(window, "Weights")
    assert weights.text(0) == "Weights (2)"
    rows = _rows(weights)
    assert rows["kernel"].startswith("(8, 8) float32")
    assert rows["bias"].startswith("(8,) float32")
    feeds_from = _section(window, "Feeds from")
    assert feeds_from.text(0) == "Feeds from (2)"
    assert list(_rows(feeds_from)) == ["input_a", "input_b"]
    assert [feeds_from.child(i).data(0, 256) for i in range(2)] == ["input_a", "input_b"]
    assert sorted(_rows(_section(window, "Feeds into"))) == ["block", "merge"]
    assert _rows(_section(window, "Parameters"))["total"] == f"{ui_model.params['shared_dense']:,}"

    window.session.select("block")
    inside = _section(window, "Layers inside")
    assert list(_rows(inside)) == ["block_in", "inner_seq", "block_dense"]
    assert _rows(_section(window, "Parameters"))["total"] == f"{ui_model.params['block']:,}"
    assert _section(window, "Weights").text(0) == "Weights (0)"  # its weights belong to the layers inside


def test_inspector_double_click_follows_a_connection(qtbot, window):
    window.session.select("merge")
    feeds_from = _section(window, "Feeds from")
    target = next(feeds_from.child(i) for i in range(feeds_from.childCount()) if feeds_from.child(i).text(0)
                  == "shared_dense")
    inspector = window.inspector
    inspector.scrollToItem(target)
    rect = inspector.visualItemRect(target)
    assert rect.isValid()
    # A real double-click: press/release, then the second press arrives as a double-click event.
    qtbot.mouseClick(inspector.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(inspector.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert inspector.current == "shared_dense"
    assert window.graph_view.selected_path() == "shared_dense"
    assert window.summary.selected_path() == "shared_dense"


def test_clicking_a_table_row_selects_the_box(qtbot, window):
    table = window.summary.table
    proxy = window.summary.proxy
    row = next(r for r in range(proxy.rowCount()) if proxy.index(r, 0).data(PATH_ROLE) == "merge")
    index = proxy.index(row, 1)
    table.scrollTo(index)
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=table.visualRect(index).center())
    assert window.summary.selected_path() == "merge"
    assert window.graph_view.selected_path() == "merge"
    assert window.graph_view.items_by_path["merge"].isSelected()
    assert window.inspector.current == "merge"


def test_selecting_a_nested_row_expands_its_models(qtbot, window, wait_drawn):
    proxy = window.summary.proxy
    row = next(r for r in range(proxy.rowCount()) if proxy.index(r, 0).data(PATH_ROLE) == "block/inner_seq/inner_bn")
    with wait_drawn(window):
        window.summary.table.selectRow(row)
    assert {"block", "block/inner_seq"} <= window.session.expanded
    assert window.graph_view.selected_path() == "block/inner_seq/inner_bn"
    assert window.summary.selected_path() == "block/inner_seq/inner_bn"
    assert window.inspector.current == "block/inner_seq/inner_bn"


def test_table_sorted_by_params_still_selects_the_right_layer(window):
    table, proxy = window.summary.table, window.summary.proxy
    table.sortByColumn(3, Qt.SortOrder.DescendingOrder)
    first = proxy.index(0, 0).data(PATH_ROLE)
    assert first == "block"  # 158 params: the largest top-level entry of this model
    window.session.select("class_out")
    assert proxy.index(table.currentIndex().row(), 0).data(PATH_ROLE) == "class_out"
    assert window.graph_view.selected_path() == "class_out"


def test_reopening_a_model_refills_the_inspector(window, open_and_wait, ui_model):
    window.session.select("shared_dense")
    assert window.inspector.current == "shared_dense"
    open_and_wait(window, ui_model.path)  # e.g. File > Open Recent on the same file
    # No layer selected after loading: the inspector describes the model.
    assert window.graph_view.selected_path() is None
    assert window.inspector.current is None
    model = _rows(_section(window, "Model"))
    assert model["name"] == ui_model.name and model["layers"] == str(len(ui_model.layer_paths))
    assert _rows(_section(window, "Parameters"))["total"] == f"{ui_model.total_params:,}"
    assert list(_rows(_section(window, "Inputs"))) == ["input_a", "input_b"]
    window.session.select("shared_dense")  # the same path as before the reload must fill the inspector again
    assert window.graph_view.selected_path() == "shared_dense"
    assert window.inspector.current == "shared_dense"
    assert _rows(_section(window, "Layer"))["name"] == "shared_dense"


# --------------------------------------------------------------------------- keyboard


def test_arrow_keys_follow_the_data_flow(qtbot, window):
    view = window.graph_view
    graph = window.session.graph
    window.session.select("input_a")
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert view.selected_path() == "shared_dense"  # the only successor of input_a
    assert window.summary.selected_path() == "shared_dense"
    assert window.inspector.current == "shared_dense"

    qtbot.keyClick(view, Qt.Key.Key_Down)
    after = view.selected_path()
    assert after in graph.outbound("shared_dense")
    qtbot.keyClick(view, Qt.Key.Key_Up)
    assert view.selected_path() == "shared_dense"
    qtbot.keyClick(view, Qt.Key.Key_Up)
    assert view.selected_path() in {"input_a", "input_b"}


def test_left_right_move_along_a_row(qtbot, window):
    view = window.graph_view
    window.session.select("class_out")
    start = view.items_by_path["class_out"].rect()
    moved = None
    for key in (Qt.Key.Key_Right, Qt.Key.Key_Left):
        window.session.select("class_out")
        qtbot.keyClick(view, key)
        if view.selected_path() != "class_out":
            moved = (key, view.selected_path())
            break
    assert moved is not None, "class_out and score_out are on the same row"
    key, path = moved
    assert path == "score_out"
    rect = view.items_by_path[path].rect()
    assert abs(rect.center().y() - start.center().y()) < start.height() / 2
    assert (rect.center().x() - start.center().x()) * (1 if key == Qt.Key.Key_Right else -1) > 0


def test_down_without_selection_selects_a_box(qtbot, window):
    view = window.graph_view
    view.scene().clearSelection()
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert view.selected_path() in view.items_by_path


def test_enter_on_a_nested_model_expands_it(qtbot, window, wait_drawn):
    view = window.graph_view
    window.session.select("block")
    with wait_drawn(window):
        qtbot.keyClick(view, Qt.Key.Key_Return)
    assert "block" in window.session.expanded
    assert "block/block_dense" in view.items_by_path


# --------------------------------------------------------------------------- find


def test_find_action_counts_matches_and_enter_steps(qtbot, window):
    bar = window.find_bar
    assert bar.isHidden()
    assert window.actions_by_name["find"].shortcut().toString() == "Ctrl+F"
    window.activateWindow()
    qtbot.waitActive(window)
    window.graph_view.setFocus()
    with qtbot.waitSignal(window.actions_by_name["find"].triggered, timeout=2000):
        qtbot.keyClick(window.graph_view, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert bar.isVisible()
    assert bar.edit.hasFocus()
    qtbot.keyClicks(bar.edit, "_out")
    assert bar.matches == ["class_out", "score_out"]
    assert bar.status.text() == "1 of 2"
    assert window.graph_view.selected_path() == "class_out"

    qtbot.keyClick(bar.edit, Qt.Key.Key_Return)
    assert bar.status.text() == "2 of 2"
    assert window.graph_view.selected_path() == "score_out"
    assert window.summary.selected_path() == "score_out"
    qtbot.keyClick(bar.edit, Qt.Key.Key_Return)
    assert bar.status.text() == "1 of 2"
    assert window.graph_view.selected_path() == "class_out"
    qtbot.keyClick(bar.edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert bar.status.text() == "2 of 2"
    assert window.graph_view.selected_path() == "score_out"

    bar.edit.clear()
    qtbot.keyClicks(bar.edit, "no such layer")
    assert bar.matches == [] and bar.status.text() == "no match"
    qtbot.keyClick(bar.edit, Qt.Key.Key_Escape)
    assert bar.isHidden()


def test_find_matches_class_names_case_insensitively(qtbot, window):
    window.actions_by_name["find"].trigger()
    bar = window.find_bar
    bar.edit.setText("BATCHNORMALIZATION")
    assert bar.matches == ["block/inner_seq/inner_bn"]
    bar.edit.setText("dense")
    assert bar.matches == [n.path for n in window.session.graph.nodes if n.class_name == "Dense"]
    assert len(bar.matches) == 5


def test_find_reveals_a_match_inside_collapsed_nested_models(qtbot, window):
    window.actions_by_name["find"].trigger()
    bar = window.find_bar
    assert window.session.expanded == set()
    with qtbot.waitSignal(window.graph_drawn, timeout=10000):
        qtbot.keyClicks(bar.edit, "inner_dense")
    target = "block/inner_seq/inner_dense"
    qtbot.waitUntil(lambda: window.graph_view.selected_path() == target, timeout=10000)
    assert bar.matches == [target]
    assert bar.status.text() == "1 of 1"
    assert window.session.expanded == {"block", "block/inner_seq"}
    assert target in window.graph_view.items_by_path
    assert "block" not in window.graph_view.items_by_path
    assert window.summary.selected_path() == target
    assert window.inspector.current == target


def test_find_bar_searches_the_model_on_screen(qtbot, window, open_and_wait, models):
    window.actions_by_name["find"].trigger()
    bar = window.find_bar
    qtbot.keyClicks(bar.edit, "dense")
    assert len(bar.matches) == 5
    open_and_wait(window, models.small.path)  # the find bar stays open while another model is opened
    assert bar.isVisible()
    assert window.session.graph.name == models.small.name
    bar.edit.clear()
    qtbot.keyClicks(bar.edit, "dense")
    expected = [n.path for n in window.session.graph.find("dense")]
    assert expected == ["first", "second"]
    assert bar.matches == expected, "the find bar still searches the previously opened model"
    assert bar.status.text() == "1 of 2"
    assert window.graph_view.selected_path() == "first"


def _click_row(qtbot, window, path: str, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    table, proxy = window.summary.table, window.summary.proxy
    row = next(r for r in range(proxy.rowCount()) if proxy.index(r, 0).data(PATH_ROLE) == path)
    index = proxy.index(row, 1)
    table.scrollTo(index)
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, modifier, table.visualRect(index).center())


def test_ctrl_click_in_the_table_chooses_several_layers_for_export(qtbot, window):
    _click_row(qtbot, window, "merge")
    _click_row(qtbot, window, "class_out", Qt.KeyboardModifier.ControlModifier)
    assert sorted(window.summary.selected_paths()) == ["class_out", "merge"]
    assert sorted(window.session.chosen) == ["class_out", "merge"]
    assert sorted(window.graph_view.selected_paths()) == ["class_out", "merge"]
    assert sorted(t.layer for t in window.session.export_targets()) == ["class_out", "merge"]


def test_ctrl_click_in_the_graph_survives_a_redraw(qtbot, window, wait_drawn):
    """Opening a nested model redraws the scene: the boxes chosen for an export stay chosen, on screen too."""
    _click_box(qtbot, window.graph_view, "merge")
    view = window.graph_view
    item = view.items_by_path["class_out"]
    view.centerOn(item)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ControlModifier,
                     view.mapFromScene(item.sceneBoundingRect().center()))
    assert sorted(window.session.chosen) == ["class_out", "merge"]
    with wait_drawn(window):
        window.session.set_all_expanded(True)
    assert sorted(window.graph_view.selected_paths()) == ["class_out", "merge"]
    assert sorted(window.summary.selected_paths()) == ["class_out", "merge"]
    assert sorted(t.layer for t in window.session.export_targets()) == ["class_out", "merge"]
