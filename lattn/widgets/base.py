"""The explorer pattern every widget of the course follows.

One matplotlib ``Figure`` (object-oriented API, never pyplot, so no backend ever shows it by itself), drawn in
place and rendered to PNG bytes into an ``ipywidgets.Image``. Works with ipywidgets 7.6+ (Colab's 7.7.1) and 8.x,
core widgets only. A subclass provides:

* ``controls()`` → ``{name: widget}``; each becomes an attribute and re-renders on change;
* ``compute()`` → a dict of plain data (no drawing) stored as ``self.state``;
* ``setup(fig)`` → create the artists once;  ``draw(state)`` → update them in place;
* ``describe(state)`` → a short text for the status label (written last, so tests can wait on it).

Displayed, an explorer sends the live widget view *and* a PNG of its picture and a one-line text, so a notebook read
without a kernel (GitHub, nbviewer, a stored file that ``python -m lattn.notebooks`` cleaned) shows the picture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ipywidgets as W
from matplotlib.figure import Figure

from ..display import widget_bundle
from ..viz import DPI, png_bytes

__all__ = ["Explorer", "png_bytes"]


class Explorer:
    """Base class: controls + one figure updated in place + a status label.

    ``display(explorer)`` (or leaving it last in a cell) shows it: the live widget, with a PNG and a text line for
    readers without a kernel. ``render()`` redraws; ``state`` is the data of the last render and ``renders`` counts
    them; ``save(path)`` exports PNG or SVG.
    """

    figsize: tuple[float, float] = (8.0, 3.6)
    dpi: int = DPI

    def __init__(self) -> None:
        self.fig = Figure(figsize=self.figsize, layout="constrained")
        self._controls: dict[str, W.Widget] = self.controls()
        for name, control in self._controls.items():
            setattr(self, name, control)
            control.observe(self._on_change, names="value")
        width, _ = self.pixels
        # NOTE: at most its natural width and never wider than the cell, the height following the width: a fixed
        # width and height would squash the picture in a narrower cell
        self.image = W.Image(format="png", layout=W.Layout(width="100%", max_width=f"{width}px", height="auto"))
        self.status = W.Label(value="not rendered yet")
        self.status.add_class("lattn-status")
        self.renders = 0
        self._box: W.Widget | None = None
        self.state: dict[str, Any] = {}
        self.setup(self.fig)
        # NOTE: solve the constrained layout once on the initial state, then freeze it: every render of an unchanged
        # state is then byte-identical (constrained layout re-solves and moves a few pixels each time), so "the
        # picture changed" means a control changed it.
        self.draw(self.compute())
        self.fig.dpi = self.dpi
        self.fig.draw_without_rendering()  # solves the layout at the picture's dpi, without encoding a PNG
        self.fig.set_layout_engine("none")
        self.render()

    # --- to override -------------------------------------------------------------------------------------------
    def controls(self) -> dict[str, W.Widget]:
        raise NotImplementedError

    def compute(self) -> dict[str, Any]:
        raise NotImplementedError

    def setup(self, fig: Figure) -> None:
        raise NotImplementedError

    def draw(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def describe(self, state: dict[str, Any]) -> str:
        return ", ".join(f"{k}={c.value}" for k, c in self._controls.items() if not isinstance(c, W.Button))

    # --- the machinery -----------------------------------------------------------------------------------------
    def _on_change(self, _change: dict) -> None:
        self.render()

    def render(self) -> None:
        """Recompute, redraw in place, push the PNG, then write the status label (last)."""
        self.state = self.compute()
        self.draw(self.state)
        self.image.value = png_bytes(self.fig, self.dpi)
        self.renders += 1
        self.status.value = f"rendered {self.renders}: {self.describe(self.state)}"

    @property
    def pixels(self) -> tuple[int, int]:
        """(width, height) of the picture on screen, in CSS pixels."""
        return int(self.figsize[0] * self.dpi), int(self.figsize[1] * self.dpi)

    @property
    def png(self) -> bytes:
        """The PNG bytes currently shown (ipywidgets 8 stores a memoryview, 7.x bytes)."""
        return bytes(self.image.value)

    def widget(self) -> W.Widget:
        """The whole explorer as one widget (built once): controls, picture, status."""
        if self._box is None:
            boxes = [W.HBox(list(self._controls.values())[i : i + 3]) for i in range(0, len(self._controls), 3)]
            self._box = W.VBox([*boxes, self.image, self.status])
        return self._box

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> tuple[dict, dict]:
        """What ``display(explorer)`` sends: the live widget view, a PNG of the current picture and a one-line text.

        JupyterLab and Colab show the live widget; GitHub and nbviewer the picture; ``python -m lattn.notebooks``
        stores the picture and the text, not the view (see :mod:`lattn.notebooks`).
        """
        width, height = self.pixels
        return widget_bundle(self.widget(), png=self.png), {"image/png": {"width": width, "height": height}}

    def save(self, path: str | Path) -> Path:
        """Export the current figure; the suffix picks the format (.png or .svg)."""
        path = Path(path)
        if path.suffix.lower() not in {".png", ".svg"}:
            raise ValueError(f"save() writes .png or .svg, got {path.name!r}")
        self.fig.savefig(path, dpi=2 * self.dpi)
        return path

    def set(self, **values: Any) -> Explorer:
        """Set several controls at once with a single render (for tests and static figures)."""
        self._assign(values)
        self.render()
        return self

    def states_at(self, settings: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``compute()`` at each setting (unnamed controls keep their values), without drawing anything; the
        controls are put back afterwards, so the picture shown stays right. For static figures."""
        before = {name: c.value for name, c in self._controls.items() if not isinstance(c, W.Button)}
        try:
            states = []
            for setting in settings:
                self._assign({**before, **setting})
                states.append(self.compute())
            return states
        finally:
            self._assign(before)

    def _assign(self, values: dict[str, Any]) -> None:
        """Set control values without triggering renders."""
        for name in values:
            if name not in self._controls:
                raise ValueError(f"unknown control {name!r}; this explorer has {list(self._controls)}")
        for control in self._controls.values():
            control.unobserve(self._on_change, names="value")
        try:
            for name, value in values.items():
                self._controls[name].value = value
        finally:
            for control in self._controls.values():
                control.observe(self._on_change, names="value")
