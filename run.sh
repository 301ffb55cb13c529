#!/usr/bin/env bash
# Sets up a Python 3.11 virtual environment in .venv (once; again when setup.py
# changes) and runs one of:
#   bash run.sh main [flags]   the main job on the embedded dataset
#   bash run.sh test [args]    the test suite (pytest args pass through)
#   bash run.sh python ARGS    any python command inside the environment
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3.11}
VENV=${NHP_VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
  echo "[run.sh] creating $VENV with $PYTHON" >&2
  "$PYTHON" -m venv "$VENV"
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
