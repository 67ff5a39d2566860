#!/usr/bin/env bash
# Build the real-client matrix environments (tests/matrix): one venv per requirements file
# under .matrix/venvs/<group>, and the node project's node_modules in tests/matrix/js.
# Idempotent: a group is rebuilt only when the sha256 of its requirements (plus the Python
# version) differs from the stamp left by its last successful build.
# Usage: scripts/matrix-envs.sh [PYTHON]   (default: .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${1:-.venv/bin/python}
MATRIX_DIR=${MENTATLAB_MATRIX_DIR:-.matrix}
REQS=tests/matrix/requirements
JS=tests/matrix/js
# uv's own binary, never `python -m uv` (that targets the invoking interpreter: the
# project venv), and always with --python naming the group venv.
UV="$(dirname "$PYTHON")/uv"

mkdir -p "$MATRIX_DIR/venvs"
py_version=$("$PYTHON" -c 'import sys; print(sys.version.split()[0])')

for req in "$REQS"/*.txt; do
  group=$(basename "$req" .txt)
  venv="$MATRIX_DIR/venvs/$group"
  stamp="$venv/.matrix-stamp"
  want=$( (cat "$req"; echo "python $py_version") | sha256sum | cut -d' ' -f1)
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/python" ]]; then
    echo "matrix-envs: $group is current"
    continue
  fi
  echo "matrix-envs: building $group"
  rm -rf "$venv"
  "$UV" venv --quiet --python "$PYTHON" "$venv"
  "$UV" pip install --quiet --python "$venv/bin/python" -r "$req"
  echo "$want" > "$stamp"
done

# node project: npm ci from the lockfile; stamp = sha256 of package.json + lockfile
stamp="$JS/node_modules/.matrix-stamp"
want=$(cat "$JS/package.json" "$JS/package-lock.json" | sha256sum | cut -d' ' -f1)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "matrix-envs: js is current"
else
  echo "matrix-envs: npm ci in $JS"
  (cd "$JS" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$stamp"
fi
