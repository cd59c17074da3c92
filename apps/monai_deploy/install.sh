#!/usr/bin/env bash
# The MONAI Deploy app's environment:  apps/monai_deploy/install.sh <venv folder>
# A venv that reuses this interpreter's packages (--system-site-packages: torch, MONAI, pydicom of the core install)
# and adds the SDK (holoscan, tritonclient) and highdicom; rebuilt only when requirements.txt changes.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${1:?usage: apps/monai_deploy/install.sh <venv folder>}"
HASH="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
STAMP="$VENV/.monai_rd_requirements.sha256"
if [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$HASH" ]; then
  echo "MONAI Deploy venv $VENV is up to date"
  exit 0
fi
rm -rf "$VENV"
python3 -m venv --system-site-packages "$VENV"
# holoscan's wheel-axle .pth runs before the system site-packages join sys.path: filelock must be in the venv
"$VENV/bin/pip" install --quiet --ignore-installed filelock  # present system-wide, but needed inside the venv
"$VENV/bin/pip" install --quiet -r "$HERE/requirements.txt"
# the SDK installs into the monai package folder (monai/deploy): MONAI itself must be in the venv too, or the
# system's monai (a regular package) hides monai.deploy
"$VENV/bin/pip" install --quiet --ignore-installed --no-deps "monai==1.6.1"
"$VENV/bin/python" -c "import monai.deploy.core, highdicom"
echo "$HASH" > "$STAMP"
echo "MONAI Deploy venv ready: $VENV/bin/python $HERE/app.py -i <dicom folder> -o <out> -m <serving folder>"
