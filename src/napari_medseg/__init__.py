"""napari-medseg: medical image segmentation in napari.

Importing the package is cheap: it loads neither torch nor Qt.  The public API lives in
submodules (``napari_medseg.io``, ``napari_medseg.scan``, ``napari_medseg.models`` ...).
"""

__version__ = "0.1.0"
