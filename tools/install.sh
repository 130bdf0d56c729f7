#!/usr/bin/env bash
# Install nasbnn_mm and its pinned OpenMMLab stack into a virtual environment.
#
# Usage: bash tools/install.sh [--dev]
#   --dev     also install the test and lint tools (pytest, flake8, isort, yapf)
# Environment:
#   NASBNN_VENV        virtual environment path (default: <repo>/.venv)
#   NASBNN_PYTHON      interpreter that creates it (default: python3.11, else python3)
#   NASBNN_WHEEL_CACHE where built mmcv wheels are kept, one folder per torch
#                      version and device (default: ~/.cache/nasbnn_mm/wheels)
#   MAX_JOBS           parallel compile jobs for mmcv (default: nproc)
#
# Why the steps are in this order:
# * torch/torchvision first, pinned, so nothing later pulls another build;
# * setuptools<70 because mmcv 2.1.0's setup.py imports pkg_resources;
# * mmcv 2.1.0 is built from its sdist with --no-build-isolation so that its
#   ops compile against the installed torch. torch 2.14's headers need C++20
#   while mmcv 2.1.0 forces -std=c++17 (open-mmlab/mmcv issue 3341), so the
#   flag is raised before building;
# * the built wheel is cached under a key of the torch version and device, as
#   pip's own wheel cache would hand a wheel built for another torch to a new
#   environment (an ABI crash at import).
set -euo pipefail

TORCH_VERSION=2.14.1
TORCHVISION_VERSION=0.29.1
MMENGINE_VERSION=0.10.7
MMCV_VERSION=2.1.0
MMDET_VERSION=3.3.0
MMPRETRAIN_VERSION=1.2.0

DEV=0
for arg in "$@"; do
    case "$arg" in
        --dev) DEV=1 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument '$arg' (allowed: --dev)" >&2; exit 2 ;;
    esac
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${NASBNN_VENV:-$REPO/.venv}"
PYTHON="${NASBNN_PYTHON:-$(command -v python3.11 || command -v python3)}"
CACHE_ROOT="${NASBNN_WHEEL_CACHE:-$HOME/.cache/nasbnn_mm/wheels}"
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
START=$(date +%s)

log() { echo "[install $(( $(date +%s) - START ))s] $*"; }

# A new environment takes ~6 GiB (torch's PyPI build carries CUDA libraries)
# plus ~1 GiB to build mmcv: say so up front rather than fail half-way.
NEED_GIB=8
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    PARENT="$(dirname "$VENV")"
    mkdir -p "$PARENT"
    FREE_GIB=$(( $(df -Pk "$PARENT" | awk 'NR == 2 {print $4}') / 1048576 ))
    if [ "$FREE_GIB" -lt "$NEED_GIB" ]; then
        echo "install.sh: $FREE_GIB GiB free under $PARENT, a new environment needs" \
            "about $NEED_GIB GiB (set NASBNN_VENV to a larger disk or free space)" >&2
        exit 1
    fi
fi

if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtual environment $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --no-input --progress-bar off)

log "torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION"
"${PIP[@]}" "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
"${PIP[@]}" wheel ninja "mmengine==$MMENGINE_VERSION"

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    export FORCE_CUDA=1
    DEVICE=cuda
else
    DEVICE=cpu
fi
CACHE="$CACHE_ROOT/torch-$TORCH_VERSION-$DEVICE"
mkdir -p "$CACHE"

if "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" 2>/dev/null; then
    log "mmcv $MMCV_VERSION with ops already installed"
else
    WHEEL=$(ls "$CACHE"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n 1 || true)
    if [ -z "$WHEEL" ]; then
        log "building mmcv $MMCV_VERSION with ops ($DEVICE, $MAX_JOBS jobs; ~20 min on 2 cores)"
        "${PIP[@]}" "setuptools<70"
        BUILD=$(mktemp -d)
        trap 'rm -rf "$BUILD"' EXIT
        "$PY" -m pip download --no-input --no-deps --no-binary :all: \
            "mmcv==$MMCV_VERSION" -d "$BUILD"
        tar -xzf "$BUILD"/mmcv-"$MMCV_VERSION".tar.gz -C "$BUILD"
        SRC="$BUILD/mmcv-$MMCV_VERSION"
        sed -i 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
        grep -q -- '-std=c++20' "$SRC/setup.py" || {
            echo "install.sh: could not raise mmcv's C++ standard in $SRC/setup.py" >&2; exit 1; }
        (cd "$SRC" && MMCV_WITH_OPS=1 "$PY" -m pip wheel --no-input --no-deps \
            --no-build-isolation --no-cache-dir . -w "$BUILD/dist")
        cp "$BUILD"/dist/mmcv-"$MMCV_VERSION"-*.whl "$CACHE"/
        WHEEL=$(ls "$CACHE"/mmcv-"$MMCV_VERSION"-*.whl | head -n 1)
    else
        log "using cached mmcv wheel $WHEEL"
    fi
    "${PIP[@]}" --no-deps --force-reinstall "$WHEEL"
    # mmcv's own runtime requirements (the wheel was installed without them).
    "${PIP[@]}" addict packaging Pillow pyyaml yapf opencv-python
fi

log "mmdet, mmpretrain and the project"
# torch 2.14.1 wants setuptools>=77; mmengine imports pkg_resources (<81).
"${PIP[@]}" "setuptools>=77,<81" "mmdet==$MMDET_VERSION" \
    "mmpretrain==$MMPRETRAIN_VERSION" pycocotools scikit-learn matplotlib
if [ "$DEV" = 1 ]; then
    "${PIP[@]}" --no-build-isolation -e "$REPO[tests]"
else
    "${PIP[@]}" --no-build-isolation -e "$REPO"
fi

log "environment check"
"$PY" "$REPO/tools/misc/env_check.py"
log "done: activate with 'source $VENV/bin/activate'"
