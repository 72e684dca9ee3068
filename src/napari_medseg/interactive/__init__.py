"""Interactive segmentation: clicks, scribbles, boxes, lassos and masks -> one 3D object.

``Session(scan)`` is the whole contract (Qt-free; the napari tab only converts layers)::

    s = Session(scan)
    mask = s.add_point((z, y, x), positive=True)   # bool array, scan shape
    s.add_scribble(points, positive=False); s.add_box(a, b); s.add_lasso(outline)
    s.set_mask(existing); s.undo(); s.redo(); s.reset()
    s.accept("nodule")
    s2 = Session(other_scan, memory=s.memory)     # what was taught carries over
"""

from napari_medseg.interactive.engine import EngineOptions
from napari_medseg.interactive.memory import Example, Memory
from napari_medseg.interactive.session import Accepted, InteractiveError, Session

__all__ = ["Accepted", "EngineOptions", "Example", "InteractiveError", "Memory", "Session"]
