"""The modality of every real scan, from headers, names and intensities, and how it was told."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from napari_medseg.io import read_scan
from napari_medseg.io.modality import ModalityGuess, read_modality
from napari_medseg.scan import Geometry

#: Every scan of ../shared/data and what it is (its README), with the MR contrast where a
#: header or the file name says it.
SHARED_SCANS = {
    "mri_lesion/brain1_image.nrrd": ("MR", None),
    "mri_lesion/breast1_image.nrrd": ("MR", None),
    "ct_abdomen/example_ct_sm.nii.gz": ("CT", None),
    "mr_abdomen/example_mr_sm.nii.gz": ("MR", None),
    "dicom_series_ct": ("CT", None),
    "dicom_series_mr": ("MR", "PD"),  # SeriesDescription "FSE PD AXIAL OBL"
    "brain_template/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz": ("MR", "T1"),
    "colin27/ch2.nii.gz": ("MR", None),
    "colin27/ch2bet.nii.gz": ("MR", None),
    "ct_head/head_ct.nii.gz": ("CT", None),
}
SAMPLE_SCANS = {"ct_abdomen.nii.gz": "CT", "mr_abdomen.nii.gz": "MR",
                "mr_brain_lesion.nrrd": "MR"}
SAMPLE_LABEL_MAPS = ("ct_abdomen_organs.nii.gz", "ct_abdomen_tissue.nrrd",
                     "mr_abdomen_organs.nii.gz", "mr_brain_lesion_label.nrrd")


@pytest.fixture(scope="module")
def shared_scans(shared_data):
    return {name: read_scan(shared_data / name) for name in SHARED_SCANS}


@pytest.mark.parametrize("name", sorted(SHARED_SCANS))
def test_every_shared_scan_has_its_modality(shared_scans, name):
    scan = shared_scans[name]
    modality, contrast = SHARED_SCANS[name]
    assert (scan.modality, scan.mr_contrast) == (modality, contrast), scan.modality_reason
    assert scan.modality_reason


@pytest.mark.parametrize("name", sorted(SHARED_SCANS))
def test_intensities_alone_tell_every_shared_scan(shared_scans, name):
    """No header, no name: the voxels alone (HU air for CT, non-negative integers for MR)."""
    scan = shared_scans[name]
    guess = read_modality(scan.array, {}, spacing=scan.spacing)
    assert guess.modality == SHARED_SCANS[name][0], guess.reason
    assert guess.source == "intensities"
    assert guess.reason.startswith("intensities:")
    assert guess.mr_contrast is None  # intensities never claim a contrast


def test_the_contrast_t1_nrrd_of_the_issue_is_mr(shared_scans):
    """The NRRD has no modality field and a neutral name: told from its intensities."""
    scan = shared_scans["mri_lesion/brain1_image.nrrd"]
    assert scan.modality == "MR"
    assert "without air at -1000 HU" in scan.modality_reason


def test_how_each_was_decided(shared_scans):
    reasons = {name: shared_scans[name].modality_reason for name in SHARED_SCANS}
    assert reasons["dicom_series_ct"] == "DICOM Modality 'CT'"
    assert reasons["ct_head/head_ct.nii.gz"] == "file name 'head_ct'"
    assert reasons["ct_abdomen/example_ct_sm.nii.gz"] == "file name 'example_ct_sm'"
    assert reasons["colin27/ch2.nii.gz"].startswith("intensities:")  # descrip 'spm - algebra'


def test_skull_stripping_is_told_from_a_zero_background(shared_scans):
    # skull-stripped: ICBM152 and Colin27 ch2bet; with skull: ch2, brain1, the PD series
    assert shared_scans["brain_template/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
                        ].skull_stripped is True
    assert shared_scans["colin27/ch2bet.nii.gz"].skull_stripped is True
    for name in ("colin27/ch2.nii.gz", "mri_lesion/brain1_image.nrrd", "dicom_series_mr"):
        assert shared_scans[name].skull_stripped is False, name
    assert shared_scans["ct_head/head_ct.nii.gz"].skull_stripped is None  # not MR


@pytest.mark.parametrize("name", sorted(SAMPLE_SCANS))
def test_every_sample_scan_has_its_modality(sample_volumes, name):
    assert read_scan(sample_volumes / name).modality == SAMPLE_SCANS[name]


@pytest.mark.parametrize("name", SAMPLE_LABEL_MAPS)
def test_a_label_map_named_after_its_scan_is_no_scan(sample_volumes, name):
    scan = read_scan(sample_volumes / name)  # e.g. "ct_abdomen_organs": the name says CT
    assert scan.modality == "unknown"
    assert "label map" in scan.modality_reason


def _crop(scan):
    return scan.array[:8, 60:124, 60:124].copy()


def test_nifti_descrip_and_intent_name_say_the_modality_and_contrast(shared_scans, tmp_path):
    ct = shared_scans["ct_abdomen/example_ct_sm.nii.gz"]  # HU intensities, overridden
    image = nib.Nifti1Image(np.ascontiguousarray(ct.array.T), np.eye(4))
    image.header["descrip"] = b"T1 MPRAGE"
    nib.save(image, tmp_path / "scan.nii.gz")
    scan = read_scan(tmp_path / "scan.nii.gz")
    assert (scan.modality, scan.mr_contrast) == ("MR", "T1")
    assert scan.modality_reason == "NIfTI descrip 'T1 MPRAGE'"

    image.header["descrip"] = b""
    image.header["intent_name"] = b"FLAIR"
    nib.save(image, tmp_path / "flair.nii.gz")
    scan = read_scan(tmp_path / "flair.nii.gz")
    assert (scan.modality, scan.mr_contrast) == ("MR", "FLAIR")
    assert scan.modality_reason.startswith("NIfTI intent_name")


def test_nrrd_content_and_metaimage_modality(shared_scans, tmp_path):
    mr = shared_scans["colin27/ch2.nii.gz"]
    image = sitk.GetImageFromArray(mr.array)
    image.SetMetaData("NRRD_content", "CT head, bone kernel")
    sitk.WriteImage(image, str(tmp_path / "x.nrrd"))
    scan = read_scan(tmp_path / "x.nrrd")
    assert scan.modality == "CT"  # the header wins over MR-like intensities
    assert scan.modality_reason == "NRRD content 'CT head, bone kernel'"

    ct = shared_scans["ct_head/head_ct.nii.gz"]
    sitk.WriteImage(sitk.GetImageFromArray(ct.array[:20]), str(tmp_path / "plain.mha"))
    raw = (tmp_path / "plain.mha").read_bytes()
    assert b"Modality" not in raw.split(b"ElementDataFile")[0]
    (tmp_path / "tagged.mha").write_bytes(
        raw.replace(b"ElementSpacing", b"Modality = MET_MOD_MR\nElementSpacing", 1))
    assert read_scan(tmp_path / "tagged.mha").modality == "MR"
    assert read_scan(tmp_path / "tagged.mha").modality_reason == "MetaImage Modality 'MET_MOD_MR'"
    # SimpleITK reads MET_MOD_UNKNOWN into every other .mha: that must not stop the guess
    plain = read_scan(tmp_path / "plain.mha")
    assert plain.metadata["Modality"] == "MET_MOD_UNKNOWN"
    assert plain.modality == "CT"


def test_explicit_codes_beat_everything(shared_scans):
    ct = shared_scans["ct_head/head_ct.nii.gz"]
    guess = read_modality(ct.array, {"medseg_modality": "MR"}, name="head_ct.nii.gz")
    assert guess.modality == "MR"
    assert guess.source == "header"
    nm = read_modality(ct.array, {"dicom_modality": "NM"})
    assert nm.modality == "unknown"  # a modality we have no models for: said, not guessed
    assert "NM" in nm.reason


def test_a_text_naming_two_modalities_decides_nothing(shared_scans):
    ct = shared_scans["ct_head/head_ct.nii.gz"]
    guess = read_modality(ct.array, {"NRRD_content": "PET/CT fusion"}, name="")
    assert guess.source == "intensities"  # fell through to the voxels
    assert guess.modality == "CT"


def test_names_are_hints_after_headers(shared_scans):
    brain = shared_scans["colin27/ch2.nii.gz"]
    assert read_modality(brain.array, {}, name="sub-01_T2w.nii.gz").mr_contrast == "T2"
    assert read_modality(brain.array, {}, name="flair.nrrd").mr_contrast == "FLAIR"
    guess = read_modality(brain.array, {}, name="patient_ct.nii.gz")
    assert (guess.modality, guess.source) == ("CT", "name")
    # words inside other words are no hint: "ct" in "actual", "mr" in "mrna"
    assert read_modality(brain.array, {}, name="actual_mrna.nii").source == "intensities"


def test_what_cannot_be_told_is_unknown(shared_scans):
    brain = shared_scans["mri_lesion/brain1_image.nrrd"]
    rng = np.random.default_rng(0)
    # float, non-integer, non-negative (a bias-corrected MR or a PET in SUV): not told
    processed = brain.array.astype(np.float32) * 0.37 + rng.random(brain.shape, np.float32)
    guess = read_modality(processed, {})
    assert guess.modality == "unknown"
    assert guess.source == "none"
    assert "cannot be told" in guess.reason
    # 2D images: a photograph, an X-ray or an ultrasound frame look alike
    assert read_modality(brain.array[12], {}).modality == "unknown"
    # z-scored MR: negative values without air
    z = (brain.array - brain.array.mean()) / brain.array.std()
    assert read_modality(np.round(z * 100).astype(np.int16), {}).modality == "unknown"


def test_read_scan_override_says_so(shared_data):
    scan = read_scan(shared_data / "ct_head" / "head_ct.nii.gz", modality="MR")
    assert scan.modality == "MR"
    assert scan.modality_reason == "given by the caller"


def test_a_guess_refuses_codes_it_does_not_know():
    with pytest.raises(ValueError, match="modality must be one of"):
        ModalityGuess(modality="CAT", reason="", source="header")
    guess = ModalityGuess(modality="MR", reason="DICOM Modality 'MR'", source="header",
                          mr_contrast="T1", skull_stripped=True)
    assert guess.describe() == "MR T1, skull-stripped (DICOM Modality 'MR')"


def test_resampling_keeps_what_was_told(shared_scans):
    from napari_medseg.geometry.resample import resample_to

    scan = shared_scans["dicom_series_mr"]
    geometry = Geometry(spacing=(7.0, 2.0, 2.0), origin=scan.geometry.origin,
                        direction=scan.geometry.direction)
    coarse = resample_to(scan, geometry, shape=(20, 110, 110))
    assert (coarse.modality, coarse.mr_contrast, coarse.modality_reason) == (
        "MR", "PD", scan.modality_reason)
