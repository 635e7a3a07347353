#!/usr/bin/env bash
# One-command set-up: a Python 3.10 virtual environment with the locked
# dependency set, the project installed in it, and the Fashion-MNIST files.
# Safe to run again: every step checks first and skips what is already done.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
LOCK=requirements.lock
UV_VERSION=0.13.8
DATA_DIR=/usr/share/datasets/fashion-mnist

step() { printf '\n==> %s\n' "$*"; }

is_python310() {
  "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null
}

find_python310() {
  local candidate version
  candidate=$(command -v python3.10 || true)
  if [ -n "$candidate" ] && is_python310 "$candidate"; then
    echo "$candidate"; return 0
  fi
  if command -v pyenv >/dev/null 2>&1; then
    for version in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.10(\.|$)' | sort -rV); do
      candidate="$(pyenv prefix "$version")/bin/python3.10"
      if [ -x "$candidate" ] && is_python310 "$candidate"; then
        echo "$candidate"; return 0
      fi
    done
  fi
  # pyenv installed but not initialised in this shell.
  for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10*/bin/python3.10; do
    if [ -x "$candidate" ] && is_python310 "$candidate"; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}

step "Python 3.10"
if [ -x "$VENV/bin/python" ] && is_python310 "$VENV/bin/python"; then
  echo "using existing $VENV ($("$VENV/bin/python" --version))"
else
  if ! PYTHON=$(find_python310); then
    echo "error: Python 3.10 not found on PATH or under pyenv." >&2
    echo "TFX 1.16 supports Python 3.9-3.10. Install it (for example 'pyenv install 3.10.13')" >&2
    echo "and run this command again." >&2
    exit 1
  fi
  echo "creating $VENV with $PYTHON"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
fi

step "Locked dependencies ($LOCK)"
if ! "$VENV/bin/uv" --version 2>/dev/null | grep -q "$UV_VERSION"; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
stamp="$VENV/.lock.sha256"
lock_hash=$(sha256sum "$LOCK" setup.py | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_hash" ]; then
  echo "up to date with $LOCK"
else
  "$VENV/bin/uv" pip sync --python "$VENV/bin/python" "$LOCK"
  "$VENV/bin/uv" pip install --python "$VENV/bin/python" --no-deps -e .
  echo "$lock_hash" > "$stamp"
fi

step "Fashion-MNIST data ($DATA_DIR)"
if ls "$DATA_DIR"/train-images-idx3-ubyte.gz >/dev/null 2>&1; then
  echo "present"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist
else
  echo "warning: $DATA_DIR is missing and cannot be installed here." >&2
  echo "  As root on Debian: apt-get install dataset-fashion-mnist" >&2
  echo "  Or put the four *-ubyte.gz files in a folder and run with --data-dir FOLDER." >&2
fi

step "Chromium (the report tests load pages in it, headless)"
if command -v chromium >/dev/null 2>&1; then
  echo "present"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
else
  echo "warning: chromium is missing and cannot be installed here." >&2
  echo "  As root on Debian: apt-get install chromium" >&2
  echo "  Without it the run reports are still written; their browser tests fail." >&2
fi

step "Done"
echo "Run the pipeline:  make run"
echo "Run the tests:     make test"
