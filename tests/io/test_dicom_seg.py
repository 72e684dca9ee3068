"""DICOM-SEG on the real series: written by us, read back by pydicom and numpy alone.

The checks of where each frame lands do not use our reader nor our geometry code: source
slices are read with pydicom, frames are unpacked with numpy, and the CT's labels (a NIfTI
file stored RAS, rows flipped against the series) are looked up through nibabel's affine.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from napari_medseg.errors import GeometryMismatchError, OutputExistsError, UnsupportedScanError
from napari_medseg.inference.records import scan_record
from napari_medseg.io import (
    list_dicom_series,
    read_dicom_reference,
    read_label_file,
    read_label_map,
    read_scan,
    sidecar_path,
    write_label_map,
)
from napari_medseg.io.dicom_reference import dicom_reference
from napari_medseg.io.dicom_seg import (
    DicomSegError,
    DicomSegOptions,
    MissingReferenceError,
    absent_classes,
    derived_uid,
)
from napari_medseg.provenance import ProvenanceRecord, with_edits
from napari_medseg.scan import Geometry, LabelMap

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
CT_LABELS = "dicom_series_ct_labels/example_seg_dicom.nii.gz"
#: TotalSegmentator's names of five of the 31 classes (the rest keep "class k").
ORGANS = {1: "spleen", 5: "liver", 6: "stomach", 7: "pancreas", 52: "aorta"}


# ---------------------------------------------------------------------------- independent
def source_slices(folder: Path) -> dict[str, dict]:
    """SOP Instance UID -> file, position, orientation, spacing, read with pydicom alone
    (an empty dataset UID: the file meta information's, as the standard defines it)."""
    out = {}
    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        uid = ds.SOPInstanceUID or ds.file_meta.MediaStorageSOPInstanceUID
        out[str(uid)] = {
            "file": path.name,
            "position": np.array([float(v) for v in ds.ImagePositionPatient]),
            "orientation": np.array([float(v) for v in ds.ImageOrientationPatient]),
            "spacing": np.array([float(v) for v in ds.PixelSpacing]),
            "rows": int(ds.Rows), "columns": int(ds.Columns),
            "sop_class": str(ds.SOPClassUID or ds.file_meta.MediaStorageSOPClassUID),
        }
    return out


def seg_frames(path: Path) -> tuple[pydicom.Dataset, list[tuple[int, str, np.ndarray, np.ndarray]]]:
    """``(segment number, referenced SOP Instance UID, ImagePositionPatient, mask)`` of every
    frame, with pydicom for the elements and numpy for the bit-packed pixels."""
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == SEGMENTATION_STORAGE
    assert ds.SegmentationType == "BINARY"
    assert ds.BitsAllocated == 1
    n, rows, cols = int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns)
    bits = np.unpackbits(np.frombuffer(ds.PixelData, np.uint8), bitorder="little")
    masks = bits[: n * rows * cols].reshape(n, rows, cols).astype(bool)
    frames = []
    for item, mask in zip(ds.PerFrameFunctionalGroupsSequence, masks, strict=True):
        number = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        uid = str(item.DerivationImageSequence[0].SourceImageSequence[0]
                  .ReferencedSOPInstanceUID)
        position = np.array([float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient])
        frames.append((number, uid, position, mask))
    return ds, frames


def label_value_of(ds: pydicom.Dataset) -> dict[int, int]:
    """Segment number -> the label value our writer put in SegmentDescription."""
    return {int(s.SegmentNumber): int(str(s.SegmentDescription).rsplit("label value ", 1)[1])
            for s in ds.SegmentSequence}


