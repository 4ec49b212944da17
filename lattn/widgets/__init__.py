"""Interactive explorers (core ipywidgets only; ipywidgets 7.6+ and 8): one module per lesson.

Every explorer follows :class:`~lattn.widgets.base.Explorer`: controls as attributes, ``render()``, ``state``,
a status label written last, ``save(path)``; its display bundle carries a PNG of the picture, the fallback where no kernel runs.
"""

from .base import Explorer, png_bytes
from .flow import FlowExplorer

__all__ = ["Explorer", "FlowExplorer", "png_bytes"]
