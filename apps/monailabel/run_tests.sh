#!/usr/bin/env bash
# Create (once) a separate venv with monailabel 0.8.5 (it pins numpy<2, so it stays out of the core install),
# install monai_rd into it (non-editable) and run the MONAI Label round-trip tests with it.
#   usage: apps/monailabel/run_tests.sh [VENV_DIR]     (default /tmp/mlvenv)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${1:-/tmp/mlvenv}"
if [ ! -x "$VENV/bin/monailabel" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install "monailabel==0.8.5"          # about 5 minutes; pulls CUDA torch and monai
fi
# monailabel 0.8.5 resolves to pydicom 3, but its dependency pydicom-seg 0.4.1 imports pydicom._storage_sopclass_uids
# (removed in pydicom 3) and dicomweb-client>=0.60 needs pydicom 3: pin both back or "import monailabel.app" fails
"$VENV/bin/pip" install -q pytest safetensors scikit-learn "pydicom>=2.4,<3" "dicomweb-client<0.60" nibabel "opencv-python-headless>=4.8" "numpy<2"
"$VENV/bin/pip" install -q --no-deps --force-reinstall "$REPO"
cd "$REPO"
OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" "$VENV/bin/python" -m pytest tests/test_monailabel_app.py tests/test_label.py -v -p no:cacheprovider "${@:2}"
