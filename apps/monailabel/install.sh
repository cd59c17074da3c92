#!/usr/bin/env bash
# The one install command of the MONAI Label app:  apps/monailabel/install.sh <venv folder>
# Creates <venv folder> (an isolated venv: python -m venv) with apps/monailabel/requirements.txt, or leaves it as
# it is when it was built from the same requirements (a stamp holds their sha256), so CI can cache it.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${1:?usage: apps/monailabel/install.sh <venv folder>}"
REQ="$HERE/requirements.txt"
HASH="$(sha256sum "$REQ" | cut -d' ' -f1)"
STAMP="$VENV/.monai_rd_requirements.sha256"
if [ -x "$VENV/bin/monailabel" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$HASH" ]; then
  echo "MONAI Label venv $VENV is up to date"
  exit 0
fi
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet -r "$REQ"
"$VENV/bin/python" -c "import monailabel.app"  # fails here, not at server start, if the pins drift
echo "$HASH" > "$STAMP"
echo "MONAI Label venv ready: $VENV/bin/monailabel start_server --app $HERE --studies <folder> --conf bundle <bundle>"