def nifti_values_on_slice(nifti: nib.Nifti1Image, data: np.ndarray, source: dict) -> np.ndarray:
    """The NIfTI labels at every pixel centre of one DICOM slice, located through physical
    space: pixel (r, c) lies at IPP + c * dc * row_dir + r * dr * col_dir (LPS), nibabel's
    affine maps RAS to voxels."""
    rows, cols = source["rows"], source["columns"]
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    o = source["orientation"]
    lps = (source["position"][None, None, :] + c[..., None] * source["spacing"][1] * o[:3]
           + r[..., None] * source["spacing"][0] * o[3:])
    ras = lps * np.array([-1.0, -1.0, 1.0])
    voxel = np.rint(np.linalg.solve(nifti.affine[:3, :3], (ras - nifti.affine[:3, 3]).reshape(
        -1, 3).T).T).astype(int)
    return data[voxel[:, 0], voxel[:, 1], voxel[:, 2]].reshape(rows, cols)


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def ct_scan(shared_data):
    return read_scan(shared_data / "dicom_series_ct")


@pytest.fixture(scope="module")
def ct_labels(shared_data):
    labels = read_label_map(shared_data / CT_LABELS)
    return LabelMap(array=labels.array, geometry=labels.geometry,
                    class_names={**labels.class_names, **ORGANS}, source=labels.source)


@pytest.fixture(scope="module")
def ct_record(ct_scan):
    edited = np.zeros(ct_scan.shape, bool)
    edited[3, 100:110, 100:110] = True
    record = ProvenanceRecord(made_by="tests", created="2026-01-01T00:00:00+00:00",
                              scan=scan_record(ct_scan))
    return with_edits(record, edited=edited)


@pytest.fixture(scope="module")
def ct_seg(tmp_path_factory, ct_scan, ct_labels, ct_record):
    """All 31 classes of the CT labels written on the CT series (JPEG 2000, empty UIDs)."""
    path = tmp_path_factory.mktemp("ctseg") / "organs.dcm"
    write_label_map(ct_labels, path, reference=ct_scan, provenance=ct_record)
    return path


@pytest.fixture(scope="module")
def mr_mask(mr_dicom_series):
    """Two structures drawn on the oblique MR: a box over slices 5-8, a bar over 7-11."""
    array = np.zeros(mr_dicom_series.shape, np.uint8)
    array[5:9, 100:140, 90:150] = 2
    array[7:12, 20:40, 20:30] = 5
    return LabelMap(array=array, geometry=mr_dicom_series.geometry,
                    class_names={0: "background", 2: "lesion", 5: "white matter"})


@pytest.fixture(scope="module")
def mr_seg(tmp_path_factory, mr_dicom_series, mr_mask):
    path = tmp_path_factory.mktemp("mrseg") / "drawn.dcm"
    write_label_map(mr_mask, path, reference=mr_dicom_series)
    return path


# ---------------------------------------------------------------------------- CT
def test_ct_frames_land_on_their_source_slice_and_pixels(shared_data, ct_seg):
    sources = source_slices(shared_data / "dicom_series_ct")
    nifti = nib.load(str(shared_data / CT_LABELS))
    data = np.asarray(nifti.dataobj)
    truth = {uid: nifti_values_on_slice(nifti, data, s) for uid, s in sources.items()}
    ds, frames = seg_frames(ct_seg)
    values = label_value_of(ds)
    assert sorted(values.values()) == sorted(int(v) for v in np.unique(data) if v)  # all 31
    seen = set()
    for number, uid, position, mask in frames:
        assert uid in sources, "a frame references an image outside the series"
        np.testing.assert_allclose(position, sources[uid]["position"], atol=1e-4)
        np.testing.assert_array_equal(mask, truth[uid] == values[number])
        seen.add((values[number], uid))
    expected = {(int(v), uid) for uid, t in truth.items() for v in np.unique(t) if v}
    assert seen == expected  # every non-empty (class, slice) has its frame, and only those


def test_ct_segments_carry_names_codes_and_label_values(ct_seg):
    ds = pydicom.dcmread(ct_seg, stop_before_pixels=True)
    by_label = {str(s.SegmentLabel): s for s in ds.SegmentSequence}
    liver = by_label["liver"]
    assert liver.SegmentedPropertyTypeCodeSequence[0].CodeValue == "10200004"
    assert liver.SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator == "SCT"
    assert liver.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "91723000"
    assert str(liver.SegmentDescription).endswith("label value 5")
    assert by_label["aorta"].SegmentedPropertyTypeCodeSequence[0].CodeValue == "15825003"
    generic = by_label["class 20"]  # a name the table does not know: Tissue, name kept
    assert generic.SegmentedPropertyTypeCodeSequence[0].CodeValue == "85756007"
    numbers = [int(s.SegmentNumber) for s in ds.SegmentSequence]
    assert numbers == list(range(1, 32))  # consecutive from 1, as the standard asks
    assert all(s.SegmentAlgorithmType == "MANUAL" for s in ds.SegmentSequence)  # no model


