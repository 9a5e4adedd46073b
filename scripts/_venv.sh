# Sourced by the scripts: make .venv with the project and its dev tools, once.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/q2c ] || [ pyproject.toml -nt .venv/.installed ]; then
  echo "Setting up .venv (first run only; details in .venv/install.log)…" >&2
  "$PY" -m venv .venv
  if ! { .venv/bin/python -m pip install --quiet --upgrade pip \
         && .venv/bin/python -m pip install --quiet -e '.[dev]'; } > .venv/install.log 2>&1; then
    cat .venv/install.log >&2
    echo "installing the project failed; the log is above" >&2
    exit 1
  fi
  touch .venv/.installed
fi
export PATH="$PWD/.venv/bin:$PATH"
