"""The napari layer of napari-medseg: the only package that imports napari, Qt or magicgui.

Every ``python_name`` of ``napari.yaml`` points in here; the core never imports this package.
"""