def test_ct_references_the_series_and_derives_its_missing_uids(shared_data, ct_seg, ct_scan,
                                                               ct_record):
    sources = source_slices(shared_data / "dicom_series_ct")
    ds = pydicom.dcmread(ct_seg, stop_before_pixels=True)
    # the series has empty Study/Series/SOP UIDs in its datasets
    first = pydicom.dcmread(next((shared_data / "dicom_series_ct").iterdir()),
                            stop_before_pixels=True)
    assert first.StudyInstanceUID == "" and first.SeriesInstanceUID == ""  # noqa: PT018
    reference = dicom_reference(ct_scan.metadata)
    assert reference is not None
    assert ds.StudyInstanceUID == derived_uid("study", reference)
    assert ds.StudyInstanceUID.startswith("2.25.")
    assert len(ds.StudyInstanceUID) <= 64
    referenced = ds.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == derived_uid("series", reference)
    instances = {str(i.ReferencedSOPInstanceUID): str(i.ReferencedSOPClassUID)
                 for i in referenced.ReferencedInstanceSequence}
    assert instances == {uid: s["sop_class"] for uid, s in sources.items()}
    assert set(instances.values()) == {"1.2.840.10008.5.1.4.1.1.2"}  # CT Image Storage
    assert ds.FrameOfReferenceUID == first.FrameOfReferenceUID
    assert "derived" in ds.ImageComments
    assert ds.ContentDescription == ct_record.summary(64)
    assert "1 slice(s) edited" in ds.ContentDescription
    assert ds.SeriesInstanceUID != referenced.SeriesInstanceUID  # a new series of its own


def test_ct_round_trip_through_our_reader(ct_seg, ct_scan, ct_labels, tmp_path):
    on_series = ct_labels.array[:, ::-1, :]  # the NIfTI rows are flipped against the series
    back = read_label_file(ct_seg, reference=ct_scan)
    np.testing.assert_array_equal(back.labels.array, on_series)
    assert back.labels.geometry.is_close(ct_scan.geometry)
    assert back.labels.class_names == ct_labels.class_names
    assert back.terms[5].type.value == "10200004"
    # without the series: the grid recorded in the sidecar gives the same map
    alone = read_label_file(ct_seg)
    np.testing.assert_array_equal(alone.labels.array, on_series)
    assert alone.labels.geometry.is_close(ct_scan.geometry)
    assert alone.provenance is not None
    assert alone.provenance.edits is not None
    assert alone.provenance.edits.edited_slices == (3,)
    # without sidecar nor series: the grid the frames span (all 20 slices hold labels here)
    shutil.copy(ct_seg, tmp_path / "copy.dcm")
    bare = read_label_file(tmp_path / "copy.dcm")
    np.testing.assert_array_equal(bare.labels.array, on_series)
    assert bare.labels.geometry.is_close(ct_scan.geometry, atol_mm=1e-3)
    assert bare.provenance is None


