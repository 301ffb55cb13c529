#!/usr/bin/env bash
# Sets up a virtual environment in .venv (once; again when setup.py changes)
# with Python 3.11, 3.12 or 3.13, and runs one of:
#   bash run.sh main [flags]   the main job on the embedded dataset
#   bash run.sh test [args]    the test suite (pytest args pass through)
#   bash run.sh python ARGS    any python command inside the environment
set -euo pipefail
cd "$(dirname "$0")"
VENV=${NHP_VENV:-.venv}

# The interpreter the environment is made with: $PYTHON if set, else the first
# of python3.13, python3.12, python3.11, python3 on PATH that is a Python
# 3.11-3.13 (setup.py's python_requires) able to create a venv.
if [ -n "${PYTHON:-}" ]; then CANDIDATES=("$PYTHON"); else CANDIDATES=(python3.13 python3.12 python3.11 python3); fi
pick_python() {
  local candidate
  for candidate in "${CANDIDATES[@]}"; do
    command -v "$candidate" >/dev/null 2>&1 || continue
    if "$candidate" -c 'import sys, ensurepip, venv
sys.exit(not ((3, 11) <= sys.version_info[:2] <= (3, 13)))' >/dev/null 2>&1; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

if [ ! -x "$VENV/bin/python" ]; then
  if ! PY=$(pick_python); then
    echo "[run.sh] no Python 3.11-3.13 with venv support found (tried: ${CANDIDATES[*]}); install one (on Debian/Ubuntu also python3.X-venv) or set PYTHON=/path/to/python3.X" >&2
    exit 2
  fi
  echo "[run.sh] creating $VENV with $PY ($("$PY" -c 'import platform; print(platform.python_version())'))" >&2
  "$PY" -m venv "$VENV"
fi
want=$(sha256sum setup.py | cut -d' ' -f1)
have=$(cat "$VENV/.nhp-setup-hash" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  echo "[run.sh] installing nhp_jax and its dependencies into $VENV (first run: ~2 min, ~2.6 GB)" >&2
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e ".[test]"
  echo "$want" > "$VENV/.nhp-setup-hash"
fi

cmd=${1:-main}
[ $# -gt 0 ] && shift
case "$cmd" in
  main)   exec "$VENV/bin/python" -m experiments.main "$@" ;;
  test)   exec "$VENV/bin/python" -m pytest -q -n 2 --durations=15 "$@" ;;
  python) exec "$VENV/bin/python" "$@" ;;
  *) echo "usage: bash run.sh {main|test|python} [args]" >&2; exit 2 ;;
esac
