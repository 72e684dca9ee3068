#!/usr/bin/env bash
# The exact commands that produce the starter checkpoints in src/napari_medseg/weights/.
#   scripts/train_starter_models.sh [WORK_DIR]
# Needs ../shared/data (see its README).  CPU only, one thread each: a few minutes per model.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="${1:-/tmp/medseg-starter}"
PY="${PY:-.venv/bin/python}"
MEDSEG="${MEDSEG:-napari-medseg}"
mkdir -p "$WORK"
"$PY" scripts/prepare_starter_data.py "$WORK"

# T1 MRI brain tissue: 0 background/CSF, 1 grey matter, 2 white matter (2 mm, 3D U-Net)
$MEDSEG train --model unet-3d --features 8 16 32 64 --spacing 2 2 2 --patch 48 48 48 \
  --images "$WORK/brain_train1_image.nii.gz" "$WORK/brain_train2_image.nii.gz" \
  --labels "$WORK/brain_train1_labels.nii.gz" "$WORK/brain_train2_labels.nii.gz" \
  --val "$WORK/brain_heldout_image.nii.gz" "$WORK/brain_heldout_labels.nii.gz" \
  --modality MR --normalization percentile --percentiles 0.5 99.5 \
  --class-names 0=background "1=grey matter" "2=white matter" \
  --steps 300 --batch 2 --lr 3e-3 --validate-every 25 --patience 6 --threads 1 --seed 0 \
  --device cpu --out "$WORK/brain-tissue-t1.safetensors"

# Head CT: 0 background, 1 soft tissue, 2 bone (2 mm, 3D U-Net)
$MEDSEG train --model unet-3d --features 8 16 32 64 --spacing 2 2 2 --patch 48 48 48 \
  --images "$WORK/headct_train_image.nii.gz" --labels "$WORK/headct_train_labels.nii.gz" \
  --val "$WORK/headct_heldout_image.nii.gz" "$WORK/headct_heldout_labels.nii.gz" \
  --modality CT --normalization ct_window --window -1000 1500 \
  --class-names 0=background "1=soft tissue" 2=bone \
  --steps 300 --batch 2 --lr 3e-3 --validate-every 25 --patience 6 --threads 1 --seed 0 \
  --device cpu --out "$WORK/head-ct-tissue.safetensors"

# What each was trained on (modality, contrast, skull stripping, spacing, body size, intensity
# percentiles), for the fit check before segmenting; the weights are untouched.
"$PY" scripts/record_training_data.py "$WORK/brain-tissue-t1.safetensors" \
  --images "$WORK/brain_train1_image.nii.gz" "$WORK/brain_train2_image.nii.gz" \
  --mr-contrast T1 --skull-stripped yes
"$PY" scripts/record_training_data.py "$WORK/head-ct-tissue.safetensors" \
  --images "$WORK/headct_train_image.nii.gz"