# ---------------------------------------------------------------------------- MR (oblique)
def test_oblique_mr_frames_keep_positions_and_the_true_slice_step(shared_data, mr_seg, mr_mask):
    sources = source_slices(shared_data / "dicom_series_mr")
    orientation = next(iter(sources.values()))["orientation"]
    normal = np.cross(orientation[:3], orientation[3:])
    assert abs(normal[1]) > 0.1  # oblique: the slices are tilted against the axes
    by_depth = sorted(sources, key=lambda uid: float(sources[uid]["position"] @ normal))
    ds, frames = seg_frames(mr_seg)
    values = label_value_of(ds)
    shared = ds.SharedFunctionalGroupsSequence[0]
    np.testing.assert_allclose([float(v) for v in shared.PlaneOrientationSequence[0]
                                .ImageOrientationPatient], orientation, atol=1e-6)
    measures = shared.PixelMeasuresSequence[0]
    assert float(measures.SpacingBetweenSlices) == pytest.approx(7.0, abs=0.01)  # not the 2.0 tag
    assert float(measures.SliceThickness) == pytest.approx(5.0)  # gapped: 5 mm thick, 7 apart
    seen = set()
    for number, uid, position, mask in frames:
        k = by_depth.index(uid)
        np.testing.assert_allclose(position, sources[uid]["position"], atol=1e-4)
        np.testing.assert_array_equal(mask, mr_mask.array[k] == values[number])
        seen.add((values[number], k))
    assert seen == {(2, k) for k in range(5, 9)} | {(5, k) for k in range(7, 12)}


def test_oblique_mr_round_trip_through_our_reader(mr_seg, mr_mask, mr_dicom_series, tmp_path):
    back = read_label_map(mr_seg, like=mr_dicom_series)  # like= a DICOM scan is the reference
    np.testing.assert_array_equal(back.array, mr_mask.array)
    assert back.class_names == mr_mask.class_names
    # a copy without its sidecar: only slices 5-11 hold frames, so the grid spans those
    shutil.copy(mr_seg, tmp_path / "bare.dcm")
    bare = read_label_map(tmp_path / "bare.dcm")
    assert bare.shape == (7, 256, 256)
    np.testing.assert_array_equal(bare.array, mr_mask.array[5:12])
    world = bare.geometry.index_to_world([[0, 0, 0], [6, 255, 255]])
    expected = mr_dicom_series.geometry.index_to_world([[5, 0, 0], [11, 255, 255]])
    np.testing.assert_allclose(world, expected, atol=0.15)  # positions rounded in the files


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize(("which", "scan"), [("ct_seg", "ct_scan"),
                                             ("mr_seg", "mr_dicom_series")])
def test_highdicom_reads_it_back_by_source_instance(which, scan, request):
    """highdicom's own reader (its checks of the file included) finds the same labels."""
    import highdicom as hd

    path = request.getfixturevalue(which)
    reference = dicom_reference(request.getfixturevalue(scan).metadata)
    assert reference is not None
    seg = hd.seg.segread(path)
    uids = [s.sop_instance_uid for s in reference.slices]  # in our array order
    pixels = seg.get_pixels_by_source_instance(uids, combine_segments=True)
    values = label_value_of(pydicom.dcmread(path, stop_before_pixels=True))
    lookup = np.zeros(max(values) + 1, np.int64)
    for number, value in values.items():
        lookup[number] = value
    np.testing.assert_array_equal(lookup[pixels], read_label_file(path).labels.array)


@pytest.mark.skipif(shutil.which("dciodvfy") is None,
                    reason="dciodvfy (Debian package dicom3tools) is not installed")
@pytest.mark.parametrize("which", ["ct_seg", "mr_seg"])
def test_dciodvfy_finds_no_error_of_ours(which, request, shared_data):
    """David Clunie's validator: no error, except illegal UID roots of the source series
    (the MR's UIDs start with 0.0.0.0), which the segmentation must reference as they are."""
    import subprocess

    path = request.getfixturevalue(which)
    folder = shared_data / ("dicom_series_ct" if which == "ct_seg" else "dicom_series_mr")
    first = pydicom.dcmread(next(iter(sorted(folder.iterdir()))), stop_before_pixels=True)
    source_uids = set(source_slices(folder)) | {
        str(first.StudyInstanceUID), str(first.SeriesInstanceUID),
        str(first.FrameOfReferenceUID)}
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
    report = (run.stdout + run.stderr).splitlines()
    assert "Segmentation" in report  # the IOD it validated against
    errors = [line for line in report if line.startswith("Error")]
    ours = [e for e in errors if not (
        "Illegal root for UID" in e and e.split('"')[1] in source_uids)]
    assert ours == []


