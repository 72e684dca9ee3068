#!/usr/bin/env bash
# The exact commands that produce the starter checkpoints in src/napari_medseg/weights/.
#   scripts/train_starter_models.sh [WORK_DIR]
# Needs ../shared/data (see its README).  CPU only, one thread each (about 20-30 min per
# model on a 2-core machine, two at a time).  benchmarks/bench_starters.py then scores each
# on scans of another subject.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="${1:-/tmp/medseg-starter}"
PY="${PY:-.venv/bin/python}"
MEDSEG="${MEDSEG:-napari-medseg}"
mkdir -p "$WORK"
"$PY" scripts/prepare_starter_data.py "$WORK"                  # head CT slabs
"$PY" scripts/prepare_starter_data.py --brain-synth "$WORK" 24  # 24 random T1-like heads
"$PY" scripts/prepare_starter_data.py --abdomen "$WORK"         # two abdominal CTs, organ labels

# T1 MRI brain, with or without skull, in two steps.
# (1) The first version: 0 background/CSF, 1 grey matter, 2 white matter (3D U-Net at 2 mm)
#     on two slabs of the skull-stripped ICBM152 template (slab 96-127 held out).
$MEDSEG train --model unet-3d --features 8 16 32 64 --spacing 2 2 2 --patch 48 48 48 \
  --images "$WORK/brain_train1_image.nii.gz" "$WORK/brain_train2_image.nii.gz" \
  --labels "$WORK/brain_train1_labels.nii.gz" "$WORK/brain_train2_labels.nii.gz" \
  --val "$WORK/brain_heldout_image.nii.gz" "$WORK/brain_heldout_labels.nii.gz" \
  --modality MR --normalization percentile --percentiles 0.5 99.5 \
  --class-names 0=background "1=grey matter" "2=white matter" \
  --steps 300 --batch 2 --lr 3e-3 --validate-every 25 --patience 6 --threads 1 --seed 0 \
  --device cpu --out "$WORK/brain-tissue-t1-first.safetensors"
# (2) grown to 0 background, 1 GM, 2 WM, 3 CSF, 4 non-brain head (the new rows start as
#     background) and fine-tuned on the 24 random T1-like heads drawn from the template's tissue
#     maps (napari_medseg.training.synth).  Validation: the template's real brain under a
#     drawn head (same anatomy: early stopping only; bench_starters.py measures on Colin27).
#     (Training from scratch on the drawn heads alone scored GM 0.61 / WM 0.56 on Colin27 ch2bet,
#     below the atlas floor; starting from the first version keeps what it knew of real T1.)
"$PY" scripts/grow_classes.py "$WORK/brain-tissue-t1-first.safetensors" \
  "$WORK/brain-grown.safetensors" --add "3=cerebrospinal fluid" "4=non-brain head"
$MEDSEG train --start-from "$WORK/brain-grown.safetensors" --dims 3 \
  --images "$WORK"/synth_[0-9]*_image.nii.gz --labels "$WORK"/synth_[0-9]*_labels.nii.gz \
  --val "$WORK/synth_val_image.nii.gz" "$WORK/synth_val_labels.nii.gz" --modality MR \
  --class-names 0=background "1=grey matter" "2=white matter" "3=cerebrospinal fluid" \
    "4=non-brain head" \
  --steps 800 --batch 2 --lr 1e-3 --validate-every 100 --patience 8 --threads 2 --seed 0 \
  --device cpu --checkpoint-every 0 --out "$WORK/brain-tissue-t1.safetensors"

# Upper-abdomen CT organs: 0 background, 1 liver, 2 spleen, 3 kidney, 4 stomach, 5 aorta,
# 6 vertebra (2.5D U-Net, 2 mm in-plane, 3 mm slices), from the DICOM CT series alone
# (TotalSegmentator's labels), so that the bundled sample (another subject) stays unseen.
# --orientation RAS: the DICOM series is stored the other way up in-plane.  The same recipe
# on the bundled sample's scan is the second estimate bench_starters.py reports (--fold).
organs() {  # OUT STEM...
  local out="$1"; shift
  local images=() labels=()
  for stem in "$@"; do images+=("$WORK/${stem}_image.nii.gz"); labels+=("$WORK/${stem}_labels.nii.gz"); done
  $MEDSEG train --model unet --dims 2 --context-slices 1 --features 16 32 64 128 \
    --spacing 3 2 2 --patch 128 128 --images "${images[@]}" --labels "${labels[@]}" \
    --modality CT --normalization ct_window --window -250 450 --orientation RAS \
    --class-names 0=background 1=liver 2=spleen 3=kidney 4=stomach 5=aorta 6=vertebra \
    --classes 7 --steps 1200 --batch 8 --lr 3e-3 --validate-every 100 --patience 8 \
    --threads 1 --seed 0 --device cpu --checkpoint-every 0 --out "$out"
}
organs "$WORK/upper-abdomen-ct-organs.safetensors" dicomct
organs "$WORK/fold_abdomen.safetensors" abdomen

# Head CT: 0 background, 1 soft tissue, 2 bone (2 mm, 3D U-Net); unchanged since its first
# training (its labels are thresholds: bone is HU >= 226).
$MEDSEG train --model unet-3d --features 8 16 32 64 --spacing 2 2 2 --patch 48 48 48 \
  --images "$WORK/headct_train_image.nii.gz" --labels "$WORK/headct_train_labels.nii.gz" \
  --val "$WORK/headct_heldout_image.nii.gz" "$WORK/headct_heldout_labels.nii.gz" \
  --modality CT --normalization ct_window --window -1000 1500 \
  --class-names 0=background "1=soft tissue" 2=bone \
  --steps 300 --batch 2 --lr 3e-3 --validate-every 25 --patience 6 --threads 1 --seed 0 \
  --device cpu --out "$WORK/head-ct-tissue.safetensors"

# What each was trained on (modality, contrast, skull stripping, spacing, body size,
# intensity percentiles), for the fit check before segmenting; the weights are untouched.
"$PY" scripts/record_training_data.py "$WORK/brain-tissue-t1.safetensors" \
  --images "$WORK"/synth_[0-9]*_image.nii.gz --mr-contrast T1 --orientation RAS
"$PY" scripts/record_training_data.py "$WORK/head-ct-tissue.safetensors" \
  --images "$WORK/headct_train_image.nii.gz"
