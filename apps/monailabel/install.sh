#!/usr/bin/env bash
# The one install command of the MONAI Label app:  apps/monailabel/install.sh <venv folder>
# Creates <venv folder> (an isolated venv) with apps/monailabel/requirements.txt, or leaves it as it is when it was
# built from the same requirements (a stamp holds their sha256), so CI can cache it.
# uv (installed with monai-rd's dev extra, or `pip install uv`) builds it in about a minute; without uv, pip takes
# about 24 minutes here (its resolver and sam2's isolated build both fetch CUDA torch).
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
if command -v uv >/dev/null 2>&1; then
  uv venv --quiet --python "$(command -v python3)" "$VENV"
  VIRTUAL_ENV="$VENV" uv pip install --quiet -r "$REQ"
  # monailabel's wheel names its data folder monailabel-0.8.5-<build>.data, which uv (unlike pip) does not
  # recognise, so its `monailabel` script stays inside site-packages: install it into bin/ as pip does
  if [ ! -e "$VENV/bin/monailabel" ]; then
    install -m 755 "$("$VENV/bin/python" -c 'import monailabel, os; print(os.path.dirname(monailabel.__file__))')/scripts/monailabel" "$VENV/bin/monailabel"
  fi
else
  echo "uv not found: building with pip (about 24 minutes; 'pip install uv' makes it about 1 minute)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet -r "$REQ"
fi
"$VENV/bin/python" -c "import monailabel.app"  # fails here, not at server start, if the pins drift
echo "$HASH" > "$STAMP"
echo "MONAI Label venv ready: $VENV/bin/monailabel start_server --app $HERE --studies <folder> --conf bundle <bundle>"