# ---------------------------------------------------------------------------- bad input
def test_labels_without_a_dicom_series_are_refused(shared_data, tmp_path):
    scan = read_scan(shared_data / "ct_abdomen" / "example_ct_sm.nii.gz")
    labels = LabelMap(array=(scan.array > 0).astype(np.uint8), geometry=scan.geometry)
    with pytest.raises(MissingReferenceError, match="--reference SERIES_DIR"):
        write_label_map(labels, tmp_path / "seg.dcm")
    with pytest.raises(MissingReferenceError, match="not read from a DICOM series"):
        write_label_map(labels, tmp_path / "seg.dcm", reference=scan)
    assert list(tmp_path.iterdir()) == []


def test_labels_on_another_grid_are_refused(ct_scan, tmp_path):
    shifted = Geometry(spacing=ct_scan.spacing,
                       origin=tuple(np.add(ct_scan.geometry.origin, (0, 5.0, 0))),
                       direction=ct_scan.geometry.direction)
    labels = LabelMap(array=np.ones(ct_scan.shape, np.uint8), geometry=shifted)
    with pytest.raises(GeometryMismatchError, match="do not lie on the voxels"):
        write_label_map(labels, tmp_path / "seg.dcm", reference=ct_scan)
    half = LabelMap(array=np.ones((10, 512, 512), np.uint8), geometry=ct_scan.geometry)
    with pytest.raises(GeometryMismatchError):
        write_label_map(half, tmp_path / "seg.dcm", reference=ct_scan)
    assert list(tmp_path.iterdir()) == []


def test_series_with_a_missing_position_is_refused(shared_data, ct_scan, tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    files = sorted((shared_data / "dicom_series_ct").iterdir())
    for f in files:
        shutil.copy(f, folder / f.name)
    broken = pydicom.dcmread(folder / files[7].name)
    del broken.ImagePositionPatient
    broken.save_as(folder / files[7].name)
    labels = LabelMap(array=np.ones(ct_scan.shape, np.uint8), geometry=ct_scan.geometry)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DicomSegError, match=r"1 slice\(s\) without ImagePositionPatient"):
        write_label_map(labels, out / "seg.dcm", reference=folder)
    assert list(out.iterdir()) == []


def test_more_classes_than_one_file_holds_are_refused(shared_data, tmp_path):
    reference = read_dicom_reference(shared_data / "dicom_series_ct")  # headers only
    geometry, shape = reference.grid()
    array = np.zeros(shape, np.uint32)
    array.ravel()[:65536] = np.arange(1, 65537)
    with pytest.raises(DicomSegError, match="65536 classes; one DICOM-SEG holds at most 65535"):
        write_label_map(LabelMap(array=array, geometry=geometry), tmp_path / "seg.dcm",
                        reference=reference)
    assert list(tmp_path.iterdir()) == []


def test_empty_segments_are_dropped_or_refused(ct_scan, tmp_path):
    array = np.zeros(ct_scan.shape, np.uint8)
    array[4:6, 200:220, 200:230] = 1
    names = {0: "background", 1: "liver", 3: "kidney_left"}
    labels = LabelMap(array=array, geometry=ct_scan.geometry, class_names=names)
    assert absent_classes(labels) == [3]
    with pytest.raises(DicomSegError,
                       match=r"1 named class\(es\) have no voxel: 3 \(kidney_left\)"):
        write_label_map(labels, tmp_path / "strict.dcm", reference=ct_scan,
                        seg_options=DicomSegOptions(empty_segments="raise"))
    assert list(tmp_path.iterdir()) == []
    path = write_label_map(labels, tmp_path / "seg.dcm", reference=ct_scan)  # default: drop
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert [str(s.SegmentLabel) for s in ds.SegmentSequence] == ["liver"]
    assert int(ds.NumberOfFrames) == 2
    empty = LabelMap(array=np.zeros(ct_scan.shape, np.uint8), geometry=ct_scan.geometry,
                     class_names=names)
    with pytest.raises(DicomSegError, match="no labelled voxel"):
        write_label_map(empty, tmp_path / "empty.dcm", reference=ct_scan)
    negative = LabelMap(array=-array.astype(np.int16), geometry=ct_scan.geometry)
    with pytest.raises(DicomSegError, match="negative values"):
        write_label_map(negative, tmp_path / "negative.dcm", reference=ct_scan)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg.dcm", "seg.dcm.provenance.json"]


