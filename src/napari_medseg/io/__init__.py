"""Reading and writing scans and label maps with their geometry.

* :func:`read_scan` / :func:`read_label_map`: NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr),
  MetaImage (.mha, .mhd), DICOM series (a folder, or one file of a series), multi-frame grey
  DICOM (RT Dose, Enhanced CT/MR: :mod:`napari_medseg.io.dicom_multiframe`), PNG / JPEG /
  TIFF (2D) and multi-page TIFF (3D).
* :func:`write_scan` / :func:`write_label_map`: NIfTI, NRRD, MetaImage, atomically and never
  over an existing file unless asked; label maps also as DICOM-SEG (``.dcm``) on the DICOM
  series they were made on (:mod:`napari_medseg.io.dicom_seg`), names, coded terms and a
  provenance record kept (:func:`read_label_file` returns them); :func:`write_probabilities`:
  per-class probabilities as one multi-component NRRD / MetaImage.

SimpleITK does the decoding and encoding (GDCM for DICOM, JPEG 2000 included), highdicom and
pydicom build, write and decode DICOM-SEG; we do the geometry bookkeeping, DICOM series
grouping and sorting, the references between a segmentation and its series, and the checks
on what was read.
"""

from napari_medseg.io.content import guess_modality, looks_like_label_map
from napari_medseg.io.dicom import DicomSeriesInfo, list_dicom_series, read_dicom_reference
from napari_medseg.io.dicom_reference import DicomSeriesReference, dicom_reference
from napari_medseg.io.formats import (
    LABEL_WRITE_SUFFIXES,
    READ_SUFFIXES,
    WRITE_SUFFIXES,
    Format,
    detect_format,
)
from napari_medseg.io.read import (
    LabelFile,
    label_map_from_scan,
    read_label_file,
    read_label_map,
    read_scan,
)
from napari_medseg.io.sidecar import read_sidecar, sidecar_path
from napari_medseg.io.write import write_label_map, write_probabilities, write_scan

__all__ = [
    "LABEL_WRITE_SUFFIXES",
    "READ_SUFFIXES",
    "WRITE_SUFFIXES",
    "DicomSeriesInfo",
    "DicomSeriesReference",
    "Format",
    "LabelFile",
    "detect_format",
    "dicom_reference",
    "guess_modality",
    "label_map_from_scan",
    "list_dicom_series",
    "looks_like_label_map",
    "read_dicom_reference",
    "read_label_file",
    "read_label_map",
    "read_scan",
    "read_sidecar",
    "sidecar_path",
    "write_label_map",
    "write_probabilities",
    "write_scan",
]
