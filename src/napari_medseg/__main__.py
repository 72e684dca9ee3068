"""``python -m napari_medseg`` is ``napari-medseg``."""

import sys

from napari_medseg.cli import main

sys.exit(main())
