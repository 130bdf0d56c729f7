#!/usr/bin/env bash
# The main job on the embedded digits data, from a fresh clone (2 CPU cores,
# about 30 minutes after the install):
#   1. install, 2. make the datasets, 3. train the binary supernet,
#   4. search the OPs/accuracy Pareto front, 5. export a subnet (pipeline 1)
#   and test it, 6. train a NAS-BNN Faster R-CNN whose backbone starts from
#   the supernet, 7. tools/test.py prints its COCO bbox mAP.
# Usage: bash tools/run_demo.sh [WORK_DIR]   (default: work_dirs/demo)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
WORK="${1:-work_dirs/demo}"
bash tools/install.sh
PY="${NASBNN_VENV:-$REPO/.venv}/bin/python"
export PYTHONWARNINGS='ignore::UserWarning:pkg_resources'
mkdir -p "$WORK"
step() { echo; echo "[demo $(date +%H:%M:%S)] $*"; }

step '2. embedded data: sklearn digits -> classification + COCO sets'
"$PY" tools/dataset_converters/prepare_digits.py --out data/digits

step '3. supernet (sandwich rule, Bi-Teacher, in-place distillation)'
"$PY" tools/train.py configs/nasbnn/nasbnn_supernet_digits.py \
    --work-dir "$WORK/supernet"
SUPERNET="$WORK/supernet/epoch_40.pth"

step '4. evolutionary search of the Pareto front'
"$PY" tools/search.py configs/nasbnn/nasbnn_search_digits.py "$SUPERNET" \
    --work-dir "$WORK/search"

step '5. export the largest subnet of the front (pipeline 1) and test it'
"$PY" tools/export_subnet.py "$SUPERNET" \
    --config configs/nasbnn/nasbnn_supernet_digits.py \
    --pareto "$WORK/search/pareto.json" --ops 1000 --out "$WORK/export" \
    --subnet-config configs/nasbnn/nasbnn-subnet_digits.py
"$PY" tools/test.py "$WORK/export/subnet_cfg.py" "$WORK/export/subnet.pth" \
    --work-dir "$WORK/export_test"

step '6. NAS-BNN Faster R-CNN on the digits canvases (backbone from step 3)'
DET_CFG=configs/nasbnn_det/faster-rcnn_nasbnn-digits-l_fpn_6e_digits.py
"$PY" tools/train.py "$DET_CFG" --work-dir "$WORK/det" \
    --cfg-options model.backbone.init_cfg.checkpoint="$SUPERNET"

step '7. COCO evaluation of the detector'
"$PY" tools/test.py "$DET_CFG" "$WORK/det/epoch_6.pth" \
    --work-dir "$WORK/det_test"
