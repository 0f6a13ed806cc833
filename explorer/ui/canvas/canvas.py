"""Keeps the graph view in step with the session: lays the graph out (Graphviz, off the GUI thread) whenever the
graph or the open nested models change, colours the boxes by the session's per-layer numbers, and turns clicks
into session changes."""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Signal

from explorer.layout.graphviz import Layout, compute_layout
from explorer.layout.view_graph import ViewGraph, build_view
from explorer.model.origin import origin_text
from explorer.ui.canvas.number_colours import NumberScale
from explorer.ui.canvas.scene import box_sizes
from explorer.ui.canvas.view import GraphView
from explorer.ui.layer_values import number_text
from explorer.ui.session import Session, reason_of
from explorer.ui.tasks import TaskRunner


class GraphCanvas(QObject):
    drawn = Signal()  # the current graph is on screen (tests and benchmarks wait for it)

    def __init__(self, session: Session, view: GraphView) -> None:
        super().__init__(view)
        self.session, self.view = session, view
        self.tasks = TaskRunner(self)
        self._reveal: str | None = None  # a layer to centre on once the pending layout is drawn
        self._pending = False  # a layout is under way: what is on screen is about to be replaced
        self._drawn: tuple[ViewGraph, Layout] | None = None
        session.graph_changed.connect(self._graph_changed)
        session.expanded_changed.connect(lambda: self.relayout(keep_view=True))
        session.selection_changed.connect(self._selection_changed)
        session.chosen_changed.connect(self._chosen_changed)
        session.numbers_changed.connect(self.shade)
        view.layer_selected.connect(session.select)
        view.group_toggled.connect(self._toggle)
        view.selection_changed.connect(lambda paths: session.choose(paths if len(paths) > 1 else []))

    def _graph_changed(self) -> None:
        self._reveal, self._drawn = None, None
        self.view.clear()
        self.relayout(keep_view=False)

    def relayout(self, keep_view: bool = True) -> None:
        graph = self.session.graph
        if graph is None:
            return
        view = build_view(graph, self.session.expanded)
        sizes = box_sizes(view)  # measured here: fonts belong to the GUI thread
        self.session.message.emit(f"Laying out {len(view.nodes)} layers…")
        self._pending = True

        def work(cancelled: threading.Event) -> Layout:
            return compute_layout(view, sizes, cancelled)

        self.tasks.submit("layout", work, lambda layout: self._draw(view, layout, keep_view), self._failed)

    def repaint_scene(self) -> None:
        """Draw the last layout again (new theme colours): no new Graphviz run."""
        if self._drawn is not None:
            self.view.show_layout(*self._drawn, keep_view=True)
            self._chosen_changed()
            self.shade()

    def _draw(self, view: ViewGraph, layout: Layout, keep_view: bool) -> None:
        self._drawn = (view, layout)
        self._pending = False
        self.view.show_layout(view, layout, keep_view)
        self._chosen_changed()  # the redrawn scene selects one box: show the whole multi-selection again
        self.shade()
        graph = view.graph
        self.session.message.emit(f"{graph.name}: {len(graph.nodes)} layers, {graph.totals[0]:,} params, "
                                  f"{origin_text(graph)} — {self.session.path}")
        if self._reveal:
            path, self._reveal = self._reveal, None
            self.view.select(path)
        self.session.drawn()
        self.drawn.emit()

    def _failed(self, error: BaseException) -> None:
        self._pending = False
        self.session.fail(f"Cannot lay out the graph: {reason_of(error)}", error)
        self.session.drawn()  # activations do not need the drawing

    def shade(self) -> None:
        """Fill every box by its number (at the call site the session shows), or by its category without numbers."""
        numbers, items = self.session.numbers, self.view.items_by_path
        if numbers is None:
            for item in items.values():
                item.show_category()
            return
        span = numbers.span()
        scale = NumberScale(*span) if span else None
        for path, item in items.items():
            value = numbers.value(path, self.session.shown_call_site(path))
            item.show_number(scale.colour(value) if scale and value is not None else None,
                             f"{numbers.measure}: {number_text(value)}")

    def _selection_changed(self) -> None:
        path = self.session.layer
        if path is None:
            return
        if self.session.numbers is not None:
            self.shade()  # a shared layer (or a model holding it) shows the selected call's number
        if self._pending:
            self._reveal = path  # e.g. inside a nested model being opened: select it once drawn
        else:
            self.view.select(path)

    def _chosen_changed(self) -> None:
        if len(self.session.chosen) > 1:
            self.view.select_many(list(self.session.chosen))

    def _toggle(self, path: str) -> None:
        self._reveal = path  # keep the opened or closed model in sight
        self.session.toggle_group(path)
        self.session.select(path)

    def shutdown(self) -> None:
        self.tasks.shutdown()