def test_existing_files_are_never_replaced_unasked(ct_scan, tmp_path):
    array = np.zeros(ct_scan.shape, np.uint8)
    array[2, 10:20, 10:20] = 1
    labels = LabelMap(array=array, geometry=ct_scan.geometry)
    target = tmp_path / "seg.dcm"
    target.write_bytes(b"a person's file")
    with pytest.raises(OutputExistsError, match="already exists"):
        write_label_map(labels, target, reference=ct_scan)
    assert target.read_bytes() == b"a person's file"
    target.unlink()
    sidecar_path(target).write_text("someone's notes")
    with pytest.raises(OutputExistsError, match=r"provenance\.json already exists"):
        write_label_map(labels, target, reference=ct_scan)
    assert not target.exists()
    assert sidecar_path(target).read_text() == "someone's notes"
    write_label_map(labels, target, reference=ct_scan, overwrite=True)
    assert read_label_map(target, reference=ct_scan).array.sum() == 100


def test_a_seg_in_the_series_folder_is_not_a_slice(shared_data, ct_seg, ct_scan, tmp_path):
    for f in sorted((shared_data / "dicom_series_ct").iterdir()):
        shutil.copy(f, tmp_path / f.name)
    shutil.copy(ct_seg, tmp_path / "organs.dcm")
    series = list_dicom_series(tmp_path)  # what read_scan reads
    assert [s.n_slices for s in series] == [20]
    assert "organs.dcm" not in {f.name for f in series[0].files}
    with pytest.raises(UnsupportedScanError, match="DICOM Segmentation"):
        read_scan(tmp_path / "organs.dcm")
    labels = read_label_map(tmp_path / "organs.dcm", reference=tmp_path)
    assert labels.shape == ct_scan.shape
    assert labels.class_names[5] == "liver"


def test_a_scan_moved_off_its_series_grid_is_no_reference(ct_scan, tmp_path):
    """A scan resampled or cropped keeps its metadata (the series' reference) but not its
    grid: a segmentation on it cannot reference that series."""
    from napari_medseg.scan import Scan

    cropped = Scan(array=ct_scan.array[2:], geometry=Geometry(
        spacing=ct_scan.spacing, origin=tuple(ct_scan.geometry.index_to_world([2, 0, 0])),
        direction=ct_scan.geometry.direction), modality="CT", metadata=dict(ct_scan.metadata))
    labels = LabelMap(array=np.ones(cropped.shape, np.uint8), geometry=cropped.geometry)
    with pytest.raises(MissingReferenceError, match="no longer lies on its grid"):
        write_label_map(labels, tmp_path / "seg.dcm", reference=cropped)
    assert list(tmp_path.iterdir()) == []


def test_names_beyond_ascii_and_with_backslashes(ct_scan, tmp_path):
    array = np.zeros(ct_scan.shape, np.uint8)
    array[5, 100:120, 100:120] = 1
    array[6, 200:220, 200:220] = 2
    names = {0: "background", 1: "Läsion (Verdacht)", 2: "left\\right"}
    path = write_label_map(LabelMap(array=array, geometry=ct_scan.geometry, class_names=names),
                           tmp_path / "seg.dcm", reference=ct_scan)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert [str(s.SegmentLabel) for s in ds.SegmentSequence] == ["Läsion (Verdacht)",
                                                                  "left/right"]
    assert read_label_map(path, reference=ct_scan).class_names[1] == "Läsion (Verdacht)"


def test_a_truncated_seg_is_named_damaged(ct_seg, tmp_path):
    from napari_medseg.errors import ScanReadError

    data = ct_seg.read_bytes()
    broken = tmp_path / "organs.dcm"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(ScanReadError, match=r"organs\.dcm is a damaged DICOM file"):
        read_label_map(broken)
